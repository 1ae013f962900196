//! A subscriber session's rules (PROTOCOL.md §2), sans-IO, for every transport: WebSocket
//! (`api::ws`), Server-Sent Events (`api::sse`) and GraphQL (`api::graphql`) are adapters that
//! move bytes, hand client input to [`Session`] and write what [`Framer`] makes of the drained
//! [`Outbox`]. Nothing here does I/O or needs a runtime (timers included: the adapter asks
//! [`Session::poll_timeout`] when to wake, see [`clock`]), so every rule is unit-tested
//! deterministically (`session/tests.rs`).
//!
//! - [`Session`]: access (each pattern checked against the caller's [`Access`]), client ops
//!   (`sub`, `unsub`, `ping`), the subscriptions they make (binding and resume: `since`,
//!   `reset`, skip-through live in [`Fanout::subscribe`]), errors, per-connection bounds
//!   (patterns, `since` keys), and the lifetime rules: token expiry, key revocation, idle
//!   timeout, stream lifetime, keep-alive.
//! - [`Framer`]: the outgoing side: drained items → text frames, the lag rule (a `lagged`
//!   notice, snapshots of the topics that lost messages, and older queued messages skipped),
//!   and batch frames.
//!
//! A session's subscriptions deliver into its outbox; a transport that multiplexes streams on
//! one connection (GraphQL) gives each stream a [`Group`] with an outbox of its own, under the
//! same per-connection bounds.
//!
//! Every server → client message other than publications (serialized once at publish time) is
//! built from [`ServerMsg`], the type clients parse.

pub mod clock;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use opensports_proto::error_code::reason;
use opensports_proto::topic::Pattern;
use opensports_proto::ws::{ClientOp, MAX_OP_ID, Mode, OpId, ServerMsg};
use tokio_tungstenite::tungstenite::Utf8Bytes;

pub use clock::{CLOSE_POLICY, End, Tick, Transport};

use super::outbox::{Item, Outbox};
use super::{Fanout, SubId};
use crate::auth::Principal;
use crate::metrics as m;

/// A server message as a text frame.
pub fn frame(msg: &ServerMsg) -> Utf8Bytes {
    match serde_json::to_string(msg) {
        Ok(s) => Utf8Bytes::from(s),
        // Only a non-string map key could fail; no ServerMsg has one.
        Err(_) => Utf8Bytes::from_static(r#"{"op":"error","code":"internal","message":""}"#),
    }
}

/// What a session may read: its caller and the patterns anyone may read.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    /// `auth.public_topics`.
    pub public: Arc<[String]>,
    /// The transport carrying the session: its timer rules and metrics' `transport` label.
    pub transport: Transport,
}

/// A stream of subscriptions within a session, with its own outbox (GraphQL's operation ids).
/// Group 0 is the session's own outbox.
pub type Group = u32;

/// Streams (groups besides 0) one session may hold at once.
pub const MAX_GROUPS: usize = 16;

/// A subscriber session: applies client input and the clock to the fan-out.
#[derive(Debug)]
pub struct Session {
    fanout: Arc<Fanout>,
    outbox: Arc<Outbox>,
    access: Access,
    /// (group, pattern text) → subscription id and its delay (ms, 0: none).
    ids: HashMap<(Group, String), (SubId, u64)>,
    /// Outboxes of the groups besides 0.
    groups: HashMap<Group, Arc<Outbox>>,
    /// The pending-`since` maps of this session's `sub` ops, one per op, shared by its
    /// patterns; a map no pattern holds any more (its patterns were replaced or dropped) is
    /// pruned at the next `sub`. Their keys together stay within `fanout.max_since_keys`.
    since_held: Vec<Arc<crate::fanout::PendingSince>>,
    /// The `id` of the op being answered.
    op_id: Option<OpId>,
    clock: clock::Clock,
    ended: Option<End>,
}

