//! What every streaming adapter (WebSocket, SSE, GraphQL) needs from the runtime and nothing
//! protocol-specific: the connection slots a stream holds, and the wait for the session core's
//! next timer, a key revocation or shutdown. The rules themselves are the core's
//! (`fanout::session`); an adapter only forwards these wake-ups to it.

use opensports_proto::error_code::http as http_code;
use std::future::Future;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::watch;

use super::{AppState, json_error};
use crate::fanout::session::{Session, Tick};
use crate::metrics as m;

/// What a streaming session holds while it lasts: a slot of `fanout.max_connections` and one
/// of its address's `auth.max_ws_per_address`.
#[derive(Debug)]
pub struct Slots {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _addr_slot: Option<crate::auth::limits::AddrSlot>,
}

/// Takes a streaming session's slots, or the refusal (`429`/`503 too_many_connections`). A
/// request on a reserve connection (`reserved`, see `serve`) never starts a stream.
pub fn slots(app: &AppState, caller: &super::admin::Caller, reserved: bool) -> Result<Slots, Box<Response>> {
    if reserved {
        metrics::counter!(m::RATE_LIMITED_TOTAL, "limit" => "http_reserve").increment(1);
        return Err(Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            http_code::TOO_MANY_CONNECTIONS,
            "the HTTP connection cap is full (server.max_http_connections); streams wait for a slot",
        )));
    }
    let addr_slot = match caller.remote {
        Some(remote) => match app.auth.ws_slots.take(remote.ip(), app.auth.cfg.max_ws_per_address) {
            Some(slot) => Some(slot),
            None => {
                metrics::counter!(m::RATE_LIMITED_TOTAL, "limit" => "ws_per_address").increment(1);
                return Err(Box::new(json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    http_code::TOO_MANY_CONNECTIONS,
                    "streaming connection limit for this address reached (auth.max_ws_per_address)",
                )));
            }
        },
        None => None,
    };
    let Ok(permit) = app.ws_permits.clone().try_acquire_owned() else {
        return Err(Box::new(json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            http_code::TOO_MANY_CONNECTIONS,
            "streaming connection limit reached (fanout.max_connections)",
        )));
    };
    Ok(Slots { _permit: permit, _addr_slot: addr_slot })
}

/// What a [`Lifetime::wait`] found, applied to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Nothing for the adapter to do (a revocation of another key).
    Nothing,
    /// Send the transport's keep-alive.
    Keepalive,
    /// The core ended the session: its outbox is closed; send what it holds, then close.
    Ended,
    /// The server is shutting down.
    Shutdown,
}

/// The runtime side of a session's lifetime rules: wakes the core when its deadline passes or
/// keys are revoked.
#[derive(Debug)]
pub struct Lifetime {
    revocations: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    auth: std::sync::Arc<crate::auth::Auth>,
}

impl Lifetime {
    pub fn new(app: &AppState) -> Lifetime {
        Lifetime {
            revocations: app.auth.revocations(),
            shutdown: app.shutdown.clone(),
            auth: app.auth.clone(),
        }
    }

    /// Waits for the session's next deadline ([`Session::poll_timeout`]), a revocation when its
    /// credential can be revoked, or shutdown. The session is read when this is called, not
    /// held: use it as one `select!` arm beside the transport's input, then [`Self::apply`]
    /// what it returned.
    pub fn wait<'a>(&'a mut self, session: &Session) -> impl Future<Output = Event> + use<'a> {
        let (deadline, watches) = (session.poll_timeout(), session.watches_revocation());
        async move {
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timer => Event::Timer,
                changed = self.revocations.changed(), if watches => match changed {
                    Ok(()) => Event::Revocation,
                    Err(_) => Event::Shutdown,
                },
                _ = self.shutdown.changed() => Event::Shutdown,
            }
        }
    }

    /// Hands `event` to the session core.
    pub fn apply(&self, session: &mut Session, event: Event) -> Wake {
        match event {
            Event::Timer => match session.handle_timeout(Instant::now()) {
                Some(Tick::Keepalive) => Wake::Keepalive,
                Some(Tick::End(_)) => Wake::Ended,
                None => Wake::Nothing,
            },
            Event::Revocation => match session.on_revocation(|p| self.auth.revoked(p)) {
                Some(_) => Wake::Ended,
                None => Wake::Nothing,
            },
            Event::Shutdown => Wake::Shutdown,
        }
    }
}

/// What woke [`Lifetime::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Timer,
    Revocation,
    Shutdown,
}
