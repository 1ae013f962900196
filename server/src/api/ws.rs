//! WebSocket subscribers at `GET /ws` (PROTOCOL.md §2): an adapter over the session core. The
//! socket plumbing (handshake, bounds, bounded write) is `api::socket`.
//!
//! Each session runs two tasks: the reader hands client frames to the sans-IO [`Session`]
//! (`fanout::session`, where the protocol rules live); the writer drains the session's
//! [`Outbox`], lets [`Framer`] turn it into frames (or JSON-array batch frames), feeds them all
//! and flushes once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::AppState;
use super::socket::{self, WRITE_FULL_PAUSE, Ws, feed};
use super::stream::{Lifetime, Wake};
use crate::fanout::outbox::Outbox;
use crate::fanout::session::{Access, Framer, Session, Transport};
use crate::metrics as m;

pub async fn upgrade(State(app): State<AppState>, req: Request) -> Response {
    socket::upgrade(app, req, None, |ws, app, caller| session(ws, app, caller.principal))
}

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
                event = lifetime.wait(&session) => {
                    match lifetime.apply(&mut session, event) {
                        Wake::Ended | Wake::Shutdown => break,
                        Wake::Nothing | Wake::Keepalive => {}
                    }
                }
            }
        }
        let msg = tokio::select! {
            msg = stream.next() => msg,
            // The writer gave up (the socket failed): nothing will be sent any more.
            _ = &mut writer => {
                writer_done = true;
                None
            }
            event = lifetime.wait(&session) => match lifetime.apply(&mut session, event) {
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
        framer.flushed();
        if let Some(at) = framed.oldest {
            delivery.record(at.elapsed().as_secs_f64());
        }
        if let Some(ts) = framed.oldest_ts {
            age.record(m::age_secs(ts));
        }
    }
}