impl Session {
    /// A session starting at `now` (the wall clock is read once, to place the token's `exp`).
    pub fn new(fanout: Arc<Fanout>, outbox: Arc<Outbox>, access: Access, now: Instant) -> Session {
        let rules = access.transport.rules(fanout.config());
        let clock = clock::Clock::new(rules, now, access.principal.expires, crate::auth::unix_now());
        metrics::gauge!(m::SESSIONS, "transport" => access.transport.label()).increment(1.0);
        Session {
            fanout,
            outbox,
            access,
            ids: HashMap::new(),
            groups: HashMap::new(),
            since_held: Vec::new(),
            op_id: None,
            clock,
            ended: None,
        }
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Replaces the caller, for a transport whose credential arrives after the start (a GraphQL
    /// `connection_init` payload); only before the first subscription. The token's expiry
    /// rule follows the new principal.
    pub fn authenticate(&mut self, principal: Principal, now: Instant) -> Result<(), (&'static str, String)> {
        if !self.ids.is_empty() {
            return Err((reason::BAD_OP, "credentials come before the first subscription".into()));
        }
        self.clock.expire(principal.expires, now, crate::auth::unix_now());
        self.access.principal = principal;
        Ok(())
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    pub fn fanout(&self) -> &Arc<Fanout> {
        &self.fanout
    }

    /// The patterns subscribed now, every group together.
    pub fn patterns(&self) -> usize {
        self.ids.len()
    }

    /// Why the core ended the session, once it did.
    pub fn ended(&self) -> Option<End> {
        self.ended
    }

    /// When [`Self::handle_timeout`] is due next (`None`: no timer runs).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended.is_some() { None } else { self.clock.poll_timeout() }
    }

    /// Applies the timer rules at `now`: an ended session has queued why and closed its outbox.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Tick> {
        if self.ended.is_some() {
            return None;
        }
        let tick = self.clock.due(now)?;
        if let Tick::End(why) = tick {
            self.end(why);
        }
        Some(tick)
    }

    /// The adapter sent something at `now` (keep-alives wait for quiet).
    pub fn sent(&mut self, now: Instant) {
        self.clock.sent(now);
    }

    /// Whether the session's credential can be revoked (an API key): only then does the
    /// adapter need to watch the revocation signal.
    pub fn watches_revocation(&self) -> bool {
        self.access.principal.key_id.is_some()
    }

    /// Keys were revoked; `revoked` says whether this principal's is one of them. Ends the
    /// session if so.
    pub fn on_revocation(&mut self, revoked: impl FnOnce(&Principal) -> bool) -> Option<End> {
        if self.ended.is_none() && self.watches_revocation() && revoked(&self.access.principal) {
            self.end(End::Revoked);
            return Some(End::Revoked);
        }
        None
    }

    /// Ends the session: an `error` saying why (where the rule has one), counted in
    /// `opensports_session_ended_total{transport,reason}`, and the outbox closed with 1008.
    pub fn end(&mut self, why: End) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(why);
        let transport = self.access.transport.label();
        metrics::counter!(m::SESSION_ENDED_TOTAL, "transport" => transport, "reason" => why.code())
            .increment(1);
        if let Some(message) = why.message() {
            self.error(why.code(), message.into());
        }
        self.outbox.close_with(CLOSE_POLICY, why.close_reason());
    }

    /// Answers an `error` (counted in `opensports_session_errors_total{code,transport}`); the
    /// session goes on.
    pub fn error(&self, code: &'static str, message: String) {
        let transport = self.access.transport.label();
        metrics::counter!(m::SESSION_ERRORS_TOTAL, "code" => code, "transport" => transport).increment(1);
        let id = self.op_id.clone();
        self.outbox.push_control(frame(&ServerMsg::Error { code: code.into(), message, id }));
    }

    /// A binary frame: refused, the session goes on.
    pub fn on_binary(&self) {
        self.error(reason::BINARY_NOT_SUPPORTED, "send JSON text frames".into());
    }

