//! WebSocket subscriber with resume.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use opensports_proto::topic::Pattern;
use opensports_proto::ws::{ClientOp, Mode, ServerMsg, parse_server_frame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The connection was not made: `code` is the server's error code when it refused the
    /// upgrade (`unauthorized`, `forbidden`, `backoff`, `too_many_connections`, ...), else
    /// `connect_failed` (PROTOCOL.md §2.6).
    #[error("cannot connect to {url}: {code}: {reason}")]
    Connect { url: String, code: String, reason: String },
    #[error("connection closed")]
    Closed,
    #[error("WebSocket: {0}")]
    Ws(String),
    #[error("bad message from server: {0}")]
    Protocol(String),
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A subscriber connection. Remembers its subscriptions and the last seq seen per topic; after
/// [`Subscriber::reconnect`] it resubscribes with `since`, so the server sends exactly the
/// messages missed (or `reset` + snapshot when they are no longer kept).
#[derive(Debug)]
pub struct Subscriber {
    url: String,
    ws: Option<Socket>,
    /// Every `sub` made: patterns, mode, delay (replayed with resume points on reconnect).
    subs: Vec<(Vec<String>, Mode, u64)>,
    last_seq: HashMap<String, u64>,
    pending: VecDeque<ServerMsg>,
    frames: u64,
}

impl Subscriber {
    /// Connects to `ws://host:port/ws`.
    pub async fn connect(url: &str) -> Result<Subscriber, SubscribeError> {
        let ws = dial(url).await?;
        Ok(Subscriber {
            url: url.into(),
            ws: Some(ws),
            subs: Vec::new(),
            last_seq: HashMap::new(),
            pending: VecDeque::new(),
            frames: 0,
        })
    }

    /// Subscribes to topic patterns. Replies (`snapshot`s, then `subscribed`) arrive via
    /// [`Subscriber::next`].
    pub async fn subscribe(&mut self, topics: &[&str], mode: Mode) -> Result<(), SubscribeError> {
        self.subscribe_delayed(topics, mode, 0).await
    }

    /// [`Subscriber::subscribe`] with a delay: each message arrives at its source time plus
    /// `delay_ms` (PROTOCOL.md §2, delay lines); a reconnect resumes with the same delay.
    pub async fn subscribe_delayed(
        &mut self,
        topics: &[&str],
        mode: Mode,
        delay_ms: u64,
    ) -> Result<(), SubscribeError> {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        self.subs.push((topics.clone(), mode, delay_ms));
        self.send_op(&ClientOp::Sub { topics, mode, since: BTreeMap::new(), delay_ms, id: None }).await
    }

    /// Subscribes and waits for the `subscribed` reply, returning what came before it
    /// (snapshots, resumed messages, resets).
    pub async fn subscribe_and_wait(
        &mut self,
        topics: &[&str],
        mode: Mode,
    ) -> Result<Vec<ServerMsg>, SubscribeError> {
        self.subscribe(topics, mode).await?;
        let mut before = Vec::new();
        loop {
            match self.next().await? {
                ServerMsg::Subscribed { .. } => return Ok(before),
                ServerMsg::Error { code, message, .. } => {
                    return Err(SubscribeError::Protocol(format!("{code}: {message}")));
                }
                other => before.push(other),
            }
        }
    }

    /// Sends any client op.
    pub async fn send_op(&mut self, op: &ClientOp) -> Result<(), SubscribeError> {
        let text = serde_json::to_string(op).map_err(|e| SubscribeError::Protocol(e.to_string()))?;
        self.send_text(text).await
    }

    /// Sends raw text (for tools and tests of bad input).
    pub async fn send_text(&mut self, text: String) -> Result<(), SubscribeError> {
        let ws = self.ws.as_mut().ok_or(SubscribeError::Closed)?;
        ws.send(Message::text(text)).await.map_err(|e| SubscribeError::Ws(e.to_string()))
    }

    /// The next server message; batch frames are split into their messages, in order.
    pub async fn next(&mut self) -> Result<ServerMsg, SubscribeError> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                if let ServerMsg::Msg(p) | ServerMsg::Snapshot(p) = &m {
                    self.last_seq.insert(p.topic.clone(), p.seq);
                }
                return Ok(m);
            }
            let ws = self.ws.as_mut().ok_or(SubscribeError::Closed)?;
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    self.frames += 1;
                    let msgs =
                        parse_server_frame(&text).map_err(|e| SubscribeError::Protocol(e.to_string()))?;
                    self.pending.extend(msgs);
                }
                Some(Ok(Message::Close(_))) | None => {
                    self.ws = None;
                    return Err(SubscribeError::Closed);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    self.ws = None;
                    return Err(SubscribeError::Ws(e.to_string()));
                }
            }
        }
    }

    /// [`Subscriber::next`] with a deadline; `Ok(None)` when nothing came in time.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ServerMsg>, SubscribeError> {
        match tokio::time::timeout(timeout, self.next()).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Last seq received per topic.
    pub fn last_seq(&self, topic: &str) -> Option<u64> {
        self.last_seq.get(topic).copied()
    }

    /// WebSocket frames received (a batch frame counts once).
    pub fn frames_received(&self) -> u64 {
        self.frames
    }

    /// Drops the connection (as a network failure would).
    pub async fn disconnect(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            let _ = ws.close(None).await;
        }
        self.pending.clear();
    }

    /// Reconnects, retrying with backoff for up to `patience`, and resubscribes every pattern
    /// with `since` set to the last seq seen of each topic it matches.
    pub async fn reconnect(&mut self, patience: Duration) -> Result<(), SubscribeError> {
        self.disconnect().await;
        let deadline = tokio::time::Instant::now() + patience;
        let mut attempt = 0;
        let ws = loop {
            let backoff = crate::backoff::delay(attempt);
            match dial(&self.url).await {
                Ok(ws) => break ws,
                Err(e) if tokio::time::Instant::now() + backoff > deadline => return Err(e),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
            }
        };
        self.ws = Some(ws);
        for (topics, mode, delay_ms) in self.subs.clone() {
            let patterns: Vec<Pattern> = topics.iter().filter_map(|t| Pattern::parse(t).ok()).collect();
            let since = self
                .last_seq
                .iter()
                .filter(|(t, _)| patterns.iter().any(|p| p.matches(t)))
                .map(|(t, s)| (t.clone(), *s))
                .collect();
            self.send_op(&ClientOp::Sub { topics, mode, since, delay_ms, id: None }).await?;
        }
        Ok(())
    }
}

