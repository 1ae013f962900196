//! Hostile plugins run beside the real box score on the same shards: each failure is counted
//! and typed, the server stays up, the healthy plugin's outputs stay correct, and a plugin
//! failing too often is quarantined. ABI v1: WAT fixtures in tests/fixtures/hostile; ABI v2:
//! a TypeScript and a Python component (tests/fixtures/hostile-ts, hostile-py, built by
//! tests/run) that misbehave as their config says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::config::PluginEntry;
use opensports_tests::{TestServer, WAIT, hostile_fixture, plugin_wasm, sim_events};

/// Runs a basketball game with `fixture` next to `basketball-boxscore`; returns the server for
/// further checks after asserting the healthy plugin's final team lines match the score.
async fn run_with(fixture: &str, quarantine_after: usize, events: usize) -> TestServer {
    let entry = PluginEntry { name: Some("hostile".into()), ..PluginEntry::new(hostile_fixture(fixture)) };
    run_beside_boxscore(entry, quarantine_after, events).await
}

async fn run_beside_boxscore(hostile: PluginEntry, quarantine_after: usize, events: usize) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![PluginEntry::new(plugin_wasm("basketball-boxscore")), hostile];
        c.plugins.quarantine_after = quarantine_after;
        c.plugins.deadline_us = 2000;
    })
    .await;
    let game: Vec<_> = sim_events(Sport::Basketball, 13, 0).into_iter().take(events).collect();
    let id = game[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[&format!("game/{id}/basketball-boxscore/team/+")], Mode::Latest).await.unwrap();
    let mut publisher = server.publisher().await;
    for e in &game {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&id, game.len() as u64).await;
    let (_, body) = server.get(&format!("/v1/games/{id}")).await;
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut seen = [false, false];
    while seen != [true, true] {
        let Some(ServerMsg::Msg(p)) = sub.next_timeout(WAIT).await.unwrap() else { continue };
        let side = if p.topic.ends_with("home") { 0 } else { 1 };
        seen[side] |= p.data["pts"] == state["score"][["home", "away"][side]];
    }
    server
}

