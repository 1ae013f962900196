//! The durable log with real processes and real files: `kill -9` at random points, restart on
//! the same data dir, resume without gaps; corrupt files; backup under load; gaps; export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opensports_client::{Publisher, Subscriber};
use opensports_proto::control::Control;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Event, Sport};
use opensports_server::cli::store::{Server, Source, backup_cmd, export_cmd};
use opensports_server::sim;
use opensports_server::store::export::{self, Format};
use opensports_tests::{ChildServer, SIM_START_US, TestServer, WAIT, plugin_wasm, sim_events};

/// Publications per topic: seq → data.
type Seen = BTreeMap<String, Vec<(u64, serde_json::Value)>>;

fn game(seed: u64) -> Vec<Event> {
    sim_events(Sport::Basketball, seed, SIM_START_US)
}

fn plugin_toml() -> String {
    let wasm = plugin_wasm("basketball-boxscore");
    format!("[plugins]\ndeadline_us = 50000\n[[plugins.load]]\npath = {:?}\n", wasm.display().to_string())
}

/// Reads the subscriber until `done` says every expected publication arrived, reconnecting
/// (with `since`) whenever the server goes away.
async fn collect(sub: &mut Subscriber, seen: &mut Seen, done: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while !done(seen) {
        assert!(tokio::time::Instant::now() < deadline, "subscriber never completed: {:?}", lens(seen));
        match sub.next_timeout(Duration::from_millis(500)).await {
            Ok(Some(ServerMsg::Msg(p))) => seen.entry(p.topic).or_default().push((p.seq, p.data)),
            Ok(Some(ServerMsg::Subscribed { .. })) => {}
            Ok(Some(other)) => panic!("unexpected message across restarts: {other:?}"),
            Ok(None) => {}
            Err(_) => sub.reconnect(WAIT).await.unwrap(),
        }
    }
}

