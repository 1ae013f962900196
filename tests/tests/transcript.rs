//! One golden transcript for every subscriber transport (issue 26): WebSocket (`/ws`),
//! Server-Sent Events (`/v1/sse`) and GraphQL (`graphql-transport-ws` at `/graphql`) are
//! adapters over one session core, so the same script gives the same lines on each: sub,
//! snapshot, live, resume with `since`, reset, lag and resync, bad pattern, token expiry, key
//! revocation, idle close. The clients are written from each protocol's spec, over real sockets
//! against a real server; every transport's output is normalized to the same line format
//! (`snapshot t 3`, `msg t 4`, `reset t`, `lagged`, `error <code>`, `end`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::{SinkExt, StreamExt};
use opensports_proto::ws::{ServerMsg, parse_server_frame};
use opensports_server::auth::Role;
use opensports_tests::sse_client::SseReader;
use opensports_tests::{TestServer, WAIT, hs256, jws};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ws,
    Sse,
    Graphql,
}

const ALL: [Kind; 3] = [Kind::Ws, Kind::Sse, Kind::Graphql];

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A subscriber on one transport, reading normalized lines.
enum Client {
    Ws(Socket),
    Sse(SseReader),
    Graphql(Socket),
}

/// A subscription: patterns, `latest` mode or not, resume points.
struct Sub<'a> {
    patterns: &'a [&'a str],
    latest: bool,
    since: &'a [(&'a str, u64)],
}

