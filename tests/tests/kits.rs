//! Plugins in every language (ABI v2 components beside v1 modules): the TypeScript and Python
//! examples match their golden outputs on real replays; the Rust port of the TypeScript example
//! gives the same bytes; each kit's own test runner (node:test, pytest) passes; a plugin made
//! by `plugin new --lang ts|python` outside this repository builds and passes its test; and
//! on a live server the components' outputs are exactly the offline ones.
//!
//! The examples and the hostile fixtures are built by tests/run (`opensports plugin build`,
//! with npm, componentize-js and componentize-py from the registries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::cli::plugin::{self, Source};
use opensports_server::config::PluginEntry;
use opensports_tests::{TestServer, WAIT, plugin_wasm, real_events, workspace};

fn built(example: &str, file: &str) -> PathBuf {
    let p = workspace().join("plugins").join(example).join("build").join(file);
    assert!(p.exists(), "{} is built by tests/run (opensports plugin build)", p.display());
    p
}

fn ts_wasm() -> PathBuf {
    built("basketball-runs-ts", "basketball_runs.wasm")
}

fn py_wasm() -> PathBuf {
    built("soccer-passes-py", "soccer_passes.wasm")
}

fn data(file: &str) -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("OPENSPORTS_DATA")?).join(file);
    p.exists().then_some(p)
}

/// The `opensports` binary tests/run built (`cargo run -- plugin build`).
fn bin() -> PathBuf {
    let p = workspace().join("target/debug/opensports");
    assert!(p.exists(), "{} is built by tests/run", p.display());
    p
}

#[test]
fn the_typescript_and_python_examples_match_their_golden_outputs_on_real_replays() {
    let cases = [
        (ts_wasm(), "basketball-runs-ts", "nba/nba_live_pbp_0022000001.json"),
        (ts_wasm(), "basketball-runs-ts", "nba/nba_stats_playbyplayv2_0021900001.json"),
        (py_wasm(), "soccer-passes-py", "soccer/statsbomb_15986_events.json"),
        (py_wasm(), "soccer-passes-py", "soccer/wyscout_v2_match_2499773_events.json"),
    ];
    let mut ran = 0;
    for (wasm, example, file) in cases {
        let Some(replay) = data(file) else { continue };
        let stem = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let golden = workspace().join("plugins").join(example).join("golden").join(format!("{stem}.jsonl"));
        assert!(std::fs::read_to_string(&golden).unwrap().lines().count() > 100, "{}", golden.display());
        plugin::test_cmd(&wasm, &Source::Replay(replay), None, Some(&golden), "{}", None)
            .unwrap_or_else(|e| panic!("{example} on {file}: {e:#}"));
        ran += 1;
    }
    if ran == 0 {
        eprintln!("OPENSPORTS_DATA not set: the real replays are skipped");
    }
}

