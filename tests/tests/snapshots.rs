//! Per-game state snapshots: a restart after `kill -9` that restores them and replays only the
//! events after them gives back exactly what a full replay of the log gives, both at the
//! restart and for every event published after it; a clean stop snapshots every game. Real parts: the built-in plugins (`.wasm`) and models, a
//! real redb log, four games (real NBA, NFL and soccer feeds from `OPENSPORTS_DATA` when set,
//! simulated otherwise, and a simulated F1 race).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use opensports_client::{Publisher, Subscriber};
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Event, Sport};
use opensports_server::config::PluginEntry;
use opensports_tests::{
    ChildServer, SIM_START_US, TestServer, WAIT, hostile_fixture, parse_metric, plugin_wasm, sim_events,
};

/// Every topic under `game/` (tracking aside): `(seq, data)` of its latest value.
type Latest = BTreeMap<String, (u64, serde_json::Value)>;

const EVERY: u64 = 40;

/// A real feed's events, or `None` when `OPENSPORTS_DATA` is not set.
fn feed(file: &str) -> Option<Vec<Event>> {
    opensports_tests::real_events(file)
}

fn games() -> Vec<Vec<Event>> {
    let real = [
        ("nba/nba_live_pbp_0022000001.json", Sport::Basketball),
        ("nfl/nfl_gamecenter_2019090500_GB_at_CHI.json", Sport::Football),
        ("soccer/statsbomb_15986_events.json", Sport::Soccer),
    ];
    let mut games: Vec<Vec<Event>> = real
        .iter()
        .enumerate()
        .map(|(i, (file, sport))| {
            feed(file).unwrap_or_else(|| sim_events(*sport, 40 + i as u64, SIM_START_US))
        })
        .collect();
    games.push(sim_events(Sport::F1, 44, SIM_START_US));
    games
}

async fn start(dir: &Path, snapshot_every: u64) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(move |c| {
        c.server.data_dir = dir;
        c.plugins.builtin = true;
        c.store.snapshot_every = snapshot_every;
    })
    .await
}

async fn publish(server: &TestServer, games: &[Vec<Event>], part: impl Fn(&[Event]) -> &[Event]) {
    for g in games {
        server.publish_all(part(g)).await;
    }
}

/// The latest value of every game topic, read as a new subscriber's snapshots.
async fn latest(server: &TestServer) -> Latest {
    latest_at(&server.ws_url()).await
}

async fn latest_at(ws: &str) -> Latest {
    let mut sub = Subscriber::connect(ws).await.unwrap();
    let before = sub.subscribe_and_wait(&["game/#"], Mode::Latest).await.unwrap();
    before
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::Snapshot(p) if !p.topic.contains("/tracking/") => Some((p.topic, (p.seq, p.data))),
            _ => None,
        })
        .collect()
}

