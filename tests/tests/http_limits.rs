//! Attacks on the HTTP port, reproduced on loopback (issue 14 finding 7): counts, not timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_tests::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_capped_and_timed_out_and_the_port_stays_usable() {
    let server = TestServer::start_with(|c| {
        c.server.max_http_connections = 32;
        c.server.http_header_timeout_secs = 1;
    })
    .await;
    let addr = server.running().http_addr;
    // 100 connections that start a request and never finish its headers.
    let mut conns = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        conns.push(s);
    }
    // Every one is closed by the server: past the cap at once, the others at the header timeout.
    let mut closed = 0;
    for s in &mut conns {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(_)) => closed += 1, // an error response, then the close
            Err(_) => {}
        }
    }
    assert_eq!(closed, 100, "half-open connections left open");
    let refused = server.metric("opensports_http_connections_refused_total").await;
    assert!(refused >= 60.0, "{refused} closed at accept");
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await;
}

/// A body announced longer than what is sent (the admin upload included, and a public route)
/// is answered `408 body_timeout` at `server.http_body_timeout_secs` and its connection closed,
/// instead of holding it (issue 28 finding 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_timed_out_on_every_route() {
    let server = TestServer::start_with(|c| c.server.http_body_timeout_secs = 1).await;
    let addr = server.running().http_addr;
    let admin = server.admin_key();
    let plugin = format!(
        "POST /v1/plugins/basketball-boxscore HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/wasm\r\nContent-Length: 1000000\r\n\r\n\0asm"
    );
    let graphql = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"query\":";
    for request in [plugin.as_str(), graphql] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        // The server answers and closes: read to the end (WAIT only bounds a hang).
        tokio::time::timeout(WAIT, s.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");
    }
    assert_eq!(server.metric("opensports_http_body_timeouts_total").await, 2.0);
    // A body that does arrive is unaffected.
    let (status, body) =
        server.post("/graphql", "application/json", br#"{"query":"{ games { id } }"}"#).await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await;
}