    /// One client text frame (a WebSocket op), read at `now`.
    pub fn on_text(&mut self, text: &str, now: Instant) {
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
        let id = match &op {
            ClientOp::Sub { id, .. } | ClientOp::Unsub { id, .. } | ClientOp::Ping { id } => id.clone(),
        };
        if let Some(OpId::Text(t)) = &id
            && t.len() > MAX_OP_ID
        {
            return self.error(reason::BAD_OP, format!("an op id is a number or at most {MAX_OP_ID} bytes"));
        }
        self.op_id = id;
        match op {
            ClientOp::Sub { topics, mode, since, delay_ms, .. } => {
                if let Err((code, message)) = self.subscribe_in(0, topics, mode, &since, delay_ms, now) {
                    self.error(code, message);
                }
            }
            ClientOp::Unsub { topics, .. } => self.unsub(topics, now),
            ClientOp::Ping { .. } => {
                let id = self.op_id.clone();
                self.outbox.push_control(frame(&ServerMsg::Pong { id }));
            }
        }
        self.op_id = None;
    }

    /// Applies a subscription (into the session's outbox) whole or not at all: every pattern
    /// and `since` key is checked first; a refusal is its error code and message and changes
    /// nothing. Queues the snapshots and resumed history, then `subscribed`.
    pub fn subscribe(
        &mut self,
        topics: Vec<String>,
        mode: Mode,
        since: &BTreeMap<String, u64>,
        now: Instant,
    ) -> Result<(), (&'static str, String)> {
        self.subscribe_in(0, topics, mode, since, 0, now)
    }

    /// Opens group `group` (a stream with an outbox of its own, bounded like the session's
    /// but sharing [`MAX_GROUPS`] × its bytes), or refuses past [`MAX_GROUPS`].
    pub fn open_group(&mut self, group: Group) -> Result<Arc<Outbox>, (&'static str, String)> {
        if let Some(o) = self.groups.get(&group) {
            return Ok(o.clone());
        }
        if group == 0 || self.groups.len() >= MAX_GROUPS {
            return Err((
                reason::TOO_MANY_SUBSCRIPTIONS,
                format!("at most {MAX_GROUPS} streams per connection"),
            ));
        }
        let cfg = self.fanout.config();
        let outbox = Outbox::bounded(cfg.queue_len, cfg.queue_bytes / MAX_GROUPS);
        self.groups.insert(group, outbox.clone());
        Ok(outbox)
    }

    /// Drops group `group`'s subscriptions and closes its outbox.
    pub fn close_group(&mut self, group: Group, now: Instant) {
        let fanout = &self.fanout;
        self.ids.retain(|(g, _), (id, _)| {
            if *g == group {
                fanout.unsubscribe(*id);
            }
            *g != group
        });
        if let Some(o) = self.groups.remove(&group) {
            o.close();
        }
        self.clock.subscriptions(self.ids.len(), now);
    }