fn lens(seen: &Seen) -> BTreeMap<&str, u64> {
    seen.iter().map(|(t, v)| (t.as_str(), v.last().map_or(0, |p| p.0))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_no_acked_event_and_resumes_exactly() {
    let events = game(21);
    let id = events[0].game.clone();
    let pattern = format!("game/{id}/#");

    // The uninterrupted run: what every topic must carry, message for message.
    let ref_dir = tempfile::tempdir().unwrap();
    let mut reference = ChildServer::new(&ref_dir.path().join("data"), &plugin_toml());
    reference.start().await.unwrap();
    let mut sub = Subscriber::connect(&reference.ws_url()).await.unwrap();
    sub.subscribe_and_wait(&[&pattern], Mode::All).await.unwrap();
    let mut publisher = Publisher::connect(reference.publisher_config()).await.unwrap();
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let ends: BTreeMap<String, u64> = {
        let mut seen = Seen::new();
        let state_topic = format!("game/{id}/state");
        collect(&mut sub, &mut seen, |s| s.get(&state_topic).is_some_and(|v| v.len() == events.len())).await;
        // Plugin topics settle with the last event; give stragglers a moment.
        while let Ok(Some(ServerMsg::Msg(p))) = sub.next_timeout(Duration::from_millis(500)).await {
            seen.entry(p.topic).or_default().push((p.seq, p.data));
        }
        let ends = seen.iter().map(|(t, v)| (t.clone(), v.last().unwrap().0)).collect();
        let (_, final_state) = reference.get(&format!("/v1/games/{id}")).await;
        std::fs::write(ref_dir.path().join("state.json"), final_state).unwrap();
        reference.kill9().await;
        std::fs::write(ref_dir.path().join("seen.json"), serde_json::to_vec(&seen).unwrap()).unwrap();
        ends
    };
    let final_state = std::fs::read_to_string(ref_dir.path().join("state.json")).unwrap();
    let expected: Seen =
        serde_json::from_slice(&std::fs::read(ref_dir.path().join("seen.json")).unwrap()).unwrap();
    assert!(ends.len() >= 3, "state, winprob and plugin topics: {ends:?}");

    // The same game with five kill -9s at random events.
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::new(&dir.path().join("data"), &plugin_toml());
    server.start().await.unwrap();
    let mut sub = Subscriber::connect(&server.ws_url()).await.unwrap();
    sub.subscribe_and_wait(&[&pattern], Mode::All).await.unwrap();
    let mut rng = sim::Rng::new(0x5eed);
    let mut kill_at: Vec<usize> = (0..5)
        .map(|k| (k + 1) * events.len() / 7 + rng.range(0, events.len() as u64 / 10) as usize)
        .collect();
    kill_at.dedup();
    assert_eq!(kill_at.len(), 5);

    let acked = Arc::new(AtomicU64::new(0));
    let mut cfg = server.publisher_config();
    cfg.reconnect_attempts = 200;
    // A small window: while the server is down the publisher waits (instead of sending the
    // whole game into a dead connection), so every server instance gets traffic.
    cfg.max_unacked = 32;
    let publishing = {
        let (events, acked) = (events.clone(), acked.clone());
        tokio::spawn(async move {
            let mut publisher = Publisher::connect(cfg).await.unwrap();
            for e in &events {
                publisher.send(e).await.unwrap();
                acked.store(publisher.acked(&e.game), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            publisher.flush(WAIT).await.unwrap();
            acked.store(publisher.acked(&events[0].game), Ordering::SeqCst);
        })
    };
    let mut seen = Seen::new();
    let mut kills = Vec::new();
    for (k, &at) in kill_at.iter().enumerate() {
        // Kill once this instance has acked past the next point, plus a random few ms, so the
        // kill lands with events in flight.
        while acked.load(Ordering::SeqCst) < at as u64 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 4))).await;
        let acked_at_kill = acked.load(Ordering::SeqCst);
        server.kill9().await;
        server.start().await.unwrap();
        let seqs = server.logged_seqs(&id).await;
        eprintln!("kill {k}: {acked_at_kill} acked before, {} in the log after restart", seqs.len());
        kills.push((acked_at_kill, seqs.len() as u64));
        assert!(
            seqs.len() as u64 >= acked_at_kill,
            "kill {k}: acked {acked_at_kill}, log has {}",
            seqs.len()
        );
        assert!(seqs.iter().copied().eq(1..=seqs.len() as u64), "kill {k}: log is 1..=n once each");
        // The subscriber reads a little between kills, so it resumes (with `since`) across
        // several restarts, not only the last.
        let _ =
            tokio::time::timeout(Duration::from_millis(50), collect(&mut sub, &mut seen, |_| false)).await;
    }
    publishing.await.unwrap();
    // The kills landed mid-game: after some events were acked, and (on a loaded machine the
    // publisher may outrun the last one) mostly before the last one was.
    assert!(kills.iter().all(|&(a, _)| a > 0), "{kills:?}");
    assert!(kills.iter().filter(|&&(a, _)| a < events.len() as u64).count() >= 3, "{kills:?}");
    assert_eq!(acked.load(Ordering::SeqCst), events.len() as u64);
    let seqs = server.logged_seqs(&id).await;
    assert!(seqs.iter().copied().eq(1..=events.len() as u64), "every event logged exactly once");

    collect(&mut sub, &mut seen, |s| {
        ends.iter().all(|(t, end)| s.get(t).and_then(|v| v.last()).is_some_and(|p| p.0 >= *end))
    })
    .await;
    let (_, state) = server.get(&format!("/v1/games/{id}")).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&state).unwrap(),
        serde_json::from_str::<serde_json::Value>(&final_state).unwrap()
    );
    for (topic, want) in &expected {
        let got = seen.get(topic).unwrap_or_else(|| panic!("{topic} never arrived"));
        let seqs: Vec<u64> = got.iter().map(|p| p.0).collect();
        assert!(seqs.iter().copied().eq(1..=want.len() as u64), "{topic}: no gap, no duplicate: {seqs:?}");
        assert!(got == want, "{topic}: outputs identical to the uninterrupted run");
    }
    server.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_truncated_log_is_refused_naming_the_file() {
    // Garbage where the log should be.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join(opensports_server::store::FILE_NAME);
    std::fs::write(&file, vec![0x5a; 64 * 1024]).unwrap();
    let mut server = ChildServer::new(&data, "");
    let err = server.start().await.unwrap_err();
    assert!(err.contains(&file.display().to_string()) && err.contains("opensports restore"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), vec![0x5a; 64 * 1024], "nothing was reset");

    // A real log cut in half.
    let server = TestServer::start().await;
    let mut publisher = server.publisher().await;
    for e in &game(5) {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let src = server.dir.path().join(opensports_server::store::FILE_NAME);
    let len = std::fs::metadata(&src).unwrap().len();
    std::fs::copy(&src, &file).unwrap();
    server.shutdown().await;
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let mut server = ChildServer::new(&data, "");
    let err = server.start().await.unwrap_err();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len / 2, "nothing was reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_to_a_consistent_log() {
    let server = TestServer::start().await;
    let url = format!("http://{}", server.running().http_addr);
    let games: Vec<Vec<Event>> = (0..3).map(|s| game(100 + s)).collect();
    let load = {
        let cfg = server.publisher_config();
        let games = games.clone();
        tokio::spawn(async move {
            let mut p = Publisher::connect(cfg).await.unwrap();
            let longest = games.iter().map(Vec::len).max().unwrap();
            for i in 0..longest {
                for g in &games {
                    if let Some(e) = g.get(i) {
                        p.send(e).await.unwrap();
                    }
                }
            }
            p.flush(WAIT).await.unwrap();
        })
    };
    let out = tempfile::tempdir().unwrap();
    // The first backup as soon as something is committed (the load goes on), then two more.
    let first = format!("/v1/games/{}/events", games[0][0].game);
    for _ in 0..500 {
        if matches!(server.get(&first).await, (200, body) if !body.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut summaries = Vec::new();
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let (url, to) = (url.clone(), out.path().join(format!("backup-{i}.redb")));
        let key = server.admin_key();
        let s = tokio::task::spawn_blocking(move || {
            backup_cmd(
                &Source::Server(Server { url, key: Some(key), ca_pem: None }),
                &Default::default(),
                &to,
            )
            .unwrap();
            let db = opensports_server::store::open_db(&to).unwrap();
            export::verify(&db, &Default::default()).unwrap()
        })
        .await
        .unwrap();
        summaries.push(s);
    }
    load.await.unwrap();
    assert!(summaries.windows(2).all(|w| w[0].events <= w[1].events), "{summaries:?}");
    assert!(summaries[0].events > 0, "{summaries:?}");

    // Restore the middle one into a fresh data dir and serve it: every game as it was then.
    let restored = out.path().join("restored");
    let s =
        export::restore(&out.path().join("backup-1.redb"), &restored, false, &Default::default()).unwrap();
    assert_eq!(s, summaries[1]);
    assert!(
        export::restore(&out.path().join("backup-1.redb"), &restored, false, &Default::default())
            .unwrap_err()
            .contains("--force")
    );
    let mut child = ChildServer::new(&restored, "");
    child.start().await.unwrap();
    let mut total = 0;
    for g in &games {
        let seqs = child.logged_seqs(&g[0].game).await;
        assert!(seqs.iter().copied().eq(1..=seqs.len() as u64));
        if !seqs.is_empty() {
            let (_, state) = child.get(&format!("/v1/games/{}", g[0].game)).await;
            let v: serde_json::Value = serde_json::from_str(&state).unwrap();
            assert_eq!(
                v["last_seq"].as_u64(),
                Some(seqs.len() as u64),
                "state rebuilt from the restored log"
            );
        }
        total += seqs.len() as u64;
    }
    assert_eq!(total, s.events);
    child.kill9().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_jump_is_reported_flagged_and_filled() {
    let server = TestServer::start().await;
    let events = game(7);
    let id = events[0].game.clone();
    let gaps_before = server.metric("opensports_ingest_gaps_total").await;
    let mut publisher = server.publisher().await;
    for e in events[..2].iter().chain(&events[4..6]) {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let notices = publisher.take_notices();
    assert!(
        notices.iter().any(|n| matches!(n, Control::Gap { game, from: 3, to: 4 } if *game == id)),
        "{notices:?}"
    );
    assert_eq!(server.metric("opensports_ingest_gaps_total").await - gaps_before, 1.0);
    server.wait_for_seq(&id, 6).await;
    let (_, state) = server.get(&format!("/v1/games/{id}")).await;
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!((v["last_seq"].as_u64(), v["missing"].as_u64()), (Some(6), Some(2)), "{v}");

    // The publisher resends the missing two; the game is whole again.
    for e in &events[2..4] {
        publisher.send(e).await.unwrap();
    }
    publisher.send(&events[6]).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&id, 7).await;
    let (_, state) = server.get(&format!("/v1/games/{id}")).await;
    let v: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!((v["last_seq"].as_u64(), v.get("missing")), (Some(7), None), "{v}");
    let (_, body) = server.admin_get(&format!("/v1/games/{id}/events")).await;
    let seqs: Vec<u64> = body.lines().map(|l| serde_json::from_str::<Event>(l).unwrap().seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_gives_back_the_events_as_sent_online_and_offline() {
    let server = TestServer::start().await;
    let events = game(9);
    let id = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let (jsonl, csv) = (out.path().join("g.jsonl"), out.path().join("g.csv"));
    let url = format!("http://{}", server.running().http_addr);
    {
        let (id, jsonl, key) = (id.clone(), jsonl.clone(), server.admin_key());
        tokio::task::spawn_blocking(move || {
            export_cmd(
                &Source::Server(Server { url, key: Some(key), ca_pem: None }),
                &Default::default(),
                &id,
                Format::Jsonl,
                Some(&jsonl),
            )
        })
        .await
        .unwrap()
        .unwrap();
    }
    let back: Vec<Event> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(back, events);
    let (status, body) = server.admin_get("/v1/games/nope/events").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = server.admin_get(&format!("/v1/games/{id}/events?format=xml")).await;
    assert_eq!(status, 400);

    // Offline, from the data dir of the stopped server, as CSV.
    let data = server.dir.path().to_path_buf();
    let mut server = server;
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    server.shutdown().await;
    export_cmd(&Source::DataDir(data), &Default::default(), &id, Format::Csv, Some(&csv)).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("game,seq,ts,clock_ms,sport,type,event"));
    assert_eq!(lines.count(), events.len());
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_backups_each_succeed_or_are_told_busy_and_leave_no_files() {
    let server = TestServer::start().await;
    let events = game(31);
    let id = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..200] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    // Eight at once (finding 12: seven of eight failed with 500, sharing one temp file).
    let (addr, key) = (server.running().http_addr, server.admin_key());
    let get = || opensports_tests::http_call(addr, "GET", "/v1/backup", None, Some(&key));
    let results = futures_util::future::join_all((0..8).map(|_| get())).await;
    let ok = results.iter().filter(|(status, _)| *status == 200).count();
    assert!(ok >= 1, "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    for (status, body) in &results {
        match status {
            200 => assert!(body.len() > 1024, "a backup of {} bytes", body.len()),
            503 => assert!(String::from_utf8_lossy(body).contains("busy")),
            other => panic!("backup answered {other}: {}", String::from_utf8_lossy(body)),
        }
    }
    // Each streamed its own file and deleted it.
    let leftovers: Vec<String> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup") || n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(server.get(&format!("/v1/games/{id}")).await.0 == 200);
    server.shutdown().await;
}
