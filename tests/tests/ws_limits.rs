//! Attacks on the WebSocket port, reproduced on loopback, each asserting the bound that holds
//! (issue 14 findings 2, 3, 8 and 17): counts and memory, never timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use opensports_proto::Sport;
use opensports_tests::{TestServer, WAIT, rss_kib, sim_events};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &TestServer) -> Ws {
    tokio_tungstenite::connect_async(server.ws_url()).await.unwrap().0
}

/// Reads until the server closes; returns the close code it sent.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("server closes the session") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

/// Reads until a `pong` op arrives; false if the session ends first.
async fn pong(ws: &mut Ws) -> bool {
    let mut n = 0u64;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(m))) => {
                n += 1;
                if m.to_text().is_ok_and(|t| t.contains(r#""op":"pong""#)) {
                    return true;
                }
            }
            other => {
                eprintln!("no pong after {n} messages: {other:?}");
                return false;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_pings_and_never_reads_holds_bounded_memory() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    ws.send(Message::text(r#"{"op":"sub","topics":["games"]}"#)).await.unwrap();
    let before = rss_kib();
    // 1,000,000 pings of 125 bytes: 125 MB of pongs the client never reads, far more than the
    // kernel's socket buffers hold. Before the bound, every pong stayed in the server's write
    // buffer (2.3 GB in 12 s in the report).
    let payload = vec![7u8; 125];
    for i in 0..1_000_000 {
        ws.feed(Message::Ping(payload.clone().into())).await.unwrap();
        if i % 1000 == 0 {
            ws.flush().await.unwrap();
        }
    }
    ws.flush().await.unwrap();
    // The server read them all: a ping op sent after them is answered once we read.
    ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!("ping flood: RSS {before} -> {after} KiB (grew {grown} KiB)");
    assert!(grown < 24 * 1024, "RSS grew {grown} KiB under a ping flood");
    assert!(pong(&mut ws).await, "the session still answers after the flood");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_floods_ops_without_reading_is_paused_not_buffered() {
    let server = TestServer::start().await;
    let mut ws = connect(&server).await;
    let before = rss_kib();
    // 2,000,000 unsub ops, each answered with `unsubscribed`: 140 MB of replies, far more than
    // the kernel's socket buffers hold in either direction.
    let op = r#"{"op":"unsub","topics":["game/some-pattern/#"]}"#;
    let flood = async {
        for _ in 0..2_000_000 {
            ws.feed(Message::text(op)).await.unwrap();
        }
        ws.flush().await.unwrap();
    };
    // The server stops reading once its replies reach the budget, so the client's writes
    // block on TCP flow control: the flood does not finish while nobody reads.
    let finished = tokio::time::timeout(std::time::Duration::from_secs(5), flood).await.is_ok();
    let after = rss_kib();
    let grown = after.saturating_sub(before);
    eprintln!("op flood: RSS {before} -> {after} KiB (grew {grown} KiB)");
    assert!(grown < 24 * 1024, "RSS grew {grown} KiB under an op flood");
    assert!(!finished, "the server read 2,000,000 ops whose replies nobody read");
    // Reading again lets the session go on.
    let mut replies = 0;
    while replies < 100 {
        let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let text = m.into_text().unwrap();
        replies += opensports_proto::ws::parse_server_frame(&text).unwrap().len();
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_keys_create_no_topics_and_new_games_still_get_theirs() {
    let server = TestServer::start_with(|c| c.fanout.max_topics = 1_000).await;
    let mut ws = connect(&server).await;
    // 50 subs of 1,000 since keys each: 50,000 would-be topics (finding 3 made 100,000).
    for round in 0..50 {
        let keys: Vec<String> = (0..1000).map(|i| format!(r#""game/x{round}-{i}/state":3"#)).collect();
        let op = format!(r#"{{"op":"sub","topics":["game/+/state"],"since":{{{}}}}}"#, keys.join(","));
        ws.send(Message::text(op)).await.unwrap();
    }
    let mut subscribed = 0;
    while subscribed < 50 {
        let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        subscribed += m.to_text().unwrap().matches(r#""op":"subscribed""#).count();
    }
    assert_eq!(server.metric("opensports_fanout_topics").await, 0.0);
    // A real game is acked and gets its topics.
    let mut publisher = server.publisher().await;
    let events = sim_events(Sport::Soccer, 3, 0);
    let game = events[0].game.clone();
    for e in &events[..5] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 5).await;
    let (status, _) = server.get(&format!("/v1/games/{game}")).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upgrades_are_closed_and_bad_frames_get_their_close_codes() {
    let server = TestServer::start_with(|c| c.fanout.idle_timeout_secs = 1).await;
    // Upgraded, never subscribed: closed with 1008 once the idle timeout passes.
    let mut idle = connect(&server).await;
    assert_eq!(close_code(&mut idle).await, Some(1008));
    // A subscribed session is not idle.
    let mut busy = connect(&server).await;
    busy.send(Message::text(r#"{"op":"sub","topics":["games"]}"#)).await.unwrap();
    // Over the 1 MiB hard cap: 1009, decided at the frame header. Only the header is sent (a
    // masked text frame announcing 1 MiB + 16 bytes): with the whole body in flight the server's
    // close would race the client's write (a reset instead of a readable close frame).
    let mut big = connect(&server).await;
    let mut header = vec![0x81u8, 0x80 | 127];
    header.extend_from_slice(&((1u64 << 20) + 16).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    match big.get_mut() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => {
            tokio::io::AsyncWriteExt::write_all(tcp, &header).await.unwrap()
        }
        _ => unreachable!("loopback without TLS"),
    }
    assert_eq!(close_code(&mut big).await, Some(1009));
    // A text frame that is not UTF-8: 1007.
    let mut bad = connect(&server).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    bad.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut bad).await, Some(1007));
    // The subscribed session outlived the idle timeout and still answers.
    busy.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    assert!(pong(&mut busy).await, "the subscribed session was closed");
    let closed =
        server.metric(r#"opensports_session_ended_total{transport="ws",reason="idle_timeout"}"#).await;
    assert!(closed >= 1.0, "idle closes are counted");
    server.shutdown().await;
}
