//! WebSocket subscribers at `GET /ws`.
//!
//! The handshake is done by hand on hyper's upgrade and the socket driven by tokio-tungstenite
//! 0.30 directly (not axum's `ws` feature, which pins an older tungstenite): one tungstenite in
//! the tree, shared with the Rust client, and direct use of `Utf8Bytes` (a publication's bytes
//! go to the socket without a copy) and of `feed` + one `flush` per batch.
//!
//! Each session runs two tasks: the reader hands client frames to the sans-IO [`Session`]
//! (`fanout::session`, where the protocol rules live); the writer drains the session's
//! [`Outbox`], lets [`Framer`] turn it into frames (or JSON-array batch frames), feeds them all
//! and flushes once.

use opensports_proto::error_code::http as http_code;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::stream::{Lifetime, Wake};
use super::{AppState, json_error};
use crate::fanout::outbox::Outbox;
use crate::fanout::session::{Access, Framer, Session, Transport};
use crate::metrics as m;

/// Hard cap tungstenite enforces (it closes the socket past it); the configurable, friendlier
/// limit (`fanout.max_client_message_bytes`, answered with an `error`) sits below it.
const HARD_MESSAGE_CAP: usize = 1 << 20;
/// Bytes tungstenite buffers before writing to the socket; its bound is this plus [`MAX_OUT_MESSAGE`].
const WRITE_BUFFER: usize = 16 * 1024;
/// Bytes tungstenite reads from the socket at a time. Clients send small ops, and tungstenite
/// zero-fills this much before every read and keeps it per connection (its default, 128 KiB,
/// is 125 MiB of resident memory at 1,000 subscribers); a larger message still arrives whole.
const READ_BUFFER: usize = 4 * 1024;
/// Largest single message the server sends (the `games` list of 10,000 games is ~2 MB).
const MAX_OUT_MESSAGE: usize = 4 << 20;

pub async fn upgrade(State(app): State<AppState>, req: Request) -> Response {
    let key = match handshake_key(req.headers()) {
        Ok(k) => k,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, http_code::BAD_UPGRADE, why),
    };
    // Credentials are checked before the upgrade: a wrong one gets a plain 401.
    let (parts, body) = req.into_parts();
    let caller = match super::admin::authenticate(&app, &parts) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let req = Request::from_parts(parts, body);
    // The slots are taken before the upgrade: never more sessions than the limits.
    let reserved = req.extensions().get::<super::serve::Reserved>().is_some();
    let slots = match super::stream::slots(&app, &caller, reserved) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let on_upgrade = hyper::upgrade::on(req);
    let tasks = app.tasks.clone();
    tasks.spawn(async move {
        let _slots = slots;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "WebSocket upgrade failed"),
        };
        // The write buffer is bounded too: tungstenite queues a pong for every ping it reads,
        // and a client that sends pings without reading would otherwise grow it without end
        // (past the bound the newest pong replaces the pending one; our own frames wait).
        let config = WebSocketConfig::default()
            .max_message_size(Some(HARD_MESSAGE_CAP))
            .max_frame_size(Some(HARD_MESSAGE_CAP))
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(WRITE_BUFFER)
            .max_write_buffer_size(WRITE_BUFFER + MAX_OUT_MESSAGE);
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        session(ws, app, caller.principal).await;
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

/// The socket side of a session: client frames go to [`Session`]; the writer task writes what
/// [`Framer`] makes of the outbox; the core's timers and revocations come through [`Lifetime`].
async fn session(ws: Ws, app: AppState, principal: crate::auth::Principal) {
    let outbox = Outbox::bounded(app.fanout.config().queue_len, app.fanout.config().queue_bytes);
    let (sink, mut stream) = ws.split();
    let mut writer = tokio::spawn(write_loop(sink, outbox.clone(), Framer::new(app.fanout.clone())));
    let access =
        Access { principal, public: app.auth.cfg.public_topics.clone().into(), transport: Transport::Ws };
    let mut session = Session::new(app.fanout.clone(), outbox.clone(), access, Instant::now());
    let mut lifetime = Lifetime::new(&app);
    let mut writer_done = false;
    loop {
        // A client that sends ops without reading the answers is not read any further until
        // the writer has sent them: its replies, not the server's memory, take the wait.
        if outbox.over_budget() {
            tokio::select! {
                _ = outbox.room() => {}
                event = lifetime.wait(session.poll_timeout(), session.watches_revocation()) => {
                    match lifetime.apply(&mut session, event) {
                        Wake::Ended | Wake::Shutdown => break,
                        Wake::Nothing | Wake::Keepalive => {}
                    }
                }
            }
        }
        let (deadline, watches) = (session.poll_timeout(), session.watches_revocation());
        let msg = tokio::select! {
            msg = stream.next() => msg,
            // The writer gave up (the socket failed): nothing will be sent any more.
            _ = &mut writer => {
                writer_done = true;
                None
            }
            event = lifetime.wait(deadline, watches) => match lifetime.apply(&mut session, event) {
                Wake::Ended | Wake::Shutdown => break,
                Wake::Nothing | Wake::Keepalive => continue,
            },
        };
        match msg {
            Some(Ok(Message::Text(text))) => session.on_text(&text, Instant::now()),
            Some(Ok(Message::Binary(_))) => session.on_binary(),
            Some(Ok(Message::Close(_))) | None => break,
            // Reading a ping queues its pong; with the write buffer full of pongs the client
            // has not read, the read reports it. The pong waits (the buffer is bounded); the
            // session goes on once the client reads, and the reader backs off meanwhile.
            Some(Err(tokio_tungstenite::tungstenite::Error::WriteBufferFull(_))) => {
                metrics::counter!(m::RATE_LIMITED_TOTAL, "limit" => "ws_write_buffer").increment(1);
                tokio::time::sleep(WRITE_FULL_PAUSE).await;
            }
            Some(Err(e)) => {
                if let Some((code, reason, label)) = close_for(&e) {
                    metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => label, "transport" => "ws")
                        .increment(1);
                    outbox.close_with(code, reason);
                }
                break;
            }
            Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
        }
        if outbox.is_closed() {
            break;
        }
    }
    session.close();
    // The writer exits once it sees the outbox closed, unless it is stuck on a socket the
    // client stopped reading: then it is cut off.
    if !writer_done && tokio::time::timeout(WRITER_GRACE, &mut writer).await.is_err() {
        writer.abort();
    }
}

