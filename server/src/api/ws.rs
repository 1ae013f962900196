//! WebSocket subscribers at `GET /ws`.
//!
//! The handshake is done by hand on hyper's upgrade and the socket driven by tokio-tungstenite
//! 0.30 directly (not axum's `ws` feature, which pins an older tungstenite): one tungstenite in
//! the tree, shared with the Rust client, and direct use of `Utf8Bytes` (a publication's bytes
//! go to the socket without a copy) and of `feed` + one `flush` per batch.
//!
//! Each session runs two tasks: the reader applies client ops; the writer drains the session's
//! [`Outbox`] and writes everything pending as one frame (or a JSON-array batch frame).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use opensports_proto::error_code::reason;
use opensports_proto::topic::Pattern;
use opensports_proto::ws::{ClientOp, Mode};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{AppState, json_error};
use crate::fanout::outbox::{Item, Outbox};
use crate::fanout::{Fanout, SubId};
use crate::metrics as m;

/// Hard cap tungstenite enforces (it closes the socket past it); the configurable, friendlier
/// limit (`fanout.max_client_message_bytes`, answered with an `error`) sits below it.
const HARD_MESSAGE_CAP: usize = 1 << 20;

pub async fn upgrade(State(app): State<AppState>, req: Request) -> Response {
    let key = match handshake_key(req.headers()) {
        Ok(k) => k,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, "bad_upgrade", why),
    };
    if app.ws_sessions.load(Ordering::Relaxed) >= app.fanout.config().max_connections {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "WebSocket connection limit reached",
        );
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "WebSocket upgrade failed"),
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(HARD_MESSAGE_CAP))
            .max_frame_size(Some(HARD_MESSAGE_CAP));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        session(ws, app).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
        .body(Body::empty())
        .unwrap_or_default()
}

fn handshake_key(h: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("expected a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)");
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    h.get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or("missing Sec-WebSocket-Key")
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

async fn session(ws: Ws, app: AppState) {
    app.ws_sessions.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!(m::WS_SESSIONS).increment(1.0);
    let outbox = Outbox::new(app.fanout.config().queue_len);
    let (sink, mut stream) = ws.split();
    let writer = tokio::spawn(write_loop(sink, outbox.clone(), app.fanout.clone()));
    let mut subs = Subscriptions { ids: HashMap::new(), outbox: outbox.clone(), fanout: app.fanout.clone() };
    let mut shutdown = app.shutdown.clone();
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = shutdown.changed() => None,
        };
        match msg {
            Some(Ok(Message::Text(text))) => subs.handle_text(&text),
            Some(Ok(Message::Binary(_))) => {
                subs.error(reason::BINARY_NOT_SUPPORTED, "send JSON text frames".into());
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        }
        if outbox.is_closed() {
            break;
        }
    }
    subs.clear();
    outbox.close();
    let _ = writer.await;
    app.ws_sessions.fetch_sub(1, Ordering::Relaxed);
    metrics::gauge!(m::WS_SESSIONS).decrement(1.0);
}

/// The reader side's view of its subscriptions: pattern text → id.
struct Subscriptions {
    ids: HashMap<String, SubId>,
    outbox: Arc<Outbox>,
    fanout: Arc<Fanout>,
}

impl Subscriptions {
    fn error(&self, code: &'static str, message: String) {
        metrics::counter!(m::WS_ERRORS_TOTAL, "code" => code).increment(1);
        let frame = serde_json::json!({"op": "error", "code": code, "message": message}).to_string();
        self.outbox.push_control(Utf8Bytes::from(frame));
    }