    /// [`Self::subscribe`] into group `group`'s outbox (see [`Self::open_group`]), each
    /// message delivered at its source time + `delay_ms` when that is not 0 (through the
    /// topics' shared delay lines, [`super::delay`]).
    pub fn subscribe_in(
        &mut self,
        group: Group,
        topics: Vec<String>,
        mode: Mode,
        since: &BTreeMap<String, u64>,
        delay_ms: u64,
        now: Instant,
    ) -> Result<(), (&'static str, String)> {
        let outbox = match group {
            0 => self.outbox.clone(),
            g => self.groups.get(&g).cloned().ok_or((reason::BAD_OP, format!("no stream {g}")))?,
        };
        if topics.is_empty() {
            return Err((reason::BAD_OP, "sub needs at least one topic pattern".into()));
        }
        let mut patterns = Vec::with_capacity(topics.len());
        for t in &topics {
            match Pattern::parse(t) {
                Ok(p) => patterns.push(p),
                Err(e) => return Err((reason::BAD_PATTERN, format!("{t:?}: {e}"))),
            }
        }
        if let Some(t) = topics.iter().find(|t| !self.access.principal.may_read(t, &self.access.public)) {
            metrics::counter!(m::AUTH_DENIED_TOTAL, "op" => "sub").increment(1);
            let who = &self.access.principal.id;
            return Err((reason::FORBIDDEN, format!("{who} may not read {t:?} (outside its topic scopes)")));
        }
        for key in since.keys() {
            let concrete = opensports_proto::topic::validate_topic(key).is_ok();
            if !concrete || !patterns.iter().any(|p| p.matches(key)) {
                return Err((
                    reason::BAD_SINCE,
                    format!("since key {key:?} must be a concrete topic matched by this sub's patterns"),
                ));
            }
        }
        if delay_ms > 0 {
            self.check_delay(delay_ms)?;
        }
        let new = topics.iter().filter(|t| !self.ids.contains_key(&(group, (*t).clone()))).count();
        let max = self.fanout.config().max_subscriptions;
        if self.ids.len() + new > max {
            return Err((reason::TOO_MANY_SUBSCRIPTIONS, format!("at most {max} patterns per connection")));
        }
        // Resume keys are bounded per session in total (not per pattern): the keys this op
        // adds, plus those its earlier ops' patterns still hold. Counted before anything is
        // kept, so a refused op costs nothing.
        self.since_held.retain(|m| Arc::strong_count(m) > 1);
        let held: usize = self.since_held.iter().map(|m| m.len()).sum();
        let max_since = self.fanout.config().max_since_keys;
        if held + since.len() > max_since {
            return Err((
                reason::BAD_SINCE,
                format!("at most {max_since} since keys per connection ({held} held by earlier subs)"),
            ));
        }
        let pending = self.fanout.pending_since(since);
        for (text, pattern) in topics.iter().zip(patterns) {
            // Re-subscribing a pattern replaces it (new mode, new resume point).
            if let Some((old, _)) = self.ids.remove(&(group, text.clone())) {
                self.fanout.unsubscribe(old);
            }
            let id = self.fanout.subscribe_shared(&outbox, pattern, mode, since, &pending, delay_ms);
            self.ids.insert((group, text.clone()), (id, delay_ms));
        }
        if !pending.is_empty() {
            self.since_held.push(pending);
        }
        self.sync_delayed(group, &outbox);
        self.clock.subscriptions(self.ids.len(), now);
        // In order after the catch-up the subscribe calls queued.
        let id = self.op_id.clone();
        outbox.push_item(Item::Frame(frame(&ServerMsg::Subscribed { topics, id })));
        Ok(())
    }

    /// A delay is at most `fanout.max_delay_ms`, a session holds at most
    /// [`super::delay::MAX_DELAYS_PER_SESSION`] distinct delays, and the server at most
    /// `fanout.max_delay_lines` lines.
    fn check_delay(&self, delay_ms: u64) -> Result<(), (&'static str, String)> {
        self.fanout.config().check_delay(delay_ms).map_err(|why| (reason::BAD_DELAY, why))?;
        let mut held: Vec<u64> = self.ids.values().map(|(_, d)| *d).filter(|d| *d > 0).collect();
        held.sort_unstable();
        held.dedup();
        let most = super::delay::MAX_DELAYS_PER_SESSION;
        if !held.contains(&delay_ms) && held.len() >= most {
            return Err((reason::BAD_DELAY, format!("at most {most} distinct delays per connection")));
        }
        if !self.fanout.delays().has_room() {
            return Err((reason::BAD_DELAY, "the server holds as many delay lines as it may".into()));
        }
        Ok(())
    }

    /// Tells `group`'s outbox which of its patterns are delayed, and by how much.
    fn sync_delayed(&self, group: Group, outbox: &Outbox) {
        let delayed = self
            .ids
            .iter()
            .filter(|((g, _), (_, d))| *g == group && *d > 0)
            .filter_map(|((_, text), (_, d))| Some((Pattern::parse(text).ok()?, *d)))
            .collect();
        outbox.set_delayed(delayed);
    }

    fn unsub(&mut self, topics: Vec<String>, now: Instant) {
        for t in &topics {
            if let Some((id, _)) = self.ids.remove(&(0, t.clone())) {
                self.fanout.unsubscribe(id);
            }
        }
        let outbox = self.outbox.clone();
        self.sync_delayed(0, &outbox);
        self.clock.subscriptions(self.ids.len(), now);
        let id = self.op_id.clone();
        self.outbox.push_item(Item::Frame(frame(&ServerMsg::Unsubscribed { topics, id })));
    }