async fn report(server: &TestServer, name: &str) -> serde_json::Value {
    let (_, body) = server.get("/v1/plugins").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["plugins"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap().clone()
}

async fn failing_fixture_is_typed(fixture: &str, kind: &str) {
    let server = run_with(fixture, 1000, 60).await;
    failures_are_typed(server, kind).await;
}

/// The ABI v2 hostile plugin of `lang` (ts, py) in `mode`, misbehaving from the 3rd event.
async fn component_is_typed(lang: &str, mode: &str, memory_mib: usize, kind: &str) {
    let dir = opensports_tests::workspace().join(format!("tests/fixtures/hostile-{lang}"));
    let wasm = dir.join(format!("build/hostile_{lang}.wasm"));
    assert!(wasm.exists(), "{} is built by tests/run (opensports plugin build)", wasm.display());
    let config: toml::Table = toml::from_str(&format!("mode = \"{mode}\"\nafter = 3")).unwrap();
    let entry = PluginEntry {
        name: Some("hostile".into()),
        config: Some(config),
        memory_mib: Some(memory_mib),
        // Building a 128 KiB string in an interpreted JavaScript engine is not what is tested.
        deadline_us: (mode == "huge").then_some(100_000),
        ..PluginEntry::new(wasm)
    };
    let server = run_beside_boxscore(entry, 1000, 60).await;
    let hostile = report(&server, "hostile").await;
    // Events 1 and 2 went through: the component works until it is told to misbehave. (More
    // than 2 when a busy machine failed an early event on its deadline: the rebuilt instance
    // runs its first events again.)
    assert!(hostile["emits"].as_u64().is_some_and(|n| n >= 2), "{lang} {mode}: {hostile}");
    failures_are_typed(server, kind).await;
}

async fn failures_are_typed(server: TestServer, kind: &str) {
    let hostile = report(&server, "hostile").await;
    assert!(hostile["failures"][kind].as_u64().unwrap() >= 10, "{hostile}");
    let metric = format!("opensports_plugin_failures_total{{plugin=\"hostile\",kind=\"{kind}\"}}");
    assert!(server.metric(&metric).await >= 10.0, "{metric}");
    let healthy = report(&server, "basketball-boxscore").await;
    assert_eq!(healthy["status"], "active");
    assert_eq!(healthy["failures"][kind], 0, "{healthy}");
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_deadline() {
    failing_fixture_is_typed("infinite_loop", "deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_hits_the_memory_cap() {
    failing_fixture_is_typed("memory_bomb", "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_traps() {
    failing_fixture_is_typed("deep_recursion", "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_trap_traps() {
    failing_fixture_is_typed("explicit_trap", "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_flood_is_bad_output() {
    failing_fixture_is_typed("emit_flood", "bad_output").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_emit_is_bad_output() {
    failing_fixture_is_typed("oversize_emit", "bad_output").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_bad_output() {
    failing_fixture_is_typed("invalid_json", "bad_output").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_but_under_the_deadline_is_fine() {
    let server = run_with("slow_but_ok", 3, 60).await;
    let hostile = report(&server, "hostile").await;
    assert_eq!(hostile["status"], "active", "{hostile}");
    assert_eq!(hostile["events"], 60);
    assert_eq!(hostile["emits"], 60);
    for kind in ["trap", "deadline", "memory", "bad_output"] {
        assert_eq!(hostile["failures"][kind], 0, "{hostile}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_quarantine_the_plugin_per_game_then_everywhere_and_the_rest_goes_on() {
    let server = run_with("explicit_trap", 3, 120).await;
    let hostile = report(&server, "hostile").await;
    // Quarantined for its game after the 3rd failure there: not called again for that game.
    assert_eq!(hostile["status"], "active", "{hostile}");
    assert_eq!(hostile["quarantined_games"].as_array().unwrap().len(), 1, "{hostile}");
    assert_eq!(hostile["failures"]["trap"], 3, "{hostile}");
    assert_eq!(server.metric(r#"opensports_plugin_quarantined_games{plugin="hostile"}"#).await, 1.0);
    // Failing in `quarantine_games` (3) games is a bug in the plugin: quarantined everywhere.
    for seed in [21, 22] {
        let game: Vec<_> = sim_events(Sport::Basketball, seed, 0).into_iter().take(10).collect();
        server.publish_all(&game).await;
    }
    let hostile = report(&server, "hostile").await;
    assert_eq!(hostile["status"], "quarantined", "{hostile}");
    assert_eq!(hostile["failures"]["trap"], 9, "{hostile}");
    assert_eq!(server.metric(r#"opensports_plugin_quarantined{plugin="hostile"}"#).await, 1.0);
    assert_eq!(report(&server, "basketball-boxscore").await["status"], "active");
    server.shutdown().await;
}

// ABI v2: the same suite against a TypeScript and a Python component.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_throw_trap() {
    component_is_typed("ts", "throw", 64, "trap").await;
    component_is_typed("py", "throw", 64, "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_loop_hit_the_deadline() {
    component_is_typed("ts", "loop", 64, "deadline").await;
    component_is_typed("py", "loop", 64, "deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_hoard_memory_hit_the_cap() {
    component_is_typed("ts", "memory", 24, "memory").await;
    component_is_typed("py", "memory", 24, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_that_flood_or_emit_bad_outputs_are_bad_output() {
    for lang in ["ts", "py"] {
        component_is_typed(lang, "flood", 64, "bad_output").await;
        component_is_typed(lang, "bad_topic", 64, "bad_output").await;
        // 128 KiB, twice the emit limit.
        component_is_typed(lang, "huge", 64, "bad_output").await;
    }
}
