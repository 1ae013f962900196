//! GraphQL subscriptions at `GET /graphql`, the `graphql-transport-ws` protocol
//! (github.com/enisdenjo/graphql-ws, PROTOCOL.md): an adapter over the session core. Each
//! `subscribe` is executed by async-graphql with a group of the connection's [`Session`]; the
//! core's timers and revocations come through [`Lifetime`].
//!
//! Close codes are the protocol's: 4400 a message that is not the protocol, 4401 `subscribe`
//! before `connection_ack`, 4403 a refused credential (and a session the core ended for its
//! token or key), 4408 no subscription within `fanout.idle_timeout_secs`, 4409 a duplicate
//! operation id, 4429 a second `connection_init`.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_graphql::futures_util::stream::BoxStream;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{Asker, Stream_, schema};
use crate::api::AppState;
use crate::api::admin::Caller;
use crate::api::socket::{self, Ws, feed};
use crate::api::stream::{Lifetime, Wake};
use crate::fanout::outbox::Outbox;
use crate::fanout::session::{Access, End, Group, Session, Transport};
use crate::metrics as m;

pub const PROTOCOL: &str = "graphql-transport-ws";

/// Operations one connection runs at once (subscriptions are further bounded by the session's
/// [`crate::fanout::session::MAX_GROUPS`]).
const MAX_OPERATIONS: usize = 2 * crate::fanout::session::MAX_GROUPS;

pub async fn upgrade(State(app): State<AppState>, req: Request) -> Response {
    socket::upgrade(app, req, Some(PROTOCOL), connection)
}

/// Client → server messages.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMsg {
    ConnectionInit {
        #[serde(default)]
        payload: Option<serde_json::Map<String, serde_json::Value>>,
    },
    Ping {},
    Pong {},
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    Complete {
        id: String,
    },
}

/// Why the adapter closes a connection.
type Close = (u16, String);

