//! The plain-HTTP paths for graphics engines: a topic's latest value with its ETag, and
//! Server-Sent Events with `Last-Event-ID` resume (PROTOCOL.md §3.1), against a real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_proto::Sport;
use opensports_tests::{SIM_START_US, TestServer, WAIT, sim_events};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One raw HTTP/1.1 request with extra header lines; the connection, the status and the
/// response head (lower-cased) are returned, the body left unread.
async fn request(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (TcpStream, u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(WAIT, s.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    (s, status, head, raw[split..].to_vec())
}

/// A whole (non-streaming) response: status, head and body.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    let (mut s, status, head, mut body) = request(addr, path, &h).await;
    s.read_to_end(&mut body).await.unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    (status, head, body)
}

/// One Server-Sent Event: its `id` (if any) and its `data` parsed as JSON.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    data: serde_json::Value,
}

/// Reads an SSE response body (chunked) event by event.
struct SseReader {
    conn: TcpStream,
    /// Raw bytes not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked text not yet split into events.
    text: String,
}

impl SseReader {
    async fn open(
        addr: std::net::SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<SseReader, (u16, String)> {
        let (mut conn, status, head, raw) = request(addr, path, headers).await;
        if status != 200 {
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let have = raw.len().min(len);
            let mut body = raw;
            body.resize(len, 0);
            conn.read_exact(&mut body[have..]).await.unwrap();
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        Ok(SseReader { conn, raw, text: String::new() })
    }

    async fn next(&mut self) -> Sse {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim_start()).unwrap());
                    }
                }
                match data {
                    Some(data) => return Sse { id, data },
                    None => continue, // a keep-alive comment
                }
            }
            if self.dechunk() {
                continue;
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.conn.read(&mut buf))
                .await
                .expect("an event in time")
                .unwrap();
            assert!(n > 0, "the stream ended");
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// Moves whole chunks from `raw` to `text`; whether any moved.
    fn dechunk(&mut self) -> bool {
        let mut moved = false;
        while let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..eol]).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if self.raw.len() < eol + 2 + n + 2 {
                break;
            }
            self.text.push_str(std::str::from_utf8(&self.raw[eol + 2..eol + 2 + n]).unwrap());
            self.raw.drain(..eol + 2 + n + 2);
            moved = true;
        }
        moved
    }

    /// Reads until the publication of `topic` with seq `seq`; returns every event read.
    async fn until_seq(&mut self, seq: u64) -> Vec<Sse> {
        // Up to the first event with `seq`, then to the end of its chunk (the event with an id).
        let mut got = Vec::new();
        let mut seen = false;
        loop {
            let e = self.next().await;
            seen |= e.data["seq"].as_u64() == Some(seq);
            let done = seen && e.id.is_some();
            got.push(e);
            if done {
                return got;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_value_of_a_topic_comes_with_its_seq_as_etag() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Basketball, 7, SIM_START_US);
    let game = events[0].game.clone();
    server.publish_all(&events[..20]).await;
    let addr = server.running().http_addr;

    for path in
        [format!("/v1/topics/game/{game}/state/latest"), format!("/v1/topics/game%2F{game}%2Fstate/latest")]
    {
        let (status, head, body) = get(addr, &path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["topic"], format!("game/{game}/state"));
        assert_eq!(v["seq"], 20);
        assert_eq!(v["data"]["last_seq"], 20, "the value is the state after event 20");
        assert_eq!(v["ts"], events[19].ts);
        assert!(head.contains("etag: \"20\""), "{head}");
    }
    let path = format!("/v1/topics/game/{game}/state/latest");
    let (status, _, body) = get(addr, &path, &[("If-None-Match", "\"20\"")]).await;
    assert_eq!((status, body.as_str()), (304, ""), "unchanged: not modified, no body");
    server.publish_all(&events[20..21]).await;
    let (status, head, _) = get(addr, &path, &[("If-None-Match", "\"20\"")]).await;
    assert_eq!(status, 200, "a newer value is sent");
    assert!(head.contains("etag: \"21\""), "{head}");

    let (status, _, body) = get(addr, "/v1/topics/game/nope/state/latest", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("no_such_topic"), "{body}");
    let (status, _, body) = get(addr, "/v1/topics/game/+/state/latest", &[]).await;
    assert_eq!(status, 400, "a pattern is not a topic");
    assert!(body.contains("bad_pattern"), "{body}");
    let (status, _, _) = get(addr, &format!("/v1/topics/game/{game}/state"), &[]).await;
    assert_eq!(status, 404, "the path must end in /latest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_value_needs_read_access_to_its_topic() {
    let server = TestServer::start_with(|c| c.auth.public_topics = vec!["games".into()]).await;
    let events = sim_events(Sport::Soccer, 2, SIM_START_US);
    let game = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..5] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let reader = server.key(opensports_server::auth::Role::Subscriber, &[&format!("game/{game}/#")]);
    server.wait_for_seq_as(&reader, &game, 5).await;
    let addr = server.running().http_addr;
    let path = format!("/v1/topics/game/{game}/state/latest");
    let (status, _, _) = get(addr, &path, &[]).await;
    assert_eq!(status, 401, "anonymous");
    let other = server.key(opensports_server::auth::Role::Subscriber, &["game/other/#"]);
    let (status, _, _) = get(addr, &path, &[("Authorization", &format!("Bearer {other}"))]).await;
    assert_eq!(status, 403, "outside the key's scopes");
    let (status, _, body) = get(addr, &path, &[("Authorization", &format!("Bearer {reader}"))]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = get(addr, &format!("/v1/sse?topics=game/{game}/state"), &[]).await;
    assert_eq!(status, 401, "SSE is refused the same way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_every_message_and_resumes_from_last_event_id_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let events = sim_events(Sport::Football, 4, SIM_START_US);
    assert!(events.len() > 60);
    let game = events[0].game.clone();
    let topic = format!("game/{game}/state");
    server.publish_all(&events[..20]).await;
    let addr = server.running().http_addr;
    let path = format!("/v1/sse?topics={topic},game/{game}/winprob");

    let mut sse = SseReader::open(addr, &path, &[]).await.unwrap();
    let first = sse.until_seq(20).await;
    let snapshot = first.iter().find(|e| e.data["topic"] == topic.as_str()).unwrap();
    assert_eq!(snapshot.data["op"], "snapshot");
    assert_eq!(snapshot.data["seq"], 20);
    // One `id` per chunk, on its last publication: the id in force after the snapshots.
    let id = first.iter().rev().find_map(|e| e.id.clone()).unwrap();
    assert!(id.contains(&format!("{topic}=20")), "{id}");
    assert_eq!(server.metric(r#"opensports_sessions{transport="sse"}"#).await, 1.0);

    server.publish_all(&events[20..40]).await;
    let mut live = Vec::new();
    loop {
        // Until the resume point covers seq 40 (it rides the last event of each chunk).
        let e = sse.next().await;
        let done = e.id.as_deref().is_some_and(|id| id.contains(&format!("{topic}=40")));
        live.push(e);
        if done {
            break;
        }
    }
    let state: Vec<&Sse> = live.iter().filter(|e| e.data["topic"] == topic.as_str()).collect();
    assert_eq!(
        state.iter().map(|e| e.data["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        (21..=40).collect::<Vec<_>>()
    );
    assert!(state.iter().all(|e| e.data["op"] == "msg"));
    assert!(live.iter().filter(|e| e.id.is_some()).count() <= live.len(), "ids ride chunks, not every event");
    let last_id = live.iter().rev().find_map(|e| e.id.clone()).unwrap();
    assert!(last_id.contains(&format!("{topic}=40")), "{last_id}");
    assert!(last_id.contains(&format!("game/{game}/winprob=")), "the id covers every topic sent: {last_id}");
    drop(sse);

    // Away while 20 more events happen; back with the last id.
    server.publish_all(&events[40..60]).await;
    let mut sse = SseReader::open(addr, &path, &[("Last-Event-ID", &last_id)]).await.unwrap();
    let back = sse.until_seq(60).await;
    let back: Vec<&Sse> = back.iter().filter(|e| e.data["topic"] == topic.as_str()).collect();
    assert_eq!(
        back.iter()
            .map(|e| (e.data["op"].as_str().unwrap(), e.data["seq"].as_u64().unwrap()))
            .collect::<Vec<_>>(),
        (41..=60).map(|s| ("msg", s)).collect::<Vec<_>>(),
        "exactly what was missed: no snapshot, no gap, no duplicate"
    );
    // The same through ?since= for clients that cannot set the header.
    let since = last_id.replace(' ', "%20");
    let mut sse2 = SseReader::open(addr, &format!("{path}&since={since}"), &[]).await.unwrap();
    let again = sse2.until_seq(60).await;
    assert_eq!(again.iter().filter(|e| e.data["topic"] == topic.as_str()).count(), 20);
    drop((sse, sse2));
    for _ in 0..500 {
        if server.metric(r#"opensports_sessions{transport="sse"}"#).await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed SSE stream's session was not released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_refuses_bad_requests_and_shares_the_streaming_connection_limit() {
    let server = TestServer::start_with(|c| c.auth.max_ws_per_address = 2).await;
    let events = sim_events(Sport::Basketball, 9, SIM_START_US);
    let game = events[0].game.clone();
    server.publish_all(&events[..3]).await;
    let addr = server.running().http_addr;
    let refused = |path: String, headers: Vec<(&'static str, String)>| async move {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match SseReader::open(addr, &path, &h).await {
            Ok(_) => panic!("{path} was accepted"),
            Err(e) => e,
        }
    };
    for bad in ["game/%2Bx/state", "game/+x/state", "game//state"] {
        let (status, body) = refused(format!("/v1/sse?topics={bad}"), vec![]).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.contains("bad_pattern"), "{body}");
    }
    let (status, body) = refused("/v1/sse?topics=games&mode=sometimes".into(), vec![]).await;
    assert_eq!(status, 400, "a bad mode");
    assert!(body.contains("bad_op"), "{body}");
    let (status, body) = refused("/v1/sse".into(), vec![]).await;
    assert_eq!(status, 400, "no topics");
    assert!(body.contains("bad_op"), "{body}");
    let (status, body) = refused(
        format!("/v1/sse?topics=game/{game}/state"),
        vec![("Last-Event-ID", "game/x/state=abc".into())],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("bad_since"), "{body}");
    let (status, body) =
        refused(format!("/v1/sse?topics=game/{game}/state"), vec![("Last-Event-ID", "games=3".into())]).await;
    assert_eq!(status, 400, "a resume point outside the topics");
    assert!(body.contains("bad_since"), "{body}");

    // Two streams fill this address's slots: a third SSE stream and a WebSocket are refused.
    let path = format!("/v1/sse?topics=game/{game}/state&mode=latest");
    let mut a = SseReader::open(addr, &path, &[]).await.unwrap();
    let mut b = SseReader::open(addr, &path, &[]).await.unwrap();
    assert_eq!(a.next().await.data["seq"], 3);
    assert_eq!(b.next().await.data["seq"], 3);
    let (status, body) = refused(path.clone(), vec![]).await;
    assert_eq!(status, 429);
    assert!(body.contains("too_many_connections"), "{body}");
    assert!(
        opensports_client::Subscriber::connect(&server.ws_url()).await.is_err(),
        "WebSockets share the limit"
    );
    drop(a);
    for _ in 0..500 {
        if SseReader::open(addr, &path, &[]).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed stream did not give its slot back");
}