    /// The connection is gone: drop every subscription and close the outboxes (the writer
    /// exits).
    pub fn close(&mut self) {
        for (_, (id, _)) in self.ids.drain() {
            self.fanout.unsubscribe(id);
        }
        for (_, o) in self.groups.drain() {
            o.close();
        }
        self.outbox.close();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
        metrics::gauge!(m::SESSIONS, "transport" => self.access.transport.label()).decrement(1.0);
    }
}

/// What one call of [`Framer::frames`] produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Framed {
    /// Messages in the frames (a batch frame holds several).
    pub messages: usize,
    /// When the oldest live publication among them was published (delivery histogram).
    pub oldest: Option<Instant>,
    /// The smallest source ts among the live publications (event-age histogram).
    pub oldest_ts: Option<i64>,
}

/// The writer side of a session: turns what was drained from the outbox into text frames.
#[derive(Debug)]
pub struct Framer {
    fanout: Arc<Fanout>,
    max_batch: usize,
    /// After a `lagged` notice: topic → seq of the snapshot sent, to skip older queued messages.
    resynced: HashMap<Arc<str>, u64>,
    /// Reused: the items that go out, each a `Msg` or a `Frame`.
    out: Vec<Item>,
    /// Traces of sampled events among what goes out (see [`Framer::flushed`]).
    traced: Vec<(Arc<crate::telemetry::Traced>, Instant)>,
}

impl Framer {
    pub fn new(fanout: Arc<Fanout>) -> Framer {
        let max_batch = fanout.config().max_batch_bytes;
        Framer { fanout, max_batch, resynced: HashMap::new(), out: Vec::new(), traced: Vec::new() }
    }

    /// What the last [`Framer::frames`] returned is flushed to the socket: each sampled event
    /// among it ends its `flush` span, if no other subscriber's writer did first.
    pub fn flushed(&mut self) {
        for (t, at) in self.traced.drain(..) {
            t.flushed(at);
        }
    }

    /// Turns `items` (drained, in order) into `frames`: a [`super::Run`] goes out as its shared
    /// batch frame, one pending message as its shared frame (no copy either way); several
    /// others go out as JSON-array batch frames of at most `max_batch_bytes`, each message
    /// copied once into the batch.
    pub fn frames(&mut self, items: &mut Vec<Item>, outbox: &Outbox, frames: &mut Vec<Utf8Bytes>) -> Framed {
        let (oldest, oldest_ts) = self.resolve(items, outbox);
        for item in &mut self.out {
            if let Item::Snapshot(p) = item {
                *item = Item::Frame(p.snapshot_frame());
            }
        }
        // Runs go alone; other consecutive items group into batches of at most `max_batch`
        // bytes.
        let (mut first, mut size, mut messages) = (0, 0, 0);
        for i in 0..self.out.len() {
            if let Item::Run(r) = &self.out[i] {
                if first < i {
                    frames.push(batch(&self.out[first..i]));
                }
                frames.push(r.frame.clone());
                messages += r.pubs.len();
                (first, size) = (i + 1, 0);
                continue;
            }
            messages += 1;
            let len = frame_text(&self.out[i]).len() + 1;
            if i > first && size + len + 1 > self.max_batch {
                frames.push(batch(&self.out[first..i]));
                (first, size) = (i, 0);
            }
            size += len;
        }
        if first < self.out.len() {
            frames.push(batch(&self.out[first..]));
        }
        Framed { messages, oldest, oldest_ts }
    }

    /// For a stream that sends every message on its own (Server-Sent Events): `items` resolved
    /// as [`Framer::frames`] does (the lag rule applied), each one a `Msg`, `Run`, `Snapshot`
    /// or `Frame`; returns them with the oldest publish time and source ts among the live ones.
    pub fn messages(&mut self, items: &mut Vec<Item>, outbox: &Outbox) -> (&[Item], Option<Instant>) {
        let (oldest, _) = self.resolve(items, outbox);
        (&self.out, oldest)
    }