/// One connection: its session, its running operations.
struct Conn {
    app: AppState,
    session: Arc<Mutex<Session>>,
    remote: Option<std::net::IpAddr>,
    acked: bool,
    /// Running operations, polled in turn from `turn` (none starves the others).
    ops: Vec<(String, BoxStream<'static, async_graphql::Response>)>,
    turn: usize,
    next_group: Group,
}

async fn connection(ws: Ws, app: AppState, caller: Caller) {
    let outbox = Outbox::bounded(app.fanout.config().queue_len, app.fanout.config().queue_bytes);
    let public = app.auth.cfg.public_topics.clone().into();
    let access = Access { principal: caller.principal, public, transport: Transport::Graphql };
    let session = Session::new(app.fanout.clone(), outbox, access, Instant::now());
    let mut lifetime = Lifetime::new(&app);
    let mut conn = Conn {
        session: Arc::new(Mutex::new(session)),
        remote: caller.remote.map(|r| r.ip()),
        app,
        acked: false,
        ops: Vec::new(),
        turn: 0,
        next_group: 1,
    };
    let (mut sink, mut source) = ws.split();
    let close: Option<Close> = loop {
        // The session's lock is taken only to read its deadline, never held across the wait.
        let woken = lifetime.wait(&conn.session.lock());
        let out = tokio::select! {
            msg = source.next() => match msg {
                Some(Ok(Message::Text(text))) => conn.on_text(&text),
                Some(Ok(Message::Binary(_))) => Err((4400, "send JSON text frames".into())),
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(tokio_tungstenite::tungstenite::Error::WriteBufferFull(_))) => {
                    tokio::time::sleep(socket::WRITE_FULL_PAUSE).await;
                    Ok(Vec::new())
                }
                Some(Err(_)) => break None,
                Some(Ok(_)) => Ok(Vec::new()),
            },
            (id, response) = next_response(&mut conn.ops, &mut conn.turn), if !conn.ops.is_empty() => {
                Ok(vec![conn.on_response(id, response)])
            }
            event = woken => {
                let mut session = conn.session.lock();
                match lifetime.apply(&mut session, event) {
                    Wake::Keepalive => Ok(vec![r#"{"type":"ping"}"#.to_string()]),
                    Wake::Ended => Err(ended(session.ended())),
                    Wake::Shutdown => Err((1001, "server shutting down".into())),
                    Wake::Nothing => Ok(Vec::new()),
                }
            }
        };
        match out {
            Ok(msgs) if msgs.is_empty() => {}
            Ok(msgs) => {
                if send(&mut sink, msgs).await.is_err() {
                    break None;
                }
                // Only what was sent resets the keep-alive's quiet time.
                conn.session.lock().sent(Instant::now());
            }
            Err(close) => break Some(close),
        }
    };
    // The operations' streams close their groups as they drop; then the session ends.
    conn.ops.clear();
    conn.session.lock().close();
    if let Some((code, reason)) = close {
        let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from(reason) };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// The close for a session the core ended.
fn ended(why: Option<End>) -> Close {
    match why {
        Some(End::Idle) => (4408, End::Idle.code().into()),
        Some(why) => (4403, why.code().into()),
        None => (1011, "ended".into()),
    }
}

async fn send(
    sink: &mut futures_util::stream::SplitSink<Ws, Message>,
    msgs: Vec<String>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for m in msgs {
        feed(sink, Message::Text(m.into())).await?;
    }
    sink.flush().await
}

/// The next response of any running operation (`None`: it finished).
async fn next_response(
    ops: &mut [(String, BoxStream<'static, async_graphql::Response>)],
    turn: &mut usize,
) -> (String, Option<async_graphql::Response>) {
    std::future::poll_fn(|cx| {
        let n = ops.len();
        for k in 0..n {
            let i = (*turn + k) % n;
            if let Poll::Ready(r) = ops[i].1.poll_next_unpin(cx) {
                *turn = i + 1;
                return Poll::Ready((ops[i].0.clone(), r));
            }
        }
        Poll::Pending
    })
    .await
}

impl Conn {
    /// One client message: what to send back, or why to close.
    fn on_text(&mut self, text: &str) -> Result<Vec<String>, Close> {
        let max = self.app.fanout.config().max_client_message_bytes;
        if text.len() > max {
            return Err((4400, format!("messages are limited to {max} bytes")));
        }
        let msg: ClientMsg =
            serde_json::from_str(text).map_err(|e| (4400, format!("invalid message: {e}")))?;
        match msg {
            ClientMsg::ConnectionInit { payload } => {
                if self.acked {
                    return Err((4429, "Too many initialisation requests".into()));
                }
                self.authenticate(payload.as_ref())?;
                self.acked = true;
                Ok(vec![r#"{"type":"connection_ack"}"#.into()])
            }
            ClientMsg::Ping {} => Ok(vec![r#"{"type":"pong"}"#.into()]),
            ClientMsg::Pong {} => Ok(Vec::new()),
            ClientMsg::Subscribe { id, payload } => {
                if !self.acked {
                    return Err((4401, "Unauthorized".into()));
                }
                if self.ops.iter().any(|(o, _)| *o == id) {
                    return Err((4409, format!("Subscriber for {id} already exists")));
                }
                // Queries finish at once; subscriptions are bounded by the session's groups.
                // Past this many running at once, the operation is refused on its own.
                if self.ops.len() >= MAX_OPERATIONS {
                    let code = opensports_proto::error_code::reason::TOO_MANY_SUBSCRIPTIONS;
                    metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => code, "transport" => "graphql")
                        .increment(1);
                    let message = format!("at most {MAX_OPERATIONS} operations at once");
                    let payload = serde_json::json!([{"message": message, "extensions": {"code": code}}]);
                    return Ok(vec![
                        serde_json::json!({"type": "error", "id": id, "payload": payload}).to_string(),
                    ]);
                }
                let group = self.next_group;
                self.next_group = self.next_group.wrapping_add(1).max(1);
                let principal = self.session.lock().access().principal.clone();
                let request = (*payload)
                    .data(Asker { app: self.app.clone(), principal })
                    .data(Stream_ { session: self.session.clone(), group });
                self.ops.push((id, schema().execute_stream(request)));
                Ok(Vec::new())
            }
            ClientMsg::Complete { id } => {
                // Dropping the stream closes its group.
                self.ops.retain(|(o, _)| *o != id);
                Ok(Vec::new())
            }
        }
    }

    /// A credential in the `connection_init` payload (`{"token": ...}` or
    /// `{"Authorization": "Bearer ..."}`), for clients that cannot set headers (browsers).
    fn authenticate(
        &mut self,
        payload: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(), Close> {
        let token = payload.and_then(|p| {
            let bearer = p.get("Authorization").or_else(|| p.get("authorization"));
            p.get("token")
                .and_then(|t| t.as_str())
                .or_else(|| bearer.and_then(|b| b.as_str()).map(|b| b.strip_prefix("Bearer ").unwrap_or(b)))
        });
        let Some(token) = token else { return Ok(()) };
        let principal =
            crate::api::credential::verify(&self.app, self.remote, token).map_err(|(_, code, msg)| {
                metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => code, "transport" => "graphql")
                    .increment(1);
                (4403, format!("{code}: {msg}"))
            })?;
        self.session.lock().authenticate(principal, Instant::now()).map_err(|(_, m)| (4400, m))
    }

    /// An operation's response as `next`, `error` (it failed before producing data: nothing
    /// more follows) or `complete`.
    fn on_response(&mut self, id: String, response: Option<async_graphql::Response>) -> String {
        let msg = match response {
            None => {
                self.ops.retain(|(o, _)| *o != id);
                serde_json::json!({"type": "complete", "id": id})
            }
            Some(r) if r.is_err() && r.data == async_graphql::Value::Null => {
                self.ops.retain(|(o, _)| *o != id);
                for e in &r.errors {
                    // Codes come from the server's own resolvers (a bounded set); others are
                    // GraphQL validation errors.
                    let code = match e.extensions.as_ref().and_then(|x| x.get("code")) {
                        Some(async_graphql::Value::String(c)) => c.clone(),
                        _ => "graphql".to_string(),
                    };
                    metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => code, "transport" => "graphql")
                        .increment(1);
                }
                serde_json::json!({"type": "error", "id": id, "payload": r.errors})
            }
            Some(r) => serde_json::json!({"type": "next", "id": id, "payload": r}),
        };
        msg.to_string()
    }
}