/// `plugin test` of `wasm` on `source`, as JSONL lines.
fn outputs(wasm: &Path, source: &Source) -> Vec<String> {
    let out = tempfile::NamedTempFile::new().unwrap();
    plugin::test_cmd(wasm, source, Some(out.path()), None, "{}", None).unwrap();
    std::fs::read_to_string(out.path()).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn the_rust_component_and_the_typescript_plugin_give_the_same_bytes() {
    let rs = plugin_wasm("basketball-runs-rs");
    let mut sources = vec![Source::Sim(opensports_proto::Sport::Basketball, 3)];
    sources.extend(data("nba/nba_live_pbp_0022000001.json").map(Source::Replay));
    for source in &sources {
        let ts: Vec<String> = outputs(&ts_wasm(), source)
            .iter()
            .map(|l| {
                l.replace("/basketball-runs/", "/basketball-runs-rs/")
                    .replace("\"plugin\":\"basketball-runs\"", "\"plugin\":\"basketball-runs-rs\"")
                    .replace("\"rule\":\"basketball-runs:", "\"rule\":\"basketball-runs-rs:")
            })
            .collect();
        let rust = outputs(&rs, source);
        assert!(rust.len() > 100, "{source:?}: {} outputs", rust.len());
        assert_eq!(rust, ts, "{source:?}");
    }
}

/// Runs `cmd` in `dir` with the `opensports` binary on PATH; panics with its output on failure.
fn run_in(dir: &Path, cmd: &str, args: &[&str]) {
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out =
        Command::new(cmd).args(args).current_dir(dir).env("PATH", path).env("OPENSPORTS_BIN", bin()).output();
    let out = out.unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_kits_event_types_are_current() {
    run_in(&workspace(), "python3", &["plugin-sdk/python/gen_events.py", "--check"]);
}

#[test]
fn each_kits_own_test_runner_passes_on_its_example() {
    run_in(&workspace().join("plugins/basketball-runs-ts"), "npm", &["test"]);
    run_in(&workspace().join("plugins/soccer-passes-py"), "python3", &["-m", "pytest", "-q", "tests"]);
}

#[test]
fn a_new_plugin_in_typescript_or_python_builds_and_passes_its_test_outside_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    for (lang, runner, args) in
        [("ts", "npm", &["test"][..]), ("python", "python3", &["-m", "pytest", "-q", "tests"][..])]
    {
        let name = format!("my-{lang}-counter");
        run_in(dir.path(), bin().to_str().unwrap(), &["plugin", "new", &name, "--lang", lang]);
        let plugin_dir = dir.path().join(&name);
        // The kit is written beside the plugin: nothing points into this checkout.
        for f in ["package.json", "pyproject.toml"] {
            if let Ok(text) = std::fs::read_to_string(plugin_dir.join(f)) {
                assert!(!text.contains(workspace().to_str().unwrap()), "{f} refers to the checkout");
            }
        }
        run_in(dir.path(), bin().to_str().unwrap(), &["plugin", "build", &name]);
        run_in(&plugin_dir, runner, args);
        let wasm = plugin_dir.join("build").join(format!("{}.wasm", name.replace('-', "_")));
        let lines = outputs(&wasm, &Source::Sim(opensports_proto::Sport::Soccer, 1));
        let events = plugin::load_events(&Source::Sim(opensports_proto::Sport::Soccer, 1)).unwrap();
        assert_eq!(lines.len(), events.len(), "{lang}: the template emits once per event");
        assert!(lines.last().unwrap().contains(&format!("\"count\":{}", events.len())), "{lang}");
    }
}

/// On a live server each component's outputs for a real game are exactly what `plugin test`
/// gives offline (deterministic), beside a v1 module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_on_a_live_server_publish_exactly_their_offline_outputs() {
    let cases = [
        (py_wasm(), "soccer-passes", "soccer/statsbomb_15986_events.json", opensports_proto::Sport::Soccer),
        (
            ts_wasm(),
            "basketball-runs",
            "nba/nba_live_pbp_0022000001.json",
            opensports_proto::Sport::Basketball,
        ),
    ];
    for (wasm, name, file, sport) in cases {
        let events = real_events(file).unwrap_or_else(|| opensports_tests::sim_events(sport, 7, 0));
        let source = match data(file) {
            Some(p) => Source::Replay(p),
            None => Source::Sim(sport, 7),
        };
        let offline: Vec<serde_json::Value> =
            outputs(&wasm, &source).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let offline: Vec<&serde_json::Value> =
            offline.iter().filter(|o| !o["topic"].as_str().unwrap().ends_with("/triggers")).collect();
        let server = TestServer::start_with(|c| {
            c.plugins.load = vec![
                PluginEntry { memory_mib: Some(64), ..PluginEntry::new(wasm.clone()) },
                PluginEntry::new(plugin_wasm("soccer-shots")),
            ];
        })
        .await;
        let game = events[0].game.clone();
        let mut sub = server.subscriber().await;
        sub.subscribe_and_wait(&[&format!("game/{game}/{name}/#")], Mode::All).await.unwrap();
        server.publish_all(&events).await;
        let mut live = Vec::new();
        while live.len() < offline.len() {
            match sub.next_timeout(WAIT).await.unwrap() {
                Some(ServerMsg::Msg(p)) => live.push((p.topic.to_string(), p.data.clone())),
                Some(_) => {}
                None => break,
            }
        }
        let mut want: Vec<(String, serde_json::Value)> =
            offline.iter().map(|o| (o["topic"].as_str().unwrap().to_string(), o["data"].clone())).collect();
        // Order is kept per topic (the fan-out batches by topic): compare topic by topic.
        want.sort_by(|a, b| a.0.cmp(&b.0));
        live.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(i) = (0..live.len().max(want.len())).find(|&i| live.get(i) != want.get(i)) {
            panic!(
                "{name}: live output {i} of {} differs from plugin test's ({} offline):\n  live:    {:?}\n  offline: {:?}",
                live.len(),
                want.len(),
                live.get(i),
                want.get(i)
            );
        }
        let (_, body) = server.get("/v1/plugins").await;
        let report: serde_json::Value = serde_json::from_str(&body).unwrap();
        let me = report["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(me["status"], "active", "{me}");
        assert!(me["failures"].as_object().unwrap().values().all(|v| v == 0), "{me}");
        server.shutdown().await;
    }
}

/// A language runtime that never gives its garbage back (componentize-js keeps about 330 bytes
/// an event) is rebuilt by replay at 3/4 of its cap, between two events: no event fails, no
/// output is lost, and the metric counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_whose_memory_creeps_up_is_rebuilt_before_the_cap_and_loses_nothing() {
    let wasm = workspace().join("tests/fixtures/hostile-ts/build/hostile_ts.wasm");
    assert!(wasm.exists(), "built by tests/run");
    let config: toml::Table = toml::from_str("mode = \"ok\"").unwrap();
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![PluginEntry {
            name: Some("creep".into()),
            config: Some(config),
            // The runtime's 9 MiB at rest, 9.75 MiB to rebuild at.
            memory_mib: Some(13),
            ..PluginEntry::new(wasm)
        }];
    })
    .await;
    let mut published = 0;
    for seed in 1..=20 {
        let game = opensports_tests::sim_events(opensports_proto::Sport::Basketball, seed, 0);
        published += game.len() as u64;
        server.publish_all(&game).await;
    }
    server
        .wait_for_seq(
            "nba-20",
            opensports_tests::sim_events(opensports_proto::Sport::Basketball, 20, 0).len() as u64,
        )
        .await;
    let recycled = server.metric(r#"opensports_plugin_recycled_total{plugin="creep"}"#).await;
    assert!(recycled >= 1.0, "not rebuilt after {published} events");
    let (_, body) = server.get("/v1/plugins").await;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let me = &report["plugins"][0];
    assert_eq!(me["emits"], published, "{me}");
    assert!(me["failures"].as_object().unwrap().values().all(|v| v == 0), "{me}");
    server.shutdown().await;
}