/// Every message of every game topic while the rest of the games is published.
async fn rest(
    server: &TestServer,
    games: &[Vec<Event>],
    cut: &dyn Fn(&[Event]) -> usize,
) -> Vec<(String, u64, String)> {
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/#"], Mode::All).await.unwrap();
    publish(server, games, |g| &g[cut(g)..]).await;
    let mut got = Vec::new();
    let mut last_states = BTreeMap::new();
    let done =
        |s: &BTreeMap<String, u64>| games.iter().all(|g| s.get(&g[0].game) == Some(&g.last().unwrap().seq));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(&last_states) {
        assert!(tokio::time::Instant::now() < deadline, "never saw every game's last state: {last_states:?}");
        if let Ok(Some(ServerMsg::Msg(p))) = sub.next_timeout(Duration::from_millis(500)).await {
            if p.topic.ends_with("/state") {
                last_states.insert(
                    p.data["game"].as_str().unwrap().to_string(),
                    p.data["last_seq"].as_u64().unwrap(),
                );
            }
            got.push((p.topic, p.seq, p.data.to_string()));
        }
    }
    // The plugin outputs of the last events may trail the state by a batch.
    while let Ok(Some(ServerMsg::Msg(p))) = sub.next_timeout(Duration::from_millis(300)).await {
        got.push((p.topic, p.seq, p.data.to_string()));
    }
    got.sort();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_snapshots_gives_what_a_full_replay_gives() {
    let games = games();
    let cut = |g: &[Event]| g.len() * 2 / 3 + 7;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

    // Two thirds of each game into a server process that snapshots every EVERY events, then
    // `kill -9`: the snapshots are behind the last events, whose tails get replayed.
    let config =
        format!("[store]\nsnapshot_every = {EVERY}\n[plugins]\nbuiltin = true\ndeadline_us = 50000\n");
    let a_data = a.path().join("data");
    let mut first = ChildServer::new(&a_data, &config);
    first.start().await.unwrap();
    let mut publisher = Publisher::connect(first.publisher_config()).await.unwrap();
    for g in &games {
        for e in &g[..cut(g)] {
            publisher.send(e).await.unwrap();
        }
    }
    publisher.flush(WAIT).await.unwrap();
    for g in &games {
        let path = format!("/v1/games/{}", g[0].game);
        let want = g[cut(g) - 1].seq;
        for _ in 0..500 {
            let (_, body) = first.get(&path).await;
            if serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|v| v["last_seq"].as_u64() >= Some(want))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (_, metrics) = first.get("/metrics").await;
    let taken = parse_metric(&metrics, "opensports_store_snapshots_total");
    assert!(taken >= games.len() as f64, "snapshots taken: {taken}");
    let before = latest_at(&first.ws_url()).await;
    first.kill9().await;
    std::fs::copy(a_data.join("opensports.redb"), b.path().join("opensports.redb")).unwrap();

    // The same log, restored from snapshots and replayed whole. (Metrics are per process:
    // each server's are read before the next one starts.)
    let fast = start(&a_data, EVERY).await;
    assert_eq!(fast.metric("opensports_store_recovered_snapshots").await, games.len() as f64);
    let fast_events = fast.metric("opensports_store_recovered_events").await;
    let full = start(b.path(), 0).await;
    assert_eq!(full.metric("opensports_store_recovered_snapshots").await, 0.0);
    let full_events = full.metric("opensports_store_recovered_events").await;
    let logged: usize = games.iter().map(|g| cut(g)).sum();
    assert_eq!(full_events, logged as f64);
    assert!(
        fast_events > 0.0 && fast_events < (games.len() as u64 * EVERY) as f64,
        "from snapshots only the tails are replayed: {fast_events} of {full_events}"
    );

    let (fast_latest, full_latest) = (latest(&fast).await, latest(&full).await);
    assert!(fast_latest.keys().any(|t| t.contains("/basketball-boxscore/")), "{:?}", fast_latest.keys());
    assert!(fast_latest.keys().any(|t| t.ends_with("/winprob")), "{:?}", fast_latest.keys());
    assert_eq!(fast_latest, full_latest, "every topic's seq and latest value");
    assert_eq!(fast_latest, before, "and what the server showed before the restart");

    // The rest of each game: every output of every later event is the same, message for
    // message (plugins restored from their own state, core state, win probability).
    let (fast_rest, full_rest) = (rest(&fast, &games, &cut).await, rest(&full, &games, &cut).await);
    assert!(fast_rest.len() > games.len() * 10, "{}", fast_rest.len());
    assert_eq!(fast_rest.len(), full_rest.len());
    for (x, y) in fast_rest.iter().zip(&full_rest) {
        assert_eq!(x, y);
    }
    assert_eq!(latest(&fast).await, latest(&full).await);
    fast.shutdown().await;
    full.shutdown().await;
}

/// A plugin without `snapshot`/`restore` (a hand-written ABI v1 module) means its sport's games
/// take no snapshot and are replayed whole; a game of another sport still restores from its
/// snapshot. Either way the topics come back as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_without_snapshots_means_a_full_replay_of_its_games_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let config = move |c: &mut opensports_server::config::Config| {
        c.server.data_dir = path.clone();
        c.store.snapshot_every = EVERY;
        c.plugins.load = vec![
            PluginEntry::new(plugin_wasm("basketball-boxscore")),
            PluginEntry { name: Some("plain".into()), ..PluginEntry::new(hostile_fixture("slow_but_ok")) },
        ];
    };
    let games =
        [sim_events(Sport::Basketball, 51, SIM_START_US), sim_events(Sport::Soccer, 52, SIM_START_US)];
    let first = TestServer::start_with(config.clone()).await;
    for g in &games {
        first.publish_all(&g[..g.len() / 2]).await;
    }
    let before = latest(&first).await;
    assert!(before.keys().any(|t| t.ends_with("/plain/x")), "{:?}", before.keys());
    first.shutdown().await;

    // A clean stop snapshots every game where it is: the soccer game replays nothing.
    let again = TestServer::start_with(config).await;
    assert_eq!(again.metric("opensports_store_recovered_snapshots").await, 1.0, "the soccer game only");
    let replayed = again.metric("opensports_store_recovered_events").await;
    assert_eq!(
        replayed,
        (games[0].len() / 2) as f64,
        "the basketball game whole, nothing of the soccer game"
    );
    assert_eq!(latest(&again).await, before);
    // The clean stop kept the history rings: a resume from the start gets every message.
    let topic = format!("game/{}/state", games[1][0].game);
    let mut sub = Subscriber::connect(&again.ws_url()).await.unwrap();
    let mut seqs = Vec::new();
    for m in opensports_tests::from_start(&mut sub, &topic).await {
        match m {
            ServerMsg::Msg(p) => seqs.push(p.seq),
            ServerMsg::Subscribed { .. } => break,
            other => panic!("a resume from 0 after a clean stop: {other:?}"),
        }
    }
    assert_eq!(seqs, (1..=(games[1].len() / 2) as u64).collect::<Vec<_>>());
    again.shutdown().await;
}
