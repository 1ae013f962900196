//! WebSocket plumbing shared by the protocols that ride on it (`/ws`, `/graphql`): the
//! handshake on hyper's upgrade, the socket's bounds, and a bounded write.
//!
//! The handshake is done by hand and the socket driven by tokio-tungstenite 0.30 directly (not
//! axum's `ws` feature, which pins an older tungstenite): one tungstenite in the tree, shared
//! with the Rust client, and direct use of `Utf8Bytes` (a publication's bytes go to the socket
//! without a copy) and of `feed` + one `flush` per batch.

use opensports_proto::error_code::http as http_code;
use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::SinkExt;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::admin::Caller;
use super::{AppState, json_error};

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
/// How long a reader waits after a read found the write buffer full.
pub const WRITE_FULL_PAUSE: Duration = Duration::from_millis(10);

pub type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Upgrades `req` to a WebSocket speaking `protocol` (`Sec-WebSocket-Protocol`, required when
/// given) and runs `run` on it as a tracked task. Credentials are checked and the streaming
/// slots taken before the upgrade: a wrong credential gets a plain 401, and never more
/// sessions than the limits.
pub fn upgrade<F, Fut>(app: AppState, req: Request, protocol: Option<&'static str>, run: F) -> Response
where
    F: FnOnce(Ws, AppState, Caller) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let key = match handshake_key(req.headers(), protocol) {
        Ok(k) => k,
        Err(why) => return json_error(StatusCode::BAD_REQUEST, http_code::BAD_UPGRADE, why),
    };
    let (parts, body) = req.into_parts();
    let caller = match super::admin::authenticate(&app, &parts) {
        Ok(c) => c,
        Err(refused) => return *refused,
    };
    let req = Request::from_parts(parts, body);
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
        run(ws, app, caller).await;
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()));
    if let Some(p) = protocol {
        resp = resp.header(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    resp.body(Body::empty()).unwrap_or_default()
}

/// Whether a comma-separated header lists `token` (case-insensitively).
fn lists(h: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

fn handshake_key(h: &HeaderMap, protocol: Option<&str>) -> Result<String, &'static str> {
    if !lists(h, header::CONNECTION, "upgrade") || !lists(h, header::UPGRADE, "websocket") {
        return Err("expected a WebSocket upgrade (Connection: upgrade, Upgrade: websocket)");
    }
    if h.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v != "13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    if let Some(p) = protocol
        && !lists(h, header::SEC_WEBSOCKET_PROTOCOL, p)
    {
        return Err("this endpoint speaks the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)");
    }
    h.get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or("missing Sec-WebSocket-Key")
}

/// Feeds one message. The write buffer is shared with the pongs tungstenite queues while
/// reading: when they filled it, flush (waiting for the client to read) and offer the message
/// again instead of failing the session.
pub async fn feed<S>(sink: &mut S, mut msg: Message) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
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