fn sub<'a>(patterns: &'a [&'a str]) -> Sub<'a> {
    Sub { patterns, latest: false, since: &[] }
}

fn line(m: &ServerMsg) -> Option<String> {
    Some(match m {
        ServerMsg::Msg(p) => format!("msg {} {}", p.topic, p.seq),
        ServerMsg::Snapshot(p) => format!("snapshot {} {}", p.topic, p.seq),
        ServerMsg::Reset { topic } => format!("reset {topic}"),
        ServerMsg::Lagged { .. } => "lagged".into(),
        ServerMsg::Error { code, .. } => format!("error {code}"),
        ServerMsg::Subscribed { .. } | ServerMsg::Unsubscribed { .. } | ServerMsg::Pong { .. } => {
            return None;
        }
    })
}

impl Client {
    /// Connects with `token` (none: anonymous) and subscribes. A refusal before the stream
    /// starts (SSE answers it as an HTTP error) is its `error` line.
    async fn open(
        kind: Kind,
        server: &TestServer,
        token: Option<&str>,
        s: Sub<'_>,
    ) -> Result<Client, String> {
        let addr = server.running().http_addr;
        let mode = if s.latest { "latest" } else { "all" };
        match kind {
            Kind::Ws => {
                let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
                if let Some(t) = token {
                    req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
                }
                let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
                if !s.patterns.is_empty() {
                    let since: serde_json::Map<_, _> =
                        s.since.iter().map(|(t, q)| (t.to_string(), serde_json::json!(q))).collect();
                    let op =
                        serde_json::json!({"op": "sub", "topics": s.patterns, "mode": mode, "since": since});
                    ws.send(Message::text(op.to_string())).await.unwrap();
                }
                Ok(Client::Ws(ws))
            }
            Kind::Sse => {
                let since: Vec<String> = s.since.iter().map(|(t, q)| format!("{t}={q}")).collect();
                let topics = s.patterns.join(",").replace('+', "%2B").replace('#', "%23");
                let mut path = format!("/v1/sse?topics={topics}&mode={mode}");
                if !since.is_empty() {
                    path += &format!("&since={}", since.join("%20"));
                }
                let auth = token.map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                match SseReader::open(addr, &path, &headers).await {
                    Ok(r) => Ok(Client::Sse(r)),
                    Err((_, body)) => {
                        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                        Err(format!("error {}", v["error"]["code"].as_str().unwrap()))
                    }
                }
            }
            Kind::Graphql => {
                let mut req = format!("ws://{addr}/graphql").into_client_request().unwrap();
                req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
                let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
                assert_eq!(resp.headers()["sec-websocket-protocol"], "graphql-transport-ws");
                // The credential in the init payload, as a browser client sends it.
                let init = match token {
                    Some(t) => serde_json::json!({"type": "connection_init", "payload": {"token": t}}),
                    None => serde_json::json!({"type": "connection_init"}),
                };
                ws.send(Message::text(init.to_string())).await.unwrap();
                let ack = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
                assert_eq!(ack.to_text().unwrap(), r#"{"type":"connection_ack"}"#);
                if !s.patterns.is_empty() {
                    let since: Vec<_> =
                        s.since.iter().map(|(t, q)| serde_json::json!({"topic": t, "seq": q})).collect();
                    let query = "subscription($p: [String!]!, $m: Mode!, $s: [Resume!]!) { topics(patterns: $p, mode: $m, since: $s) { kind publication { topic seq } topic dropped } }";
                    let vars = serde_json::json!({"p": s.patterns, "m": mode.to_uppercase(), "s": since});
                    let msg = serde_json::json!({"type": "subscribe", "id": "1",
                        "payload": {"query": query, "variables": vars}});
                    ws.send(Message::text(msg.to_string())).await.unwrap();
                }
                Ok(Client::Graphql(ws))
            }
        }
    }

    /// The next lines: one message's worth (a WebSocket batch frame gives several); `end` once
    /// the server closed the stream.
    async fn next(&mut self) -> Vec<String> {
        loop {
            let lines = match self {
                Client::Sse(r) => match tokio::time::timeout(WAIT, r.next_or_end()).await.unwrap() {
                    None => vec!["end".to_string()],
                    Some(e) => line(&serde_json::from_value(e.data).unwrap()).into_iter().collect(),
                },
                Client::Ws(ws) => match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
                    Some(Ok(Message::Text(t))) => {
                        parse_server_frame(&t).unwrap().iter().filter_map(line).collect()
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => vec!["end".to_string()],
                    Some(Ok(_)) => continue,
                },
                Client::Graphql(ws) => match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
                    Some(Ok(Message::Text(t))) => gql_lines(&serde_json::from_str(&t).unwrap()),
                    Some(Ok(Message::Close(frame))) => {
                        // 4403 carries the core's reason code (the token or key); 4408 idle.
                        let mut lines = Vec::new();
                        if let Some(f) = frame
                            && u16::from(f.code) == 4403
                        {
                            lines.push(format!("error {}", f.reason));
                        }
                        lines.push("end".to_string());
                        lines
                    }
                    None | Some(Err(_)) => vec!["end".to_string()],
                    Some(Ok(_)) => continue,
                },
            };
            if !lines.is_empty() {
                return lines;
            }
        }
    }

    /// Reads until a line satisfies `done` (or the stream ends); every line read.
    async fn until(&mut self, mut done: impl FnMut(&str) -> bool) -> Vec<String> {
        let mut got = Vec::new();
        loop {
            for l in self.next().await {
                let stop = done(&l) || l == "end";
                got.push(l);
                if stop {
                    return got;
                }
            }
        }
    }
}

/// A `graphql-transport-ws` message as lines (pings and completes have none).
fn gql_lines(msg: &serde_json::Value) -> Vec<String> {
    match msg["type"].as_str() {
        Some("next") => {
            let d = &msg["payload"]["data"]["topics"];
            let p = &d["publication"];
            vec![match d["kind"].as_str().unwrap() {
                "MSG" => format!("msg {} {}", p["topic"].as_str().unwrap(), p["seq"]),
                "SNAPSHOT" => format!("snapshot {} {}", p["topic"].as_str().unwrap(), p["seq"]),
                "RESET" => format!("reset {}", d["topic"].as_str().unwrap()),
                "LAGGED" => "lagged".to_string(),
                other => panic!("kind {other}"),
            }]
        }
        Some("error") => vec![format!("error {}", msg["payload"][0]["extensions"]["code"].as_str().unwrap())],
        _ => Vec::new(),
    }
}

fn publish(server: &TestServer, topic: &str, n: u64, data: &str) {
    let fanout = &server.running().fanout;
    let t = fanout.topic(topic).unwrap();
    for _ in 0..n {
        fanout.publish(&t, 1, format!(r#"{{"v":"{data}"}}"#).as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_snapshot_live_resume_reset_and_bad_pattern_read_the_same_on_every_transport() {
    let server = TestServer::start_with(|c| c.fanout.history_len = 8).await;
    publish(&server, "tx/a", 3, "x");
    for kind in ALL {
        let label = format!("{kind:?}");
        // sub: the snapshot, then live messages.
        let now = server.running().fanout.latest("tx/a").unwrap().seq;
        let mut c = Client::open(kind, &server, None, sub(&["tx/+"])).await.unwrap();
        assert_eq!(c.next().await, [format!("snapshot tx/a {now}")], "{label}");
        publish(&server, "tx/a", 1, "x");
        let seq = server.running().fanout.latest("tx/a").unwrap().seq;
        assert_eq!(c.until(|l| l == format!("msg tx/a {seq}")).await, [format!("msg tx/a {seq}")], "{label}");
        drop(c);
        // resume with since: exactly what was missed, no snapshot.
        let mut c = Client::open(kind, &server, None, Sub { since: &[("tx/a", seq - 2)], ..sub(&["tx/a"]) })
            .await
            .unwrap();
        let want = [format!("msg tx/a {}", seq - 1), format!("msg tx/a {seq}")];
        assert_eq!(c.until(|l| l == want[1]).await, want, "{label}");
        drop(c);
        // a resume point older than the history kept (8): reset, then the snapshot.
        publish(&server, "tx/a", 8, "x");
        let mut c =
            Client::open(kind, &server, None, Sub { since: &[("tx/a", 1)], ..sub(&["tx/a"]) }).await.unwrap();
        let got = c.until(|l| l.starts_with("snapshot")).await;
        assert_eq!(got, ["reset tx/a".to_string(), format!("snapshot tx/a {}", seq + 8)], "{label}");
        drop(c);
        // a bad pattern: refused with its code.
        let got = match Client::open(kind, &server, None, sub(&["tx/#/a"])).await {
            Ok(mut c) => c.next().await,
            Err(early) => vec![early],
        };
        assert_eq!(got, ["error bad_pattern"], "{label}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_is_told_lagged_and_resyncs_on_every_transport() {
    let server = TestServer::start_with(|c| c.fanout.queue_len = 16).await;
    let big = "x".repeat(4096);
    for kind in ALL {
        let topic = format!("lag/{kind:?}");
        publish(&server, &topic, 1, "x");
        let mut c = Client::open(kind, &server, None, sub(&[&topic])).await.unwrap();
        assert_eq!(c.next().await, [format!("snapshot {topic} 1")]);
        // 12 MB while the client reads nothing: more than the socket buffers and the queue hold.
        publish(&server, &topic, 3000, &big);
        let last = format!("{topic} 3001");
        let got = c.until(|l| l.ends_with(&last)).await;
        assert!(got.contains(&"lagged".to_string()), "{kind:?}: no lagged in {} lines", got.len());
        let seq = |l: &String| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
        // (Two `lagged` in a row are possible: the second's snapshot is not resent.)
        let pubs: Vec<&String> = got.iter().filter(|l| l != &"lagged").collect();
        if let Some(i) = pubs.windows(2).position(|w| seq(w[0]) >= seq(w[1])) {
            let at = got.iter().position(|l| l == pubs[i]).unwrap();
            panic!("{kind:?}: seqs go up, but: {:?}", &got[at.saturating_sub(3)..(at + 3).min(got.len())]);
        }
        let lagged = got.iter().position(|l| l == "lagged").unwrap();
        let after = &got[lagged..got.len().min(lagged + 4)];
        assert!(got[lagged + 1].starts_with("snapshot"), "{kind:?}: a snapshot follows lagged: {after:?}");
        assert!(got.len() < 3001, "{kind:?}: messages were skipped, not all queued");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_revocation_and_idle_end_every_transport_the_same_way() {
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";
    let server = TestServer::start_with(|c| {
        c.auth.public_topics.clear();
        c.auth.jwt_hs256_secret = Some(SECRET.into());
        c.fanout.idle_timeout_secs = 1;
    })
    .await;
    let admin = server.admin_key();
    publish(&server, "tx/a", 1, "x");
    for kind in ALL {
        // A token that expires in 2 s: the session ends with token_expired.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({"sub": "viewer", "exp": now + 2, "topics": ["tx/#"]});
        let jwt = jws(&serde_json::json!({"alg":"HS256","typ":"JWT"}), &claims, hs256(SECRET.as_bytes()));
        let mut c = Client::open(kind, &server, Some(&jwt), sub(&["tx/a"])).await.unwrap();
        assert_eq!(c.next().await, ["snapshot tx/a 1"], "{kind:?}");
        assert_eq!(c.until(|_| false).await, ["error token_expired", "end"], "{kind:?}");
        // A key revoked while the session runs: key_revoked.
        let key = server.key(Role::Subscriber, &["tx/#"]);
        let mut c = Client::open(kind, &server, Some(&key), sub(&["tx/a"])).await.unwrap();
        assert_eq!(c.next().await, ["snapshot tx/a 1"], "{kind:?}");
        let id = key.split('_').nth(1).unwrap();
        let (status, body) = server.call(&admin, "DELETE", &format!("/v1/keys/{id}"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(c.until(|_| false).await, ["error key_revoked", "end"], "{kind:?}");
        // No subscription within idle_timeout_secs: closed (an SSE stream subscribes as it
        // starts, so it has no idle rule; it ends at its lifetime instead).
        if kind != Kind::Sse {
            let mut c = Client::open(kind, &server, Some(&admin), sub(&[])).await.unwrap();
            assert_eq!(c.until(|_| false).await, ["end"], "{kind:?}");
        }
    }
    for (transport, reason, n) in [
        ("ws", "token_expired", 1.0),
        ("sse", "token_expired", 1.0),
        ("graphql", "token_expired", 1.0),
        ("ws", "key_revoked", 1.0),
        ("sse", "key_revoked", 1.0),
        ("graphql", "key_revoked", 1.0),
        ("ws", "idle_timeout", 1.0),
        ("graphql", "idle_timeout", 1.0),
    ] {
        let sample =
            format!(r#"opensports_session_ended_total{{transport="{transport}",reason="{reason}"}}"#);
        assert_eq!(server.metric(&sample).await, n, "{sample}");
    }
    server.shutdown().await;
}
