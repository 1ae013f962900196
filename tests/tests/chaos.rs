//! Crash cycles (issue 28): `kill -9` the server again and again, at random moments, under a
//! publisher that records every ack and resends whatever was not acked (the Rust client's
//! reconnect), four games of the four sports at once. After every restart the log holds each
//! game's events 1..=n once each, n at least what was acked before the kill; at the end every
//! event is in the log exactly once and every game's state equals a clean, uninterrupted run
//! of the same events.
//!
//! The crashing server snapshots each game every 25 of its events, so restarts mostly
//! restore a snapshot and replay the tail.
//!
//! `CHAOS_CYCLES` sets the number of kills: CI runs 20; the long job (`tests/long`) runs 100.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opensports_client::Publisher;
use opensports_proto::{Event, Sport};
use opensports_server::sim;
use opensports_tests::{ChildServer, SIM_START_US, TestServer, sim_events};
use std::sync::Mutex;

const CI_CYCLES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_cycles_lose_no_acked_event_and_end_in_the_states_of_a_clean_run() {
    let cycles: usize = std::env::var("CHAOS_CYCLES").ok().and_then(|c| c.parse().ok()).unwrap_or(CI_CYCLES);
    // Enough events that every cycle lands mid-stream: four sports, more rounds for more cycles.
    let rounds = cycles.div_ceil(8).max(1) as u64;
    let sports = [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1];
    let games: Vec<Vec<Event>> =
        (0..rounds).flat_map(|r| sports.iter().map(move |&s| sim_events(s, 900 + r, SIM_START_US))).collect();
    let total: u64 = games.iter().map(|g| g.len() as u64).sum();
    // Round robin over the games, as a venue's feeds interleave.
    let mut order = Vec::new();
    let longest = games.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        order.extend(games.iter().filter_map(|g| g.get(i).cloned()));
    }

    let dir = tempfile::tempdir().unwrap();
    // Snapshots every 25 events of a game, so most restarts restore mid-game snapshots (core
    // state, win probability, topics, the built-in plugins' state) and replay only the rest.
    let config = "[store]\nsnapshot_every = 25\n[plugins]\nbuiltin = true\ndeadline_us = 50000\n";
    let mut server = ChildServer::new(&dir.path().join("data"), config);
    server.start().await.unwrap();
    let acked: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let mut cfg = server.publisher_config();
    cfg.reconnect_attempts = 1_000;
    // A small window, so every server instance gets traffic rather than a dead connection.
    cfg.max_unacked = 64;
    // The publisher sends only up to `allowed` events: each cycle lets it go one step further,
    // so the kills spread over the whole stream however slow a restart is.
    let allowed = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (order, acked, allowed) = (order.clone(), acked.clone(), allowed.clone());
        tokio::spawn(async move {
            let mut publisher = Publisher::connect(cfg).await.unwrap();
            let record = |p: &Publisher, acked: &Mutex<BTreeMap<String, u64>>| {
                let mut a = acked.lock().unwrap();
                for (game, n) in a.iter_mut() {
                    *n = (*n).max(p.acked(game));
                }
            };
            for (i, e) in order.iter().enumerate() {
                while i as u64 >= allowed.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                acked.lock().unwrap().entry(e.game.clone()).or_insert(0);
                publisher.send(e).await.unwrap();
                record(&publisher, &acked);
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            publisher.flush(Duration::from_secs(120)).await.unwrap();
            record(&publisher, &acked);
        })
    };

    let mut rng = sim::Rng::new(0xc4a05);
    let step = total / (cycles as u64 + 1);
    let (mut kills, mut restored) = (Vec::new(), 0.0);
    for k in 0..cycles {
        // Let the publisher go one step further; kill once most of the step is acked, plus a
        // random few ms, so the kill lands with events in flight.
        let target = (k as u64 + 1) * step;
        allowed.store(target, Ordering::SeqCst);
        let sum = || acked.lock().unwrap().values().sum::<u64>();
        while sum() < target - step / 2 && !publishing.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 6))).await;
        let before = acked.lock().unwrap().clone();
        server.kill9().await;
        server.start().await.unwrap();
        let (_, metrics) = server.get("/metrics").await;
        restored += opensports_tests::parse_metric(&metrics, "opensports_store_recovered_snapshots");
        for (game, &n) in &before {
            let seqs = server.logged_seqs(game).await;
            assert!(seqs.len() as u64 >= n, "kill {k}: {game} acked {n}, the log has {}", seqs.len());
            assert!(
                seqs.iter().copied().eq(1..=seqs.len() as u64),
                "kill {k}: {game}'s log is 1..=n once each"
            );
        }
        kills.push(before.values().sum::<u64>());
    }
    allowed.store(u64::MAX, Ordering::SeqCst);
    publishing.await.unwrap();
    // The kills landed mid-stream, after some events were acked and before the last one.
    assert!(kills.iter().all(|&a| a > 0 && a < total), "acked at each kill: {kills:?} of {total}");
    assert!(restored > 0.0, "no restart restored a snapshot");

    // Every event in the log exactly once, every state equal to a clean run's.
    let clean = TestServer::start().await;
    for g in &games {
        let id = &g[0].game;
        assert!(server.logged_seqs(id).await.into_iter().eq(1..=g.len() as u64), "{id}: every event once");
        clean.publish_all(g).await;
        let state = |body: String| serde_json::from_str::<serde_json::Value>(&body).unwrap();
        let (_, crashed) = server.get(&format!("/v1/games/{id}")).await;
        let (_, reference) = clean.get(&format!("/v1/games/{id}")).await;
        assert_eq!(state(crashed), state(reference), "{id}: state after {cycles} kill -9s");
    }
    eprintln!(
        "chaos: {cycles} kill -9 cycles ({restored} games restored from snapshots), {total} events acked in {} games, 0 lost, 0 duplicated, states equal a clean run",
        games.len()
    );
    clean.shutdown().await;
    server.kill9().await;
}
