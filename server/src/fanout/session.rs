//! A WebSocket session's protocol (PROTOCOL.md §2), sans-IO. `api::ws` owns the socket: it
//! hands every client frame to [`Session`] and writes whatever [`Framer`] turns the drained
//! [`Outbox`] into. Nothing here does I/O or needs a runtime, so every rule is unit-tested
//! deterministically (`session/tests.rs`).
//!
//! - [`Session`]: client ops (each `sub` pattern checked against the caller's [`Access`]) (`sub`, `unsub`, `ping`), the subscriptions they make (binding and
//!   resume: `since`, `reset`, skip-through live in [`Fanout::subscribe`]), errors.
//! - [`Framer`]: the outgoing side: drained items → text frames, the lag rule (a `lagged`
//!   notice, snapshots of the topics that lost messages, and older queued messages skipped),
//!   and batch frames.
//!
//! Every server → client message other than publications (serialized once at publish time) is
//! built from [`ServerMsg`], the type clients parse.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use opensports_proto::error_code::reason;
use opensports_proto::topic::Pattern;
use opensports_proto::ws::{ClientOp, MAX_OP_ID, Mode, OpId, ServerMsg};
use tokio_tungstenite::tungstenite::Utf8Bytes;

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
    /// The transport carrying the session (`ws`, `sse`): its metrics' `transport` label.
    pub transport: &'static str,
}

/// The reader side of a session: applies client ops to the fan-out.
#[derive(Debug)]
pub struct Session {
    fanout: Arc<Fanout>,
    outbox: Arc<Outbox>,
    access: Access,
    /// Pattern text → subscription id.
    ids: HashMap<String, SubId>,
    /// The pending-`since` maps of this session's `sub` ops, one per op, shared by its
    /// patterns; a map no pattern holds any more (its patterns were replaced or dropped) is
    /// pruned at the next `sub`. Their keys together stay within `fanout.max_since_keys`.
    since_held: Vec<Arc<crate::fanout::PendingSince>>,
    /// The `id` of the op being answered.
    op_id: Option<OpId>,
}

impl Session {
    pub fn new(fanout: Arc<Fanout>, outbox: Arc<Outbox>, access: Access) -> Session {
        Session { fanout, outbox, access, ids: HashMap::new(), since_held: Vec::new(), op_id: None }
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The patterns subscribed now.
    pub fn patterns(&self) -> usize {
        self.ids.len()
    }

    /// Answers an `error` (counted in `opensports_ws_errors_total{code}`); the session goes on.
    pub fn error(&self, code: &'static str, message: String) {
        metrics::counter!(m::WS_ERRORS_TOTAL, "code" => code, "transport" => self.access.transport)
            .increment(1);
        let id = self.op_id.clone();
        self.outbox.push_control(frame(&ServerMsg::Error { code: code.into(), message, id }));
    }

    /// A binary frame: refused, the session goes on.
    pub fn on_binary(&self) {
        self.error(reason::BINARY_NOT_SUPPORTED, "send JSON text frames".into());
    }

    /// One client text frame.
    pub fn on_text(&mut self, text: &str) {
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
            ClientOp::Sub { topics, mode, since, .. } => self.sub(topics, mode, since),
            ClientOp::Unsub { topics, .. } => self.unsub(topics),
            ClientOp::Ping { .. } => {
                let id = self.op_id.clone();
                self.outbox.push_control(frame(&ServerMsg::Pong { id }));
            }
        }
        self.op_id = None;
    }

    /// Applies a `sub` whole or not at all (refusals answered with an `error`).
    fn sub(&mut self, topics: Vec<String>, mode: Mode, since: BTreeMap<String, u64>) {
        if let Err((code, message)) = self.subscribe(topics, mode, &since) {
            self.error(code, message);
        }
    }

    /// Applies a subscription whole or not at all: every pattern and `since` key is checked
    /// first; a refusal is its error code and message and changes nothing. Queues the
    /// snapshots and resumed history, then `subscribed`.
    pub fn subscribe(
        &mut self,
        topics: Vec<String>,
        mode: Mode,
        since: &BTreeMap<String, u64>,
    ) -> Result<(), (&'static str, String)> {
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
        let new = topics.iter().filter(|t| !self.ids.contains_key(*t)).count();
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
            if let Some(old) = self.ids.remove(text) {
                self.fanout.unsubscribe(old);
            }
            let id = self.fanout.subscribe_shared(&self.outbox, pattern, mode, since, &pending);
            self.ids.insert(text.clone(), id);
        }
        if !pending.is_empty() {
            self.since_held.push(pending);
        }
        // In order after the catch-up the subscribe calls queued.
        let id = self.op_id.clone();
        self.outbox.push_item(Item::Frame(frame(&ServerMsg::Subscribed { topics, id })));
        Ok(())
    }

    fn unsub(&mut self, topics: Vec<String>) {
        for t in &topics {
            if let Some(id) = self.ids.remove(t) {
                self.fanout.unsubscribe(id);
            }
        }
        let id = self.op_id.clone();
        self.outbox.push_item(Item::Frame(frame(&ServerMsg::Unsubscribed { topics, id })));
    }

    /// The socket is gone: drop every subscription and close the outbox (the writer exits).
    pub fn close(&mut self) {
        for (_, id) in self.ids.drain() {
            self.fanout.unsubscribe(id);
        }
        self.outbox.close();
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
}

impl Framer {
    pub fn new(fanout: Arc<Fanout>) -> Framer {
        let max_batch = fanout.config().max_batch_bytes;
        Framer { fanout, max_batch, resynced: HashMap::new(), out: Vec::new() }
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
                    self.out.push(Item::Run(r));
                }
                item @ (Item::Snapshot(_) | Item::Frame(_)) => self.out.push(item),
                Item::Lagged => {
                    let (dropped, topics) = outbox.take_lag();
                    metrics::counter!(m::FANOUT_LAGGED_TOTAL).increment(1);
                    self.out.push(Item::Frame(frame(&ServerMsg::Lagged { dropped })));
                    for t in topics {
                        if let Some(p) = self.fanout.latest(&t) {
                            self.resynced.insert(t, p.seq);
                            self.out.push(Item::Snapshot(p));
                        }
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