    /// Applies the lag rule to drained `items` into `self.out`: after `lagged`, snapshots of
    /// the topics that lost messages, and queued messages the snapshot covers are skipped.
    fn resolve(&mut self, items: &mut Vec<Item>, outbox: &Outbox) -> (Option<Instant>, Option<i64>) {
        self.out.clear();
        // Unflushed traces of the previous call are forgotten (their flush span then comes
        // from another subscriber, or not at all): never more than one drain's worth.
        self.traced.clear();
        let (mut oldest, mut oldest_ts): (Option<Instant>, Option<i64>) = (None, None);
        let mut live = |at: Instant, ts: i64| {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
            oldest_ts = Some(oldest_ts.map_or(ts, |o| o.min(ts)));
        };
        for item in items.drain(..) {
            match item {
                Item::Msg(p) => {
                    if let Some(&seen) = self.resynced.get(&p.topic) {
                        if p.seq <= seen {
                            continue;
                        }
                        self.resynced.remove(&p.topic);
                    }
                    live(p.at, p.ts);
                    if let Some(t) = &p.trace {
                        self.traced.push((t.clone(), p.at));
                    }
                    self.out.push(Item::Msg(p));
                }
                Item::Run(r) => {
                    if let Some(&seen) = self.resynced.get(r.topic()) {
                        if r.last_seq() <= seen {
                            continue;
                        }
                        self.resynced.remove(r.topic());
                        if r.first_seq() <= seen {
                            // Part of it went out in the snapshot: the rest, one by one.
                            for p in r.pubs.iter().filter(|p| p.seq > seen) {
                                live(p.at, p.ts);
                                self.out.push(Item::Msg(p.clone()));
                            }
                            continue;
                        }
                    }
                    if let Some(p) = r.pubs.first() {
                        live(p.at, r.min_ts);
                    }
                    if let (Some(t), Some(p)) = (&r.trace, r.pubs.first()) {
                        self.traced.push((t.clone(), p.at));
                    }
                    self.out.push(Item::Run(r));
                }
                item @ (Item::Snapshot(_) | Item::Frame(_)) => self.out.push(item),
                Item::Lagged => {
                    let (dropped, topics) = outbox.take_lag();
                    metrics::counter!(m::FANOUT_LAGGED_TOTAL).increment(1);
                    self.out.push(Item::Frame(frame(&ServerMsg::Lagged { dropped })));
                    for t in topics {
                        let latest = match outbox.delay_for(&t) {
                            Some(d) => self.fanout.latest_delayed(&t, d),
                            None => self.fanout.latest(&t),
                        };
                        let Some(p) = latest else { continue };
                        // A second lag before anything newer was published: the client has
                        // this snapshot already.
                        if self.resynced.get(&t).is_some_and(|&seen| seen >= p.seq) {
                            continue;
                        }
                        self.resynced.insert(t, p.seq);
                        self.out.push(Item::Snapshot(p));
                    }
                }
            }
        }
        (oldest, oldest_ts)
    }
}

/// The text an outgoing item is sent as (`Msg` and `Frame`; the framer resolves the others).
fn frame_text(item: &Item) -> &str {
    match item {
        Item::Msg(p) => p.frame.as_str(),
        Item::Frame(f) => f.as_str(),
        Item::Run(r) => r.frame.as_str(),
        Item::Snapshot(_) | Item::Lagged => "",
    }
}

/// One message alone is its shared frame (no copy); several become a JSON array.
fn batch(group: &[Item]) -> Utf8Bytes {
    match group {
        [Item::Msg(p)] => return p.frame.clone(),
        [Item::Frame(f)] => return f.clone(),
        _ => {}
    }
    let size = group.iter().map(|i| frame_text(i).len() + 1).sum::<usize>() + 1;
    super::json_array(group.iter().map(frame_text), size)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lifetime_tests;
