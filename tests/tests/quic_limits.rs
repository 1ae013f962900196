//! Attacks on the QUIC port, reproduced on loopback, each asserting the bound that holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use opensports_client::Trust;
use opensports_proto::Sport;
use opensports_tests::{TestServer, WAIT, sim_events};

/// `n` distinct QUIC Initial packets (ALPN `opensports/1`), captured from a real client that
/// connects to a socket nobody answers.
async fn initials(n: usize) -> Vec<Vec<u8>> {
    let trap = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let trap_addr = trap.local_addr().unwrap();
    let tls = opensports_client::trust::client_config(&Trust::Fingerprint("00".repeat(32))).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let (mut out, mut pending) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 4096];
    let mut seen = std::collections::HashSet::new();
    while out.len() < n {
        pending.push(ep.connect(trap_addr, "localhost").unwrap());
        let (len, from) = tokio::time::timeout(WAIT, trap.recv_from(&mut buf)).await.unwrap().unwrap();
        // A retransmission of an earlier Initial is the same connection: keep distinct ones.
        if seen.insert(buf[..len.min(64)].to_vec()) {
            out.push(buf[..len].to_vec());
        }
        let _ = from;
    }
    drop(pending);
    ep.close(0u32.into(), b"");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_handshakes_does_not_lock_publishers_out() {
    // Small limits so the flood is cheap; before the fix, connection slots were taken at the
    // first packet and 1,100 Initials locked every publisher out for ~28 s (finding 4).
    let server = TestServer::start_with(|c| {
        c.ingest.max_handshakes = 64;
        c.ingest.max_connections = 64;
        c.ingest.hello_timeout_secs = 30;
    })
    .await;
    let flood = initials(300).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let quic_addr = server.running().quic_addr;
    for packet in &flood {
        sock.send_to(packet, quic_addr).await.unwrap();
    }
    // The flood's addresses never answer: past half the handshake slots they get a Retry and
    // hold nothing. A real publisher still connects, during the flood, and is acked.
    let mut publisher = server.publisher().await;
    let events = sim_events(Sport::Soccer, 5, 0);
    for e in &events[..10] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.acked(&events[0].game), 10);
    assert!(server.metric("opensports_ingest_retries_total").await > 0.0, "the flood was sent Retries");
    server.shutdown().await;
}