/// Hot reload across languages: the TypeScript `basketball-runs` is replaced mid-game by its
/// Rust port (a component too). The new version is backfilled by replay and swapped in between
/// two events; since both give the same bytes, subscribers see exactly the TypeScript plugin's
/// outputs for the whole game, no gap, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_is_hot_reloaded_mid_game_with_its_state_rebuilt_by_backfill() {
    let source = Source::Sim(opensports_proto::Sport::Basketball, 5);
    let offline: Vec<serde_json::Value> =
        outputs(&ts_wasm(), &source).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want: Vec<(String, serde_json::Value)> = offline
        .iter()
        .filter(|o| !o["topic"].as_str().unwrap().ends_with("/triggers"))
        .map(|o| (o["topic"].as_str().unwrap().to_string(), o["data"].clone()))
        .collect();
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![PluginEntry { memory_mib: Some(64), ..PluginEntry::new(ts_wasm()) }];
    })
    .await;
    let events = plugin::load_events(&source).unwrap();
    let game = events[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[&format!("game/{game}/basketball-runs/run")], Mode::All).await.unwrap();
    let half = events.len() / 2;
    server.publish_all(&events[..half]).await;
    let rust = std::fs::read(plugin_wasm("basketball-runs-rs")).unwrap();
    let (status, body) = server.admin_post("/v1/plugins/basketball-runs", "application/wasm", &rust).await;
    assert_eq!(status, 200, "{body}");
    server.publish_all(&events[half..]).await;
    let want: Vec<_> = want.into_iter().filter(|(t, _)| t.ends_with("/run")).collect();
    let mut live = Vec::new();
    while live.len() < want.len() {
        match sub.next_timeout(WAIT).await.unwrap() {
            Some(ServerMsg::Msg(p)) => live.push((p.topic.to_string(), p.data.clone())),
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(live, want, "the stream across the swap differs from one uninterrupted run");
    let (_, body) = server.get("/v1/plugins").await;
    assert!(body.contains(&plugin_version(&rust)), "the Rust version runs now: {body}");
    server.shutdown().await;
}

/// The version `GET /v1/plugins` reports: the first 16 hex digits of the wasm's SHA-256.
fn plugin_version(wasm: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(wasm).iter().take(8).map(|b| format!("{b:02x}")).collect()
}
