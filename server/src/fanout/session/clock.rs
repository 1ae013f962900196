//! A session's timer rules, sans-IO (as quinn-proto does it): the core keeps deadlines, the
//! adapter asks [`super::Session::poll_timeout`] when to wake and calls
//! [`super::Session::handle_timeout`] with the time it woke. Nothing here reads a clock, so the
//! rules are unit-tested with a fake `now` (`session/tests.rs`).
//!
//! | rule | deadline | applies to |
//! |---|---|---|
//! | token expiry | the principal's `exp` | every transport |
//! | idle | `fanout.idle_timeout_secs` without any subscription | WebSocket, GraphQL |
//! | lifetime | `fanout.sse_max_lifetime_secs` after the start | SSE (a client resumes by itself) |
//! | keep-alive | 15 s without sending anything | SSE (comment line), GraphQL (`ping`) |
//!
//! Revocation is an event, not a deadline: the adapter forwards the auth's revocation signal.

use std::time::{Duration, Instant};

use opensports_proto::error_code::reason;

use crate::config::FanoutConfig;

/// A quiet stream sends something this often, so proxies keep it open and a client can tell a
/// quiet stream from a dead one.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// WebSocket close code for a session the server ends by policy (PROTOCOL.md §2.4).
pub const CLOSE_POLICY: u16 = 1008;

/// The transport carrying a session: its timer rules and its metrics' `transport` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `GET /ws` (PROTOCOL.md §2).
    Ws,
    /// `GET /v1/sse` (PROTOCOL.md §3.1).
    Sse,
    /// `GET /graphql` over `graphql-transport-ws` (PROTOCOL.md §3.2).
    Graphql,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Graphql => "graphql",
        }
    }

    /// This transport's timer rules under `cfg`.
    pub fn rules(self, cfg: &FanoutConfig) -> Rules {
        let idle = Some(Duration::from_secs(cfg.idle_timeout_secs));
        match self {
            Transport::Ws => Rules { idle, lifetime: None, keepalive: None },
            Transport::Sse => Rules {
                idle: None,
                lifetime: Some(Duration::from_secs(cfg.sse_max_lifetime_secs)),
                keepalive: Some(KEEPALIVE),
            },
            Transport::Graphql => Rules { idle, lifetime: None, keepalive: Some(KEEPALIVE) },
        }
    }
}

/// The timers a session runs under (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub idle: Option<Duration>,
    pub lifetime: Option<Duration>,
    pub keepalive: Option<Duration>,
}

/// Why the core ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The principal's token expired (`token_expired`).
    Expired,
    /// The API key behind it was revoked (`key_revoked`).
    Revoked,
    /// No subscription for `fanout.idle_timeout_secs` (`idle_timeout`).
    Idle,
    /// `fanout.sse_max_lifetime_secs` passed (`lifetime`); the client resumes where it was.
    Lifetime,
}

impl End {
    /// The `reason` label of `opensports_session_ended_total`, and the `error` code sent.
    pub fn code(self) -> &'static str {
        match self {
            End::Expired => reason::TOKEN_EXPIRED,
            End::Revoked => reason::KEY_REVOKED,
            End::Idle => reason::IDLE_TIMEOUT,
            End::Lifetime => reason::LIFETIME,
        }
    }

    /// The `error` message a client gets first, if any (an idle session or a stream at the end
    /// of its lifetime just closes).
    pub fn message(self) -> Option<&'static str> {
        match self {
            End::Expired => Some("this session's token expired; reconnect with a new one"),
            End::Revoked => Some("this session's API key was revoked"),
            End::Idle | End::Lifetime => None,
        }
    }

    /// The WebSocket close reason.
    pub fn close_reason(self) -> &'static str {
        match self {
            End::Expired => "token expired",
            End::Revoked => "key revoked",
            End::Idle => "no subscription within fanout.idle_timeout_secs",
            End::Lifetime => "stream lifetime over; resume",
        }
    }
}

/// What a timeout asks of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Send the transport's keep-alive (an SSE comment, a GraphQL `ping`).
    Keepalive,
    /// The session is over: its outbox is closed (after an `error` saying why, where there is
    /// one); send what it holds and close.
    End(End),
}

/// A session's deadlines.
#[derive(Debug)]
pub(super) struct Clock {
    rules: Rules,
    expires: Option<Instant>,
    ends: Option<Instant>,
    /// Set while the session has no subscription.
    idle_deadline: Option<Instant>,
    /// When the adapter last sent something.
    last_sent: Instant,
}

impl Clock {
    /// `expires` is the principal's `exp` (unix seconds), `unix_now` the wall clock at `now`.
    pub(super) fn new(rules: Rules, now: Instant, expires: Option<u64>, unix_now: u64) -> Clock {
        let mut clock = Clock {
            rules,
            expires: None,
            ends: rules.lifetime.map(|l| now + l),
            idle_deadline: rules.idle.map(|i| now + i),
            last_sent: now,
        };
        clock.expire(expires, now, unix_now);
        clock
    }

    /// The principal changed: its `exp` (unix seconds) is the expiry deadline.
    pub(super) fn expire(&mut self, expires: Option<u64>, now: Instant, unix_now: u64) {
        self.expires = expires.map(|exp| now + Duration::from_secs(exp.saturating_sub(unix_now)));
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let keepalive = self.rules.keepalive.map(|k| self.last_sent + k);
        [self.expires, self.ends, self.idle_deadline, keepalive].into_iter().flatten().min()
    }

    /// What is due at `now`, ends first.
    pub(super) fn due(&mut self, now: Instant) -> Option<Tick> {
        let past = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if past(self.expires) {
            return Some(Tick::End(End::Expired));
        }
        if past(self.ends) {
            return Some(Tick::End(End::Lifetime));
        }
        if past(self.idle_deadline) {
            return Some(Tick::End(End::Idle));
        }
        if past(self.rules.keepalive.map(|k| self.last_sent + k)) {
            self.last_sent = now;
            return Some(Tick::Keepalive);
        }
        None
    }

    pub(super) fn sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// The session's subscription count changed to `patterns`: the idle clock stops while
    /// there is one and starts again from `now` when the last one goes.
    pub(super) fn subscriptions(&mut self, patterns: usize, now: Instant) {
        match (patterns, self.idle_deadline) {
            (0, None) => self.idle_deadline = self.rules.idle.map(|i| now + i),
            (1.., Some(_)) => self.idle_deadline = None,
            _ => {}
        }
    }
}