/// How long the reader waits after a read found the write buffer full.
const WRITE_FULL_PAUSE: Duration = Duration::from_millis(10);

/// How long a closing session waits for its writer to send what is left.
const WRITER_GRACE: Duration = Duration::from_secs(2);

/// Close codes the server sends besides the core's 1008 (PROTOCOL.md 2.4).
const CLOSE_INVALID_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;

/// The close code, reason and metric label for a read error the client caused.
fn close_for(e: &tokio_tungstenite::tungstenite::Error) -> Option<(u16, &'static str, &'static str)> {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Capacity(_) => Some((CLOSE_TOO_BIG, "message over 1 MiB", "message_too_big")),
        Error::Utf8(_) => Some((CLOSE_INVALID_DATA, "text frame is not UTF-8", "invalid_utf8")),
        _ => None,
    }
}

/// Feeds one message. The write buffer is shared with the pongs tungstenite queues while
/// reading: when they filled it, flush (waiting for the client to read) and offer the message
/// again instead of failing the session.
async fn feed(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    mut msg: Message,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::Error;
    if msg.len() > MAX_OUT_MESSAGE {
        // Even an empty buffer could not take it.
        tracing::warn!(
            bytes = msg.len(),
            "an outgoing message over the write buffer bound; closing the session"
        );
        return Err(Error::AlreadyClosed);
    }
    loop {
        match sink.feed(msg).await {
            // Pongs filled the buffer: each flush waits until the client has read it.
            Err(Error::WriteBufferFull(back)) => {
                sink.flush().await?;
                msg = *back;
            }
            other => return other,
        }
    }
}

/// Drains the outbox, frames what it holds, feeds every frame and flushes once.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
    outbox: Arc<Outbox>,
    mut framer: Framer,
) {
    let (mut items, mut frames) = (Vec::new(), Vec::new());
    let sent_messages = metrics::counter!(m::SESSION_MESSAGES_SENT_TOTAL, "transport" => "ws");
    let sent_frames = metrics::counter!(m::WS_FRAMES_SENT_TOTAL);
    let delivery = metrics::histogram!(m::FANOUT_DELIVERY_SECONDS);
    let age = metrics::histogram!(m::EVENT_AGE_SECONDS, "stage" => m::AGE_STAGES[3]);
    loop {
        items.clear();
        let open = outbox.drain(&mut items);
        if !open {
            // What was queued before the close (an `error` saying why) goes out first.
            framer.frames(&mut items, &outbox, &mut frames);
            for f in frames.drain(..) {
                if feed(&mut sink, Message::Text(f)).await.is_err() {
                    break;
                }
            }
            if let Some((code, reason)) = outbox.close_frame() {
                let frame =
                    CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) };
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            let _ = sink.close().await;
            return;
        }
        if items.is_empty() {
            outbox.wait().await;
            continue;
        }
        let framed = framer.frames(&mut items, &outbox, &mut frames);
        if frames.is_empty() {
            continue;
        }
        sent_messages.increment(framed.messages as u64);
        sent_frames.increment(frames.len() as u64);
        for f in frames.drain(..) {
            if feed(&mut sink, Message::Text(f)).await.is_err() {
                return outbox.close();
            }
        }
        if sink.flush().await.is_err() {
            return outbox.close();
        }
        if let Some(at) = framed.oldest {
            delivery.record(at.elapsed().as_secs_f64());
        }
        if let Some(ts) = framed.oldest_ts {
            age.record(m::age_secs(ts));
        }
    }
}
