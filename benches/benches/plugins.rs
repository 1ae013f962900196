//! Plugin runtime costs: per-event call overhead of a no-op plugin (event copy included), the
//! box score per event, a hot-reload swap (new instance + 2,000-event backfill), and what each
//! language costs (`languages/`): per-event calls of the same logic in Rust (v2) and TypeScript
//! (basketball-runs), of a trivial plugin (parse the event, emit one output) in TypeScript and
//! Python, of the Python example (soccer-passes), and the load + instantiate + init of each;
//! module sizes and linear memory per instance are printed before the runs.
//!
//! `cargo bench -p opensports-benches --bench plugins` (the TypeScript and Python plugins are
//! built by tests/run; missing ones are skipped with a note)
//! (`OPENSPORTS_BOXSCORE_BASELINE=old.wasm` adds that build of the box score beside)

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opensports_proto::Sport;
use opensports_server::plugin::harness::Harness;
use opensports_server::sim;

fn archived_game(sport: Sport, min_events: usize) -> Vec<rkyv::util::AlignedVec> {
    let mut out = Vec::new();
    let mut seed = 0;
    while out.len() < min_events {
        for t in sim::generate(sport, seed, 0).events {
            out.push(rkyv::to_bytes::<rkyv::rancor::Error>(&t.event).expect("archive"));
        }
        seed += 1;
    }
    out
}

fn plugins(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("tempdir");
    let models = std::sync::Arc::new(opensports_server::model::ModelRegistry::default());
    let events = archived_game(Sport::Basketball, 2_000);
    let noop =
        std::fs::read(opensports_tests::workspace().join("tests/fixtures/noop.wat")).expect("noop.wat");
    let boxscore =
        std::fs::read(opensports_tests::plugin_wasm("basketball-boxscore")).expect("boxscore wasm");

    // One plugin's call, round-robin over the events.
    let mut calls = |id: &str, wasm: &[u8]| {
        let mut h = Harness::new(id, wasm, b"{}", cache.path(), &models, None).expect("plugin loads");
        let mut i = 0;
        c.bench_function(&format!("plugin_call/{id}"), |b| {
            b.iter(|| {
                i = (i + 1) % events.len();
                black_box(h.call_bytes(&events[i]).expect("plugin call"))
            })
        });
    };
    calls("noop", &noop);
    calls("basketball-boxscore", &boxscore);
    // Side by side with another build of the box score (say, the previous commit's), when
    // `OPENSPORTS_BOXSCORE_BASELINE` names its .wasm.
    if let Ok(path) = std::env::var("OPENSPORTS_BOXSCORE_BASELINE") {
        calls("basketball-boxscore-baseline", &std::fs::read(&path).expect("baseline wasm"));
    }

    languages(c, &models, &events);

    let backfill = &events[..2_000];
    let mut group = c.benchmark_group("hot_reload");
    group.sample_size(20);
    group.bench_function("swap_with_2000_event_backfill", |b| {
        b.iter(|| {
            let mut h = Harness::new("basketball-boxscore", &boxscore, b"{}", cache.path(), &models, None)
                .expect("load");
            for e in backfill {
                black_box(h.call_bytes(e).expect("backfill"));
            }
        })
    });
    group.finish();
}

/// `(label, wasm, config, sport)` of each language's plugins, where built.
fn language_plugins() -> Vec<(&'static str, std::path::PathBuf, &'static str, Sport)> {
    let ws = opensports_tests::workspace();
    let ok = r#"{"mode":"ok"}"#;
    let mut all = vec![
        (
            "rust-v1/basketball-boxscore",
            opensports_tests::plugin_wasm("basketball-boxscore"),
            "{}",
            Sport::Basketball,
        ),
        (
            "rust-v2/basketball-runs-rs",
            opensports_tests::plugin_wasm("basketball-runs-rs"),
            "{}",
            Sport::Basketball,
        ),
        (
            "ts/basketball-runs",
            ws.join("plugins/basketball-runs-ts/build/basketball_runs.wasm"),
            "{}",
            Sport::Basketball,
        ),
        ("ts/trivial", ws.join("tests/fixtures/hostile-ts/build/hostile_ts.wasm"), ok, Sport::Basketball),
        ("python/trivial", ws.join("tests/fixtures/hostile-py/build/hostile_py.wasm"), ok, Sport::Basketball),
        (
            "python/soccer-passes",
            ws.join("plugins/soccer-passes-py/build/soccer_passes.wasm"),
            "{}",
            Sport::Soccer,
        ),
    ];
    all.retain(|(label, path, _, _)| {
        let there = path.exists();
        if !there {
            eprintln!("{label}: {} not built (tests/run builds it); skipped", path.display());
        }
        there
    });
    all
}

fn languages(
    c: &mut Criterion,
    models: &std::sync::Arc<opensports_server::model::ModelRegistry>,
    bk: &[rkyv::util::AlignedVec],
) {
    let cache = tempfile::tempdir().expect("tempdir");
    let soccer = archived_game(Sport::Soccer, 2_000);
    let plugins = language_plugins();
    eprintln!("{:<30} {:>12} {:>16}", "plugin", "module KiB", "memory KiB/inst");
    let mut loaded = Vec::new();
    for (label, path, config, sport) in &plugins {
        let wasm = std::fs::read(path).expect("wasm");
        let mut h =
            Harness::new(label, &wasm, config.as_bytes(), cache.path(), models, Some(512)).expect("loads");
        let events = if *sport == Sport::Soccer { &soccer[..] } else { bk };
        for e in events.iter().take(500) {
            h.call_bytes(e).expect("warm-up call");
        }
        eprintln!("{label:<30} {:>12} {:>16}", wasm.len() / 1024, h.memory_bytes() / 1024);
        loaded.push((label, wasm, config, sport, h));
    }
    // 512 MiB: componentize-js 0.23 keeps about 330 bytes an event (the server rebuilds such an
    // instance at 3/4 of its cap, see ShardPlugins::on_event); the bench runs a million calls.
    let mut group = c.benchmark_group("languages");
    for (label, _, _, sport, h) in &mut loaded {
        let events = if **sport == Sport::Soccer { &soccer[..] } else { bk };
        let mut i = 0;
        group.bench_function(format!("call/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % events.len();
                black_box(h.call_bytes(&events[i]).expect("plugin call"))
            })
        });
    }
    group.sample_size(10);
    for (label, wasm, config, _, _) in &loaded {
        // Compiled once (the cache is warm): what a shard pays to build an instance.
        group.bench_function(format!("load_instantiate_init/{label}"), |b| {
            b.iter(|| {
                black_box(
                    Harness::new(label, wasm, config.as_bytes(), cache.path(), models, Some(512))
                        .expect("load"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, plugins);
criterion_main!(benches);