    fn handle_text(&mut self, text: &str) {
        let max = self.fanout.config().max_client_message_bytes;
        if text.len() > max {
            return self
                .error(reason::MESSAGE_TOO_LARGE, format!("client messages are limited to {max} bytes"));
        }
        let op: ClientOp = match serde_json::from_str(text) {
            Ok(op) => op,
            Err(e) if e.is_data() => return self.error(reason::BAD_OP, e.to_string()),
            Err(e) => return self.error(reason::BAD_JSON, e.to_string()),
        };
        match op {
            ClientOp::Sub { topics, mode, since } => self.sub(topics, mode, since),
            ClientOp::Unsub { topics } => {
                for t in &topics {
                    if let Some(id) = self.ids.remove(t) {
                        self.fanout.unsubscribe(id);
                    }
                }
                let frame = serde_json::json!({"op": "unsubscribed", "topics": topics}).to_string();
                self.outbox.push_item(Item::Frame(Utf8Bytes::from(frame)));
            }
            ClientOp::Ping => self.outbox.push_control(Utf8Bytes::from_static(r#"{"op":"pong"}"#)),
        }
    }

    /// Applies a `sub` whole or not at all: every pattern and `since` key is checked first.
    fn sub(&mut self, topics: Vec<String>, mode: Mode, since: BTreeMap<String, u64>) {
        if topics.is_empty() {
            return self.error(reason::BAD_OP, "sub needs at least one topic pattern".into());
        }
        let mut patterns = Vec::with_capacity(topics.len());
        for t in &topics {
            match Pattern::parse(t) {
                Ok(p) => patterns.push(p),
                Err(e) => return self.error(reason::BAD_PATTERN, format!("{t:?}: {e}")),
            }
        }
        for key in since.keys() {
            let concrete = opensports_proto::topic::validate_topic(key).is_ok();
            if !concrete || !patterns.iter().any(|p| p.matches(key)) {
                return self.error(
                    reason::BAD_SINCE,
                    format!("since key {key:?} must be a concrete topic matched by this sub's patterns"),
                );
            }
        }
        let new = topics.iter().filter(|t| !self.ids.contains_key(*t)).count();
        let max = self.fanout.config().max_subscriptions;
        if self.ids.len() + new > max {
            return self
                .error(reason::TOO_MANY_SUBSCRIPTIONS, format!("at most {max} patterns per connection"));
        }
        for (text, pattern) in topics.iter().zip(patterns) {
            // Re-subscribing a pattern replaces it (new mode, new resume point).
            if let Some(old) = self.ids.remove(text) {
                self.fanout.unsubscribe(old);
            }
            let id = self.fanout.subscribe(&self.outbox, pattern, mode, &since);
            self.ids.insert(text.clone(), id);
        }
        let frame = serde_json::json!({"op": "subscribed", "topics": topics}).to_string();
        self.outbox.push_item(Item::Frame(Utf8Bytes::from(frame)));
    }

    fn clear(&mut self) {
        for (_, id) in self.ids.drain() {
            self.fanout.unsubscribe(id);
        }
    }
}

/// Drains the outbox and writes. One pending message goes out as its shared frame; several go
/// out as JSON-array batch frames of at most `max_batch_bytes`, copied once into the batch, all
/// fed and then flushed once.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    outbox: Arc<Outbox>,
    fanout: Arc<Fanout>,
) {
    let max_batch = fanout.config().max_batch_bytes;
    // Drained items, then the same turned into what goes out: only `Msg` and `Frame`.
    let (mut items, mut out) = (Vec::new(), Vec::new());
    // After a `lagged` notice: topic → seq of the snapshot sent, to skip older queued messages.
    let mut resynced: HashMap<Arc<str>, u64> = HashMap::new();
    let sent_messages = metrics::counter!(m::WS_MESSAGES_SENT_TOTAL);
    let sent_frames = metrics::counter!(m::WS_FRAMES_SENT_TOTAL);
    let delivery = metrics::histogram!(m::FANOUT_DELIVERY_SECONDS);
    loop {
        items.clear();
        let open = outbox.drain(&mut items);
        if !open {
            let _ = sink.close().await;
            return;
        }
        if items.is_empty() {
            outbox.wait().await;
            continue;
        }
        out.clear();
        let mut oldest: Option<std::time::Instant> = None;
        for item in items.drain(..) {
            match item {
                Item::Msg(p) => {
                    if let Some(&seen) = resynced.get(&p.topic) {
                        if p.seq <= seen {
                            continue;
                        }
                        resynced.remove(&p.topic);
                    }
                    oldest = Some(oldest.map_or(p.at, |o| o.min(p.at)));
                    out.push(Item::Msg(p));
                }
                Item::Snapshot(p) => out.push(Item::Frame(p.snapshot_frame())),
                frame @ Item::Frame(_) => out.push(frame),
                Item::Lagged => {
                    let (dropped, topics) = outbox.take_lag();
                    metrics::counter!(m::FANOUT_LAGGED_TOTAL).increment(1);
                    out.push(Item::Frame(Utf8Bytes::from(format!(
                        r#"{{"op":"lagged","dropped":{dropped}}}"#
                    ))));
                    for t in topics {
                        if let Some(p) = fanout.latest(&t) {
                            resynced.insert(t, p.seq);
                            out.push(Item::Frame(p.snapshot_frame()));
                        }
                    }
                }
            }
        }
        sent_messages.increment(out.len() as u64);
        // Group consecutive frames into batches of at most `max_batch` bytes.
        let (mut first, mut size) = (0, 0);
        for i in 0..out.len() {
            let len = frame_text(&out[i]).len() + 1;
            if i > first && size + len + 1 > max_batch {
                if sink.feed(batch_message(&out[first..i])).await.is_err() {
                    return outbox.close();
                }
                sent_frames.increment(1);
                (first, size) = (i, 0);
            }
            size += len;
        }
        if sink.feed(batch_message(&out[first..])).await.is_err() || sink.flush().await.is_err() {
            return outbox.close();
        }
        sent_frames.increment(1);
        if let Some(at) = oldest {
            delivery.record(at.elapsed().as_secs_f64());
        }
    }
}

/// The text an outgoing item is sent as (`Msg` and `Frame`; the writer resolves the others).
fn frame_text(item: &Item) -> &str {
    match item {
        Item::Msg(p) => p.frame.as_str(),
        Item::Frame(f) => f.as_str(),
        Item::Snapshot(_) | Item::Lagged => "",
    }
}

/// One message alone is its shared frame (no copy); several become a JSON array.
fn batch_message(group: &[Item]) -> Message {
    match group {
        [Item::Msg(p)] => return Message::Text(p.frame.clone()),
        [Item::Frame(f)] => return Message::Text(f.clone()),
        _ => {}
    }
    let mut text = String::with_capacity(group.iter().map(|i| frame_text(i).len() + 1).sum::<usize>() + 1);
    for item in group {
        text.push(if text.is_empty() { '[' } else { ',' });
        text.push_str(frame_text(item));
    }
    text.push(']');
    Message::Text(Utf8Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_goes_alone_several_go_as_an_ordered_array() {
        let frames: Vec<Item> = (1..=3)
            .map(|i| {
                Item::Frame(Utf8Bytes::from(format!(
                    r#"{{"op":"msg","topic":"t","seq":{i},"ts":0,"data":{{"a":[1,2]}}}}"#
                )))
            })
            .collect();
        let Message::Text(one) = batch_message(&frames[..1]) else { panic!() };
        assert_eq!(one.as_str(), frame_text(&frames[0]), "a single message is the shared frame itself");
        let Message::Text(all) = batch_message(&frames) else { panic!() };
        let parsed = opensports_proto::ws::parse_server_frame(&all).unwrap();
        let seqs: Vec<u64> = parsed
            .iter()
            .map(|m| match m {
                opensports_proto::ws::ServerMsg::Msg(p) => p.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
    }
}
