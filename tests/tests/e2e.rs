//! End to end on loopback: the Rust client publishes over real QUIC, WebSocket clients
//! subscribe, and what they receive is checked against the events sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Body, Event, Side, Sport, basketball as bk};
use opensports_server::sim;
use opensports_tests::{SIM_START_US, TestServer, WAIT, publications, read_until, sim_events};

/// Score after each event, computed from the events alone (not by the server's code).
fn expected_scores(events: &[Event]) -> Vec<(u32, u32)> {
    let mut s = (0, 0);
    events
        .iter()
        .map(|e| {
            let pts = match &e.body {
                Body::Basketball(bk::Event::Shot { side, points, made: true, .. }) => {
                    Some((*side, u32::from(*points)))
                }
                Body::Basketball(bk::Event::FreeThrow { side, made: true, .. }) => Some((*side, 1)),
                _ => None,
            };
            match pts {
                Some((Side::Home, p)) => s.0 += p,
                Some((Side::Away, p)) => s.1 += p,
                None => {}
            }
            s
        })
        .collect()
}

fn score(p: &opensports_proto::ws::Publication) -> (u32, u32) {
    let s = &p.data["score"];
    (s["home"].as_u64().unwrap() as u32, s["away"].as_u64().unwrap() as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basketball_game_reaches_pattern_subscriber_in_order_with_correct_scores() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Basketball, 3, SIM_START_US);
    let game = events[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/state"], Mode::All).await.unwrap();
    let accepted_before = server.metric("opensports_ingest_events_total").await;
    let mut publisher = server.publisher().await;
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(&game), events.len() as u64);

    let n = events.len() as u64;
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == n)).await;
    let pubs = publications(&msgs);
    assert_eq!(pubs.len(), events.len(), "one state message per event");
    let want = expected_scores(&events);
    for (i, p) in pubs.iter().enumerate() {
        assert_eq!(p.topic, format!("game/{game}/state"));
        assert_eq!(p.seq, i as u64 + 1, "topic seqs are dense and in order");
        assert_eq!(p.data["last_seq"], events[i].seq, "state follows event order");
        assert_eq!(p.ts, events[i].ts);
        assert_eq!(score(p), want[i], "score after event {}", i + 1);
    }
    let last = pubs.last().unwrap();
    assert_eq!(last.data["status"], "ended");
    assert!(want.last().unwrap().0 + want.last().unwrap().1 > 150, "a whole game was played");

    // The HTTP API agrees.
    let (status, body) = server.get(&format!("/v1/games/{game}")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["score"], last.data["score"]);
    let (_, games) = server.get("/v1/games").await;
    assert!(games.contains(&game), "{games}");
    let accepted = server.metric("opensports_ingest_events_total").await - accepted_before;
    assert_eq!(accepted, n as f64);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_snapshot_then_live_and_json_codec_works() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Football, 5, SIM_START_US);
    let game = events[0].game.clone();
    let topic = format!("game/{game}/state");
    let mut cfg = server.publisher_config();
    cfg.codec = opensports_proto::codec::Codec::Json;
    let mut publisher = opensports_client::Publisher::connect(cfg).await.unwrap();
    let half = events.len() / 2;
    for e in &events[..half] {
        publisher.send(e).await.unwrap();
    }
    server.wait_for_seq(&game, half as u64).await;

    let mut late = server.subscriber().await;
    let before = late.subscribe_and_wait(&[topic.as_str()], Mode::All).await.unwrap();
    let [ServerMsg::Snapshot(snap)] = before.as_slice() else {
        panic!("expected one snapshot, got {before:?}")
    };
    assert_eq!(snap.seq, half as u64);
    assert_eq!(snap.data["last_seq"], half as u64);

    for e in &events[half..] {
        publisher.send(e).await.unwrap();
    }
    let n = events.len() as u64;
    let msgs = read_until(&mut late, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == n)).await;
    let seqs: Vec<u64> = publications(&msgs).iter().map(|p| p.seq).collect();
    assert_eq!(
        seqs,
        ((half as u64 + 1)..=n).collect::<Vec<_>>(),
        "live updates continue right after the snapshot"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_since_gets_exactly_the_missed_messages_or_a_reset() {
    let server = TestServer::start_with(|c| c.fanout.history_len = 64).await;
    let events = sim_events(Sport::Soccer, 2, SIM_START_US);
    let game = events[0].game.clone();
    let topic = format!("game/{game}/state");
    let mut publisher = server.publisher().await;
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/#"], Mode::All).await.unwrap();
    for e in &events[..100] {
        publisher.send(e).await.unwrap();
    }
    read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(p) if p.seq == 100)).await;
    sub.disconnect().await;

    // 40 more while away: within the 64 kept.
    for e in &events[100..140] {
        publisher.send(e).await.unwrap();
    }
    server.wait_for_seq(&game, 140).await;
    sub.reconnect(WAIT).await.unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Subscribed { .. })).await;
    assert!(msgs.iter().all(|m| !matches!(m, ServerMsg::Snapshot(_) | ServerMsg::Reset { .. })), "{msgs:?}");
    let seqs: Vec<u64> = publications(&msgs).iter().filter(|p| p.topic == topic).map(|p| p.seq).collect();
    assert_eq!(seqs, (101..=140).collect::<Vec<_>>(), "exactly the missed messages, once each");

    // 100 more while away: more than the history keeps, so reset + snapshot.
    sub.disconnect().await;
    for e in &events[140..240] {
        publisher.send(e).await.unwrap();
    }
    server.wait_for_seq(&game, 240).await;
    sub.reconnect(WAIT).await.unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Subscribed { .. })).await;
    let state_msgs: Vec<&ServerMsg> = msgs
        .iter()
        .filter(|m| match m {
            ServerMsg::Reset { topic: t } => *t == topic,
            ServerMsg::Msg(p) | ServerMsg::Snapshot(p) => p.topic == topic,
            _ => false,
        })
        .collect();
    assert!(matches!(state_msgs[0], ServerMsg::Reset { .. }), "{state_msgs:?}");
    assert!(matches!(state_msgs[1], ServerMsg::Snapshot(p) if p.seq == 240), "{state_msgs:?}");
    assert_eq!(state_msgs.len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_latest_subscriber_gets_newest_values_and_does_not_slow_the_fast_one() {
    let server = TestServer::start().await;
    // F1 races: ~1,200 state messages of ~2.5 KB each per race, more than socket buffers hold.
    let races: Vec<Vec<Event>> = (0..6).map(|seed| sim_events(Sport::F1, seed, SIM_START_US)).collect();
    let total: usize = races.iter().map(Vec::len).sum();
    let mut slow = server.subscriber().await;
    slow.subscribe_and_wait(&["game/+/state"], Mode::Latest).await.unwrap();
    let mut fast = server.subscriber().await;
    fast.subscribe_and_wait(&["game/+/state"], Mode::All).await.unwrap();

    let mut publisher = server.publisher().await;
    let publish = async {
        for race in &races {
            for e in race {
                publisher.send(e).await.unwrap();
            }
        }
        publisher.flush(WAIT).await.unwrap();
    };
    let mut fast_count = 0;
    let read_fast = async {
        while fast_count < total {
            match fast.next_timeout(WAIT).await.unwrap() {
                Some(ServerMsg::Msg(_)) => fast_count += 1,
                Some(_) => {}
                None => panic!("fast subscriber stalled at {fast_count}/{total}"),
            }
        }
    };
    tokio::join!(publish, read_fast);
    assert_eq!(fast_count, total, "the fast subscriber got everything while the slow one did not read");

    // Now the slow one reads: newest values only, never going backwards, ending on the final state.
    let mut last_seq = std::collections::HashMap::new();
    let mut count = 0;
    let mut finals = 0;
    while finals < races.len() {
        let Some(ServerMsg::Msg(p)) = slow.next_timeout(WAIT).await.unwrap() else { continue };
        count += 1;
        let prev = last_seq.insert(p.topic.clone(), p.seq).unwrap_or(0);
        assert!(p.seq > prev, "latest mode never goes backwards");
        let game = p.data["game"].as_str().unwrap();
        let race_len = races.iter().find(|r| r[0].game == game).unwrap().len() as u64;
        if p.seq == race_len {
            finals += 1;
            assert_eq!(p.data["status"], "ended");
        }
    }
    assert!(count < total, "conflated: {count} of {total} messages");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_and_tracking_datagrams_are_latest_wins() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Basketball, 9, SIM_START_US);
    let game = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..50] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 50).await;

    // A second publisher (a retry after reconnect) re-sends 1..=50 and goes on to 60.
    let before = server.metric("opensports_ingest_duplicates_total").await;
    let mut retry = server.publisher().await;
    for e in &events[..60] {
        retry.send(e).await.unwrap();
    }
    retry.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 60).await;
    let dups = server.metric("opensports_ingest_duplicates_total").await - before;
    assert_eq!(dups, 50.0);
    let latest = server.running().fanout.latest(&format!("game/{game}/state")).unwrap();
    assert_eq!(latest.seq, 60, "duplicates published nothing");

    // Tracking: datagrams, latest wins, older samples dropped.
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[&format!("game/{game}/tracking/+")], Mode::All).await.unwrap();
    let sample = |ts, x| opensports_proto::tracking::TrackingSample {
        game: game.clone(),
        ts,
        entity: "ball".into(),
        x,
        y: 1.0,
        z: 2.0,
        speed: 3.0,
    };
    publisher.send_tracking(&sample(2_000, 10.0)).unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(_))).await;
    assert_eq!(publications(&msgs)[0].data["x"], 10.0);
    publisher.send_tracking(&sample(1_000, 5.0)).unwrap(); // older: dropped
    publisher.send_tracking(&sample(3_000, 30.0)).unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| matches!(m, ServerMsg::Msg(_))).await;
    let p = publications(&msgs)[0];
    assert_eq!((p.seq, p.data["x"].as_f64()), (2, Some(30.0)));
    // Tracking for a game the server does not have creates nothing (finding 14).
    let topics = server.running().fanout.topic_count();
    let mut stray = sample(4_000, 1.0);
    stray.game = "no-such-game".into();
    publisher.send_tracking(&stray).unwrap();
    let notices = loop {
        let n = publisher.take_notices();
        if !n.is_empty() {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(
        notices.iter().any(
            |n| matches!(n, opensports_proto::control::Control::Reject { code, .. } if code == "unknown_game")
        ),
        "{notices:?}"
    );
    assert_eq!(server.running().fanout.topic_count(), topics);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_game_frees_every_topic_it_had() {
    let server = TestServer::start_with(|c| c.pipeline.ended_game_ttl_secs = 0).await;
    let events = sim_events(Sport::Basketball, 12, SIM_START_US);
    let game = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..20] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 20).await;
    let sample = opensports_proto::tracking::TrackingSample {
        game: game.clone(),
        ts: 1,
        entity: "ball".into(),
        x: 1.0,
        y: 1.0,
        z: 0.0,
        speed: 0.0,
    };
    publisher.send_tracking(&sample).unwrap();
    let fanout = server.running().fanout.clone();
    let tracking = format!("game/{game}/tracking/ball");
    for _ in 0..500 {
        if fanout.latest(&tracking).is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(fanout.latest(&tracking).is_some(), "the tracking topic exists");
    // The rest of the game, to its end: with a TTL of 0 it leaves memory at the next sweep.
    for e in &events[20..] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let (status, _) = server.get(&format!("/v1/games/{game}")).await;
    assert_eq!(status, 200);
    let mut gone = false;
    for _ in 0..600 {
        if server.get(&format!("/v1/games/{game}")).await.0 == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "the ended game was evicted");
    assert_eq!(fanout.topic_count(), 1, "only `games` is left");
    assert!(fanout.latest(&tracking).is_none());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn games_topic_lists_every_sport_and_batches_parse() {
    let server = TestServer::start().await;
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["games"], Mode::Latest).await.unwrap();
    let mut publisher = server.publisher().await;
    let games: Vec<_> = Sport::ALL.iter().map(|s| sim::generate(*s, 4, 0)).collect();
    sim::publish(&mut publisher, &games, sim::Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    let msgs = read_until(&mut sub, WAIT, |m| {
        matches!(m, ServerMsg::Msg(p) if p.data["games"].as_array().is_some_and(|g| g.len() == 4 && g.iter().all(|x| x["status"] == "ended")))
    })
    .await;
    let last = publications(&msgs).pop().unwrap().clone();
    let sports: Vec<&str> =
        last.data["games"].as_array().unwrap().iter().map(|g| g["sport"].as_str().unwrap()).collect();
    for s in ["basketball", "football", "soccer", "f1"] {
        assert!(sports.contains(&s), "{sports:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_games_than_the_stream_limit_all_get_through() {
    // The server allows 4 open event streams per connection; the client learns it from the
    // welcome and finishes fully acked streams to open new ones, instead of stalling.
    let server = TestServer::start_with(|c| c.ingest.max_streams_per_connection = 4).await;
    let mut publisher = server.publisher().await;
    let games: Vec<Vec<Event>> = (0..12).map(|seed| sim_events(Sport::Soccer, seed, SIM_START_US)).collect();
    for round in 0..3 {
        for g in &games {
            for e in &g[round * 10..(round + 1) * 10] {
                publisher.send(e).await.unwrap();
            }
        }
    }
    tokio::time::timeout(WAIT, publisher.flush(WAIT)).await.unwrap().unwrap();
    for g in &games {
        assert_eq!(publisher.acked(&g[0].game), 30);
        server.wait_for_seq(&g[0].game, 30).await;
    }
    server.shutdown().await;
}

/// Samples of `opensports_event_age_seconds{stage}` at or under `le` seconds, and in all.
fn age_counts(metrics: &str, stage: &str, le: f64) -> (f64, f64) {
    let prefix = format!("opensports_event_age_seconds_bucket{{stage=\"{stage}\",le=\"");
    let (mut under, mut all) = (0.0, 0.0);
    for line in metrics.lines().filter_map(|l| l.strip_prefix(&prefix)) {
        let Some((bound, rest)) = line.split_once('"') else { continue };
        let count: f64 = rest.rsplit(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0.0);
        if bound == "+Inf" {
            all = count;
        } else if bound.parse::<f64>() == Ok(le) {
            under = count;
        }
    }
    (under, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_takes_the_event_age_from_its_source_ts() {
    let server = TestServer::start().await;
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/state"], Mode::All).await.unwrap();
    let now_us =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    // Five events stamped in 2023 and five stamped now, in two games.
    let old: Vec<Event> = sim_events(Sport::Basketball, 4, SIM_START_US).into_iter().take(5).collect();
    let fresh: Vec<Event> = sim_events(Sport::Basketball, 5, now_us).into_iter().take(5).collect();
    assert_ne!(old[0].game, fresh[0].game);
    let mut publisher = server.publisher().await;
    for batch in [&old, &fresh] {
        for e in batch {
            publisher.send(e).await.unwrap();
        }
        publisher.flush(WAIT).await.unwrap();
        let (game, seq) = (batch[0].game.clone(), batch[4].seq);
        read_until(
            &mut sub,
            WAIT,
            |m| matches!(m, ServerMsg::Msg(p) if p.topic.contains(&game) && p.data["last_seq"] == seq),
        )
        .await;
    }
    let (_, metrics) = server.get("/metrics").await;
    for stage in ["read", "shard", "published"] {
        let (under_10s, all) = age_counts(&metrics, stage, 10.0);
        assert_eq!(all, 10.0, "{stage}: one age per event");
        assert_eq!(under_10s, 5.0, "{stage}: the fresh events are seconds old, the 2023 ones years");
    }
    let (under_10s, all) = age_counts(&metrics, "flushed", 10.0);
    assert!(under_10s >= 1.0 && all > under_10s, "flushed: {under_10s} of {all} writes under 10 s");
    server.shutdown().await;
}