/// Bytes read from the socket at a time. tungstenite zero-fills its whole read buffer before
/// every read: its 128 KiB default costs more than the read itself at live-event rates, while
/// 16 KiB still takes a full batch frame in a few reads.
const READ_BUFFER: usize = 16 * 1024;

async fn dial(url: &str) -> Result<Socket, SubscribeError> {
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), true).await.map_err(|e| {
            let code = match &e {
                // The server refused the upgrade: its JSON error body names the code.
                tokio_tungstenite::tungstenite::Error::Http(resp) => resp
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                    .and_then(|v| v["error"]["code"].as_str().map(str::to_string)),
                _ => None,
            };
            SubscribeError::Connect {
                url: url.into(),
                code: code.unwrap_or_else(|| CONNECT_FAILED.into()),
                reason: e.to_string(),
            }
        })?;
    Ok(ws)
}

/// The error code of a connection that was not made and not refused by the server.
pub const CONNECT_FAILED: &str = "connect_failed";

impl SubscribeError {
    /// The error's code (PROTOCOL.md §2.6): the server's for a refused connection, else
    /// `connect_failed`, `closed`, `ws` or `protocol`.
    pub fn code(&self) -> &str {
        match self {
            SubscribeError::Connect { code, .. } => code,
            SubscribeError::Closed => "closed",
            SubscribeError::Ws(_) => "ws",
            SubscribeError::Protocol(_) => "protocol",
        }
    }
}
