//! Plugin runtime costs: per-event call overhead of a no-op plugin (event copy included), the
//! box score per event, and a hot-reload swap (new instance + 2,000-event backfill).
//!
//! `cargo bench -p opensports-benches --bench plugins`
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

criterion_group!(benches, plugins);
criterion_main!(benches);
