//! Plugins end to end: the shipped plugins built to real `.wasm`, run by the real server on
//! events published over QUIC, their outputs read over WebSocket; determinism, hot reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Event, Sport};
use opensports_server::config::PluginEntry;
use opensports_server::plugin::harness::Harness;
use opensports_server::sim;
use opensports_tests::{
    SIM_START_US, TestServer, WAIT, plugin_wasm, publications, read_until, shipped_plugins, sim_events,
};

fn offline(name: &str, events: &[Event]) -> Vec<String> {
    let wasm = std::fs::read(plugin_wasm(name)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = std::sync::Arc::new(
        opensports_server::model::ModelRegistry::load(&opensports_tests::workspace().join("models")).0,
    );
    let mut h = Harness::new(name, &wasm, b"{}", dir.path(), &models, None).unwrap();
    h.run(events).unwrap().iter().map(|l| l.to_jsonl()).collect()
}

#[test]
fn every_shipped_plugin_is_deterministic_on_a_replayed_game() {
    let cases = [
        ("basketball-boxscore", Sport::Basketball),
        ("soccer-shots", Sport::Soccer),
        ("football-drives", Sport::Football),
        ("f1-timing", Sport::F1),
        ("basketball-runs-rs", Sport::Basketball),
    ];
    assert_eq!(shipped_plugins().len(), cases.len());
    for (name, sport) in cases {
        let evs = sim_events(sport, 21, SIM_START_US);
        let a = offline(name, &evs);
        let b = offline(name, &evs);
        assert!(a.len() > 20, "{name} produced only {} outputs", a.len());
        assert_eq!(a, b, "{name}: two replays of the same game differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_outputs_equal_the_offline_run_and_boxscore_matches_the_score() {
    let wasm = plugin_wasm("basketball-boxscore");
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![PluginEntry::new(wasm.clone())];
        c.fanout.queue_len = 1 << 16;
        // Only the plugin's own triggers on game/{id}/triggers.
        c.triggers.defaults = false;
    })
    .await;
    let evs = sim_events(Sport::Basketball, 5, SIM_START_US);
    let game = evs[0].game.clone();
    let want = offline("basketball-boxscore", &evs);
    assert!(
        want.iter().any(|w| w.contains(r#""topic":"game/"#) && w.contains(r#"/triggers","#)),
        "the game has a run"
    );

    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/basketball-boxscore/#", "game/+/triggers"], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    for e in &evs {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let mut got = Vec::new();
    while got.len() < want.len() {
        match sub.next_timeout(WAIT).await.unwrap() {
            Some(ServerMsg::Msg(p)) => got.push(p),
            Some(_) => {}
            None => panic!("got {} of {} outputs", got.len(), want.len()),
        }
    }
    // Order is per topic (PROTOCOL.md 2.2): compare each topic's sequence of outputs.
    let mut by_topic: std::collections::BTreeMap<String, (Vec<serde_json::Value>, Vec<serde_json::Value>)> =
        Default::default();
    for w in &want {
        let w: serde_json::Value = serde_json::from_str(w).unwrap();
        let topic = w["topic"].as_str().unwrap().to_string();
        by_topic.entry(topic).or_default().0.push(w["data"].clone());
    }
    for g in &got {
        by_topic.entry(g.topic.clone()).or_default().1.push(g.data.clone());
    }
    for (topic, (w, g)) in &by_topic {
        assert_eq!(w, g, "server and offline runs agree on {topic}");
    }
    // The box score adds up to the game's score.
    let (_, body) = server.get(&format!("/v1/games/{game}")).await;
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    for side in ["home", "away"] {
        let team = got.iter().rev().find(|p| p.topic.ends_with(&format!("team/{side}"))).unwrap();
        assert_eq!(team.data["pts"], state["score"][side], "{side}");
    }
    let (_, plugins) = server.get("/v1/plugins").await;
    let v: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    assert_eq!(v["plugins"][0]["name"], "basketball-boxscore");
    assert_eq!(v["plugins"][0]["status"], "active");
    assert_eq!(v["plugins"][0]["sports"], serde_json::json!(["basketball"]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_plugins_run_on_their_sports_in_one_server() {
    let server = TestServer::start_with(|c| {
        c.plugins.load = shipped_plugins().iter().cloned().map(PluginEntry::new).collect();
    })
    .await;
    let mut sub = server.subscriber().await;
    let patterns = [
        "game/+/soccer-shots/xg",
        "game/+/football-drives/team/+",
        "game/+/f1-timing/order",
        "game/+/basketball-boxscore/team/+",
    ];
    sub.subscribe_and_wait(&patterns, Mode::Latest).await.unwrap();
    let games: Vec<_> = Sport::ALL.iter().map(|s| sim::generate(*s, 8, 0)).collect();
    let mut publisher = server.publisher().await;
    sim::publish(&mut publisher, &games, sim::Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let msgs = read_until(&mut sub, WAIT, |m| {
        if let ServerMsg::Msg(p) = m {
            seen.insert(p.topic.split('/').nth(2).unwrap().to_string());
        }
        seen.len() == 4
    })
    .await;
    assert!(!publications(&msgs).is_empty());
    for g in &games {
        server.wait_for_seq(&g.id, g.events.len() as u64).await;
    }
    // Each plugin only saw its own sport: no basketball-boxscore topic under a soccer game.
    let (_, plugins) = server.get("/v1/plugins").await;
    let v: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    for p in v["plugins"].as_array().unwrap() {
        assert_eq!(p["status"], "active", "{p}");
        assert_eq!(p["failures"]["trap"], 0, "{p}");
        let sport_events = games.iter().find(|g| p["sports"][0] == g.sport.as_str()).unwrap().events.len();
        assert_eq!(p["events"].as_u64().unwrap() as usize, sport_events, "{p}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_swaps_at_an_event_boundary_with_one_continuous_stream() {
    let wasm_path = plugin_wasm("basketball-boxscore");
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![PluginEntry::new(wasm_path.clone())];
        // Its own cache (in the data dir), to see what is written there.
        c.plugins.cache_dir = None;
    })
    .await;
    let evs = sim_events(Sport::Basketball, 6, SIM_START_US);
    let game = evs[0].game.clone();
    let topic = format!("game/{game}/basketball-boxscore/team/home");
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[topic.as_str()], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    let half = evs.len() / 2;
    for e in &evs[..half] {
        publisher.send(e).await.unwrap();
    }
    server.wait_for_seq(&game, half as u64).await;
    publisher.flush(WAIT).await.unwrap();
    // Once the log holds them, the history keeps the events' seqs only (trimmed once a second):
    // the new version below is then rebuilt from events read back from the log.
    let shards = |name: &'static str| {
        let server = &server;
        async move {
            let mut sum = 0.0;
            for shard in 0..2 {
                sum += server.metric(&format!("{name}{{shard=\"{shard}\"}}")).await;
            }
            sum
        }
    };
    for _ in 0..200 {
        if shards("opensports_plugin_history_events").await == half as f64
            && shards("opensports_plugin_history_held_events").await == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        shards("opensports_plugin_history_held_events").await,
        0.0,
        "the history still holds logged events"
    );

    // A new version: same code plus a custom section, so a different hash.
    let mut wasm = std::fs::read(&wasm_path).unwrap();
    wasm.extend_from_slice(&[0x00, 0x08, 0x07]);
    wasm.extend_from_slice(b"version");
    let (status, body) =
        server.admin_post("/v1/plugins/basketball-boxscore", "application/wasm", &wasm).await;
    assert_eq!(status, 200, "{body}");
    let new_version =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"].as_str().unwrap().to_string();

    for e in &evs[half..] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, evs.len() as u64).await;
    let (_, state) = server.get(&format!("/v1/games/{game}")).await;
    let final_home = serde_json::from_str::<serde_json::Value>(&state).unwrap()["score"]["home"].clone();
    let msgs =
        read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.data["pts"] == final_home)).await;
    let pubs = publications(&msgs);
    for w in pubs.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "no gap and no duplicate across the swap");
        assert!(w[1].data["pts"].as_u64() >= w[0].data["pts"].as_u64(), "points never go back");
    }
    let (_, plugins) = server.get("/v1/plugins").await;
    assert!(plugins.contains(&new_version), "{plugins}");
    // A broken upload is refused and the running version stays.
    let (status, body) =
        server.admin_post("/v1/plugins/basketball-boxscore", "application/wasm", b"not wasm").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_plugin"));
    let (_, plugins) = server.get("/v1/plugins").await;
    assert!(plugins.contains(&new_version), "{plugins}");
    // A module that compiles but is refused (another ABI version) leaves nothing in the
    // compiled-plugin cache (issue 14 finding 11).
    let cache = server.dir.path().join("plugin-cache");
    let files = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    let before = files();
    assert!(before >= 2, "both accepted versions are cached");
    let wrong_abi = r#"(module (memory (export "memory") 1)
        (func (export "os_abi_version") (result i32) i32.const 2)
        (func (export "os_buffer") (param i32) (result i32) i32.const 0)
        (func (export "on_event") (param i32 i32) (result i32) i32.const 0))"#;
    let (status, body) =
        server.admin_post("/v1/plugins/basketball-boxscore", "application/wasm", wrong_abi.as_bytes()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ABI version 2"), "{body}");
    assert_eq!(files(), before, "a refused upload left a compiled file behind");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_plugin_file_is_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("basketball_boxscore.wasm");
    std::fs::copy(plugin_wasm("basketball-boxscore"), &path).unwrap();
    let server = TestServer::start_with(|c| c.plugins.load = vec![PluginEntry::new(path.clone())]).await;
    let version = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body).unwrap()["plugins"][0]["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, before) = server.get("/v1/plugins").await;
    let mut wasm = std::fs::read(&path).unwrap();
    wasm.extend_from_slice(&[0x00, 0x04, 0x03, b'n', b'e', b'w']);
    std::fs::write(&path, &wasm).unwrap();
    let mut after = before.clone();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = server.get("/v1/plugins").await.1;
        if version(&after) != version(&before) {
            break;
        }
    }
    assert_ne!(version(&after), version(&before), "the watcher reloads a changed file");
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_names_the_open_log_the_models_and_the_plugins() {
    let server = TestServer::start_with(|c| {
        c.plugins.load = shipped_plugins().iter().cloned().map(PluginEntry::new).collect();
    })
    .await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["status"].as_str(), v["log"].as_str()), (Some("ready"), Some("open")), "{v}");
    let models: Vec<&str> = v["models"].as_array().unwrap().iter().filter_map(|m| m.as_str()).collect();
    for m in ["nba_wp", "nfl_wp", "nfl_ep", "soccer_xg", "soccer_xg_geo"] {
        assert!(models.contains(&m), "{m} missing: {v}");
    }
    let plugins = v["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 5, "{v}");
    assert!(plugins.iter().all(|p| p["status"] == "active"), "{v}");
    assert!(plugins.iter().any(|p| p["name"] == "basketball-boxscore"), "{v}");
    server.shutdown().await;
}
