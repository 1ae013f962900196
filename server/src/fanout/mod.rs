//! Fan-out: the topic registry, each topic's latest value and history ring, and delivery to
//! subscriber outboxes.
//!
//! # Layout
//! - [`Fanout`]: topics in a `DashMap`, plus every live pattern subscription so that a topic
//!   created later is bound to the patterns that match it.
//! - [`Topic`]: one mutex around seq, history (whose back is the latest value) and the bound
//!   subscribers. Publishing, subscribing and resuming all take it, which is what makes
//!   "snapshot, then every later message, no gap, no duplicate" hold.
//! - [`outbox`]: the per-session queue the writer task drains.
//! - [`session`]: the WebSocket session's protocol, sans-IO: client ops in, frames out.
//! - [`delay`]: delay lines, a topic's publications released at source time + D, shared by
//!   every subscriber at that delay.
//! - `index`: the pattern subscriptions, bucketed by their literal prefix, so a new topic is
//!   matched only against the patterns that can match it.
//!
//! Lock order: `Fanout::patterns` is never held while taking a topic lock from the subscribe
//! path; topic creation reads `patterns` under the map's shard lock; a topic lock may take
//! outbox locks, never the reverse; a topic lock may take its delay lines' locks, and a line's
//! lock its outboxes'.

pub mod delay;
mod index;
pub mod outbox;
pub mod session;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use opensports_proto::topic::Pattern;
use opensports_proto::ws::Mode;
use parking_lot::{Mutex, RwLock};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::config::FanoutConfig;
use crate::metrics as m;
use crate::telemetry::Traced;
use delay::{DelayLine, Delays};
pub use index::PendingSince;
use index::{PatternIndex, PatternSub};
use outbox::{Item, Outbox};

/// Every `msg` frame starts with these bytes; a snapshot frame swaps them for `{"op":"snapshot"`.
const MSG_PREFIX: &str = r#"{"op":"msg""#;

/// One publication, serialized once: `frame` is the complete `msg` text frame that every
/// subscriber receives (a reference-counted clone, never a copy).
#[derive(Debug)]
pub struct Publication {
    pub topic: Arc<str>,
    pub seq: u64,
    pub ts: i64,
    pub frame: Utf8Bytes,
    data_start: usize,
    /// When it was published (for the delivery-delay histogram), as an instant and in µs since
    /// the epoch (delay lines: a source time ahead of its arrival counts as the arrival).
    pub at: std::time::Instant,
    pub arrival_us: i64,
    /// The trace of the event that made it, when sampled: the first writer to flush it ends
    /// the trace's `flush` span.
    pub trace: Option<Arc<Traced>>,
}

/// Shared handle to a publication.
pub type Pub = Arc<Publication>;

/// Consecutive publications of one topic from one shard drain, serialized once more as one
/// batch frame (`[msg,msg,...]`, at most `fanout.max_batch_bytes`). Every `all`-mode subscriber
/// that takes all of them queues this one handle, and its writer sends the frame as it is: the
/// cost per subscriber is one push and one frame, whatever the number of messages.
#[derive(Debug)]
pub struct Run {
    /// Ascending seq; at least two.
    pub pubs: Box<[Pub]>,
    pub frame: Utf8Bytes,
    /// The smallest source ts among them (event-age histogram).
    pub min_ts: i64,
    /// The first traced publication's trace (see [`Publication::trace`]).
    pub trace: Option<Arc<Traced>>,
}

impl Run {
    /// `pubs` as shared items: each chunk that fits in `max_batch` bytes is one [`Run`] (or the
    /// publication itself when alone).
    fn items(pubs: &[Pub], max_batch: usize) -> Vec<Item> {
        let mut items = Vec::new();
        let (mut first, mut size) = (0, 1);
        for i in 0..=pubs.len() {
            let len = pubs.get(i).map_or(0, |p| p.frame.len() + 1);
            if i == pubs.len() || (i > first && size + len > max_batch) {
                match &pubs[first..i] {
                    [] => {}
                    [one] => items.push(Item::Msg(one.clone())),
                    chunk => items.push(Item::Run(Arc::new(Run::of(chunk, size)))),
                }
                (first, size) = (i, 1);
            }
            size += len;
        }
        items
    }

    fn of(pubs: &[Pub], size: usize) -> Run {
        let frame = json_array(pubs.iter().map(|p| p.frame.as_str()), size);
        let min_ts = pubs.iter().map(|p| p.ts).min().unwrap_or_default();
        let trace = pubs.iter().find_map(|p| p.trace.clone());
        Run { pubs: pubs.into(), frame, min_ts, trace }
    }

    pub fn topic(&self) -> &Arc<str> {
        &self.pubs[0].topic
    }

    pub fn first_seq(&self) -> u64 {
        self.pubs.first().map_or(0, |p| p.seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.pubs.last().map_or(0, |p| p.seq)
    }
}

/// Frames joined into one JSON-array batch frame, `[a,b,...]` (`size`: the expected length).
fn json_array<'a>(frames: impl Iterator<Item = &'a str>, size: usize) -> Utf8Bytes {
    let mut text = String::with_capacity(size);
    for f in frames {
        text.push(if text.is_empty() { '[' } else { ',' });
        text.push_str(f);
    }
    text.push(']');
    Utf8Bytes::from(text)
}

impl Publication {
    /// The `data` JSON of this publication.
    pub fn data(&self) -> &str {
        let f = self.frame.as_str();
        f.get(self.data_start..f.len().saturating_sub(1)).unwrap_or("null")
    }

    /// The frame after its `"op":"msg"`: `,"topic":..,"seq":..,"ts":..,"data":..}`.
    fn after_op(&self) -> &str {
        self.frame.as_str().get(MSG_PREFIX.len()..).unwrap_or("}")
    }

    /// The same publication as a `snapshot` frame.
    pub fn snapshot_frame(&self) -> Utf8Bytes {
        Utf8Bytes::from(format!(r#"{{"op":"snapshot"{}"#, self.after_op()))
    }

    /// The publication without an op: `{"topic":..,"seq":..,"ts":..,"data":..}` (the
    /// latest-value endpoint's body).
    pub fn value_json(&self) -> String {
        format!("{{{}", self.after_op().strip_prefix(',').unwrap_or("}"))
    }
}

/// A subscription id, unique in the process.
pub type SubId = u64;

#[derive(Debug)]
struct Binding {
    outbox: Arc<Outbox>,
    /// The session's subscriptions that match this topic. Several patterns of one session may
    /// match one topic; it still gets each message once, in `all` mode if any of them asks so.
    subs: Vec<(SubId, Mode)>,
    /// Publications up to this seq are not delivered: the subscriber resumed with a `since`
    /// ahead of this server (it saw them before a restart; the replay and the publishers'
    /// resends regenerate them with the same seqs).
    skip_through: u64,
}

impl Binding {
    fn mode(&self) -> Mode {
        if self.subs.iter().any(|(_, m)| *m == Mode::All) { Mode::All } else { Mode::Latest }
    }
}

#[derive(Debug, Default)]
struct TopicInner {
    seq: u64,
    history: VecDeque<Pub>,
    /// Bytes of the frames in `history` (bounded by `fanout.history_bytes`).
    history_bytes: usize,
    bindings: Vec<Binding>,
    /// Its delay lines (one per delay with subscribers).
    lines: Vec<Arc<DelayLine>>,
}

impl TopicInner {
    /// Hands `pubs` (ascending seq) to the bound subscribers and to the delay lines.
    fn deliver(&self, pubs: &[Pub], max_batch: usize) {
        deliver(&self.bindings, pubs, max_batch);
        for line in &self.lines {
            line.push(pubs);
        }
    }
}

#[derive(Debug)]
pub struct Topic {
    name: Arc<str>,
    /// The name as a JSON string literal, escaped once.
    name_json: String,
    inner: Mutex<TopicInner>,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn latest(&self) -> Option<Pub> {
        self.inner.lock().history.back().cloned()
    }
}

/// How a subscription's `since` resumed one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Latest value sent as a snapshot (no `since` for it).
    Snapshot,
    /// History after `since` sent as messages (possibly none).
    Resumed,
    /// `since` older than the history, or unknown to this server: `reset` + snapshot.
    Reset,
    /// Nothing to send yet.
    Empty,
}

/// One staged publication: its topic, source ts, payload's place in [`Batch::buf`] and trace.
#[derive(Debug)]
struct Staged {
    topic: Arc<Topic>,
    ts: i64,
    data: std::ops::Range<usize>,
    trace: Option<Arc<Traced>>,
}

/// Publications staged by a shard while it drains its queue, published together by
/// [`Fanout::publish_batch`]. Reused: its buffers keep their capacity.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every staged payload, back to back.
    buf: Vec<u8>,
    items: Vec<Staged>,
    pubs: Vec<Pub>,
    /// The trace staged publications get (the event being processed, when sampled).
    trace: Option<Arc<Traced>>,
}

impl Batch {
    /// Stages `data` for `topic` (copied; the caller may reuse its buffer).
    pub fn push(&mut self, topic: &Arc<Topic>, ts: i64, data: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(data);
        let trace = self.trace.clone();
        self.items.push(Staged { topic: topic.clone(), ts, data: start..self.buf.len(), trace });
    }

    /// Publications staged from now on belong to this trace (`None`: to none).
    pub fn trace(&mut self, trace: Option<Arc<Traced>>) {
        self.trace = trace;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The staged publications from the `from`-th on: topic name and data.
    pub fn since(&self, from: usize) -> impl Iterator<Item = (&str, &[u8])> {
        let items = self.items.get(from..).unwrap_or_default();
        items.iter().map(|s| (s.topic.name(), self.buf.get(s.data.clone()).unwrap_or_default()))
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Hands `pubs` (one topic's, ascending seq) to every bound subscriber, minus those a resumed
/// subscriber already has. Several publications go to `all`-mode subscribers as [`Run`]s built
/// once for all of them.
fn deliver(bindings: &[Binding], pubs: &[Pub], max_batch: usize) {
    let mut shared: Option<Vec<Item>> = None;
    for b in bindings {
        let from = pubs.partition_point(|p| p.seq <= b.skip_through);
        let mode = b.mode();
        if from == 0 && pubs.len() > 1 && mode == Mode::All {
            let items = shared.get_or_insert_with(|| Run::items(pubs, max_batch));
            b.outbox.push_shared(&pubs[0].topic, items, pubs.len());
        } else {
            b.outbox.push_pubs(&pubs[from..], mode);
        }
    }
}

#[derive(Debug)]
pub struct Fanout {
    topics: DashMap<Arc<str>, Arc<Topic>>,
    patterns: RwLock<PatternIndex>,
    topic_count: AtomicUsize,
    next_sub: AtomicU64,
    delays: Arc<Delays>,
    cfg: FanoutConfig,
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.delays.stop();
    }
}

impl Fanout {
    pub fn new(cfg: FanoutConfig) -> Arc<Fanout> {
        Arc::new(Fanout {
            topics: DashMap::new(),
            patterns: RwLock::new(PatternIndex::default()),
            topic_count: AtomicUsize::new(0),
            next_sub: AtomicU64::new(1),
            delays: Delays::new(&cfg),
            cfg,
        })
    }

    pub fn config(&self) -> &FanoutConfig {
        &self.cfg
    }

    /// The topic, created (and bound to matching patterns) on first use. `None` when
    /// `max_topics` is reached; the caller drops that publication and it is counted.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        if let Some(t) = self.topics.get(name) {
            return Some(t.clone());
        }
        if self.topic_count.load(Ordering::Relaxed) >= self.cfg.max_topics {
            metrics::counter!(m::FANOUT_TOPICS_REFUSED_TOTAL).increment(1);
            return None;
        }
        let entry = self.topics.entry(Arc::from(name)).or_insert_with(|| {
            let name: Arc<str> = Arc::from(name);
            let (bindings, lines) = {
                let patterns = self.patterns.read();
                let mut bindings: Vec<Binding> = Vec::new();
                let mut lines: Vec<Arc<DelayLine>> = Vec::new();
                for ps in patterns.matching(&name) {
                    let skip = ps.pending_since.get(&*name).copied().unwrap_or(0);
                    if ps.delay_ms == 0 {
                        bind_pattern(&mut bindings, ps, skip);
                        continue;
                    }
                    let Some(line) = self.delays.line_in(&mut lines, &name, ps.delay_ms, &VecDeque::new())
                    else {
                        continue;
                    };
                    bind_pattern(&mut line.inner.lock().bindings, ps, skip);
                }
                (bindings, lines)
            };
            let count = self.topic_count.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::gauge!(m::FANOUT_TOPICS).set(count as f64);
            Arc::new(Topic {
                name_json: serde_json::to_string(&*name).unwrap_or_else(|_| "\"\"".into()),
                name,
                inner: Mutex::new(TopicInner { bindings, lines, ..TopicInner::default() }),
            })
        });
        Some(entry.clone())
    }

    /// The topic if it exists; never creates one.
    pub fn topic_if_exists(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// Publishes `data` (a JSON value, already serialized) on `topic` with the next seq.
    pub fn publish(&self, topic: &Topic, ts: i64, data: &[u8]) -> Pub {
        let mut inner = topic.inner.lock();
        let p = self.append(&mut inner, topic, ts, data, None);
        inner.deliver(std::slice::from_ref(&p), self.cfg.max_batch_bytes);
        drop(inner);
        metrics::counter!(m::FANOUT_PUBLICATIONS_TOTAL).increment(1);
        p
    }

    /// Publishes everything staged in `batch`, then empties it. Each topic's publications get
    /// their seqs in staging order under one lock, and every subscriber of that topic receives
    /// them with one push and one wake-up: under load this is what keeps the cost per
    /// subscriber from being paid per message. Order holds per topic, not across topics.
    pub fn publish_batch(&self, batch: &mut Batch) {
        let Batch { buf, items, pubs, .. } = batch;
        if items.is_empty() {
            return;
        }
        // Stable: each topic's items keep their order.
        items.sort_by_key(|s| Arc::as_ptr(&s.topic) as usize);
        for group in items.chunk_by(|a, b| Arc::ptr_eq(&a.topic, &b.topic)) {
            let topic = &group[0].topic;
            let mut inner = topic.inner.lock();
            pubs.clear();
            for s in group {
                let data = buf.get(s.data.clone()).unwrap_or_default();
                pubs.push(self.append(&mut inner, topic, s.ts, data, s.trace.clone()));
            }
            inner.deliver(pubs, self.cfg.max_batch_bytes);
        }
        metrics::counter!(m::FANOUT_PUBLICATIONS_TOTAL).increment(items.len() as u64);
        items.clear();
        buf.clear();
        pubs.clear();
    }

    /// The next publication of `topic` (whose lock the caller holds), kept in its history.
    fn append(
        &self,
        inner: &mut TopicInner,
        topic: &Topic,
        ts: i64,
        data: &[u8],
        trace: Option<Arc<Traced>>,
    ) -> Pub {
        inner.seq += 1;
        let seq = inner.seq;
        let mut frame = Vec::with_capacity(data.len() + topic.name_json.len() + 64);
        // Writing to a Vec cannot fail.
        let _ = write!(frame, r#"{MSG_PREFIX},"topic":{},"seq":{seq},"ts":{ts},"data":"#, topic.name_json);
        let data_start = frame.len();
        frame.extend_from_slice(data);
        frame.push(b'}');
        let frame = Utf8Bytes::try_from(frame).unwrap_or_else(|_| Utf8Bytes::from_static("{}"));
        let p = Arc::new(Publication {
            topic: topic.name.clone(),
            seq,
            ts,
            frame,
            data_start,
            at: std::time::Instant::now(),
            arrival_us: m::now_us(),
            trace,
        });
        if inner.history.len() >= self.cfg.history_len
            && let Some(old) = inner.history.pop_front()
        {
            inner.history_bytes -= old.frame.len();
        }
        inner.history_bytes += p.frame.len();
        inner.history.push_back(p.clone());
        // Large publications shorten the history: its bytes are bounded, not just its count.
        // The latest value always stays.
        while inner.history_bytes > self.cfg.history_bytes && inner.history.len() > 1 {
            if let Some(old) = inner.history.pop_front() {
                inner.history_bytes -= old.frame.len();
            }
        }
        p
    }

    /// Latest publication of a topic, if any.
    pub fn latest(&self, name: &str) -> Option<Pub> {
        self.topics.get(name).and_then(|t| t.latest())
    }

    /// Subscribes `outbox` to `pattern`. For each existing matching topic it queues, in order
    /// with live traffic: the history after `since[topic]` when given and still kept, else
    /// `reset` (when `since` was given) and a snapshot of the latest value.
    pub fn subscribe(
        &self,
        outbox: &Arc<Outbox>,
        pattern: Pattern,
        mode: Mode,
        since: &BTreeMap<String, u64>,
    ) -> SubId {
        self.subscribe_shared(outbox, pattern, mode, since, &self.pending_since(since), 0)
    }

    /// The `since` keys naming topics this server does not have (yet), once per `sub` op:
    /// after a restart the publication the client saw may not be regenerated yet (its event
    /// was not committed, and its publisher will resend it). The topic is not created here
    /// (only publications create topics); when a publication creates it, the binding skips
    /// what the client has.
    pub fn pending_since(&self, since: &BTreeMap<String, u64>) -> Arc<PendingSince> {
        Arc::new(
            since
                .iter()
                .filter(|(t, s)| **s > 0 && !self.topics.contains_key(t.as_str()))
                .map(|(t, s)| (Box::from(t.as_str()), *s))
                .collect(),
        )
    }

    /// [`Self::subscribe`] with the op's [`Self::pending_since`] map, shared by its patterns,
    /// delivering through the topics' delay lines of `delay_ms` when it is not 0.
    pub fn subscribe_shared(
        &self,
        outbox: &Arc<Outbox>,
        pattern: Pattern,
        mode: Mode,
        since: &BTreeMap<String, u64>,
        pending_since: &Arc<PendingSince>,
        delay_ms: u64,
    ) -> SubId {
        let id = self.next_sub.fetch_add(1, Ordering::Relaxed);
        // Register first, so a topic created from now on binds itself; the walk below then
        // skips topics that already bound this id.
        let matcher = pattern.clone();
        let pending_since = pending_since.clone();
        let ps = PatternSub { id, pattern, mode, outbox: outbox.clone(), pending_since, delay_ms };
        self.patterns.write().insert(ps);
        // A `sub` with any `since` is a resume: a matching topic the client does not list is one
        // created while it was away, so it gets that topic's kept history from the start.
        let resuming = !since.is_empty();
        for entry in self.topics.iter() {
            if matcher.matches(entry.key()) {
                let resume_from = since.get(&**entry.key()).copied().or(resuming.then_some(0));
                match delay_ms {
                    0 => bind_topic(entry.value(), outbox, id, mode, resume_from),
                    d => self.bind_delayed(entry.value(), outbox, id, mode, resume_from, d),
                };
            }
        }
        id
    }

    /// Removes a subscription from every topic it is bound to.
    pub fn unsubscribe(&self, id: SubId) {
        let removed = self.patterns.write().remove(id);
        let Some(ps) = removed else { return };
        for entry in self.topics.iter() {
            if ps.pattern.matches(entry.key()) {
                let mut inner = entry.value().inner.lock();
                if ps.delay_ms == 0 {
                    unbind(&mut inner.bindings, id);
                    continue;
                }
                // A line with no subscriber left goes (its clock wake-up finds it gone).
                inner.lines.retain(|line| {
                    if line.key_ms != ps.delay_ms {
                        return true;
                    }
                    let mut l = line.inner.lock();
                    unbind(&mut l.bindings, id);
                    !l.bindings.is_empty()
                });
            }
        }
    }

    /// Every topic under `prefix` (a game's state snapshot) with its latest publication, or
    /// with its whole kept history when `history` (oldest first, the latest last). Walks all
    /// topics: once per snapshot.
    pub fn kept_under(&self, prefix: &str, history: bool) -> Vec<Vec<Pub>> {
        self.topics
            .iter()
            .filter(|e| e.key().starts_with(prefix))
            .map(|e| {
                let inner = e.value().inner.lock();
                match history {
                    true => inner.history.iter().cloned().collect(),
                    false => inner.history.back().cloned().into_iter().collect(),
                }
            })
            .filter(|pubs: &Vec<Pub>| !pubs.is_empty())
            .collect()
    }

    /// Recreates topic `name` from a state snapshot: `pubs` are `(seq, ts, data)`, ascending,
    /// the latest last; each becomes the publication the live topic had, same seq, ts and
    /// frame. Its history holds them (a resume from before the first gets `reset` and the
    /// snapshot, PROTOCOL.md). Delivers nothing: recovery runs before anyone subscribes.
    pub fn restore(&self, name: &str, pubs: &[(u64, i64, &[u8])]) -> Option<Arc<Topic>> {
        let topic = self.topic(name)?;
        {
            let mut inner = topic.inner.lock();
            for &(seq, ts, data) in pubs {
                if inner.seq < seq {
                    inner.seq = seq - 1;
                    self.append(&mut inner, &topic, ts, data, None);
                }
            }
        }
        Some(topic)
    }

    /// Drops every topic under `prefix` (`game/{id}/`: state, win probability, tracking,
    /// plugin outputs) when a game leaves memory. Walks all topics: once per evicted game.
    pub fn remove_topics_under(&self, prefix: &str) {
        let names: Vec<Arc<str>> =
            self.topics.iter().filter(|e| e.key().starts_with(prefix)).map(|e| e.key().clone()).collect();
        for name in names {
            self.remove_topic(&name);
        }
    }

    /// Drops a topic (an ended game leaving memory). Its subscribers simply stop hearing of it.
    pub fn remove_topic(&self, name: &str) {
        if self.topics.remove(name).is_some() {
            let count = self.topic_count.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
            metrics::gauge!(m::FANOUT_TOPICS).set(count as f64);
        }
    }

    pub fn topic_count(&self) -> usize {
        self.topic_count.load(Ordering::Relaxed)
    }

    pub fn delays(&self) -> &Arc<Delays> {
        &self.delays
    }
}

fn unbind(bindings: &mut Vec<Binding>, id: SubId) {
    for b in bindings.iter_mut() {
        b.subs.retain(|(s, _)| *s != id);
    }
    bindings.retain(|b| !b.subs.is_empty());
}

/// Binds a pattern subscription to a new topic (or its delay line), skipping what the
/// subscriber already has (`skip`, its pending `since`).
fn bind_pattern(bindings: &mut Vec<Binding>, ps: &PatternSub, skip: u64) {
    bind(bindings, ps.outbox.clone(), ps.id, ps.mode);
    if skip > 0
        && let Some(b) = bindings.iter_mut().find(|b| Arc::ptr_eq(&b.outbox, &ps.outbox))
    {
        b.skip_through = b.skip_through.max(skip);
    }
}

fn bind(bindings: &mut Vec<Binding>, outbox: Arc<Outbox>, id: SubId, mode: Mode) -> bool {
    match bindings.iter_mut().find(|b| Arc::ptr_eq(&b.outbox, &outbox)) {
        Some(b) if b.subs.iter().any(|(s, _)| *s == id) => false,
        Some(b) => {
            b.subs.push((id, mode));
            true
        }
        None => {
            bindings.push(Binding { outbox, subs: vec![(id, mode)], skip_through: 0 });
            true
        }
    }
}

/// Binds one topic under its lock and queues what the subscriber needs to catch up.
fn bind_topic(topic: &Topic, outbox: &Arc<Outbox>, id: SubId, mode: Mode, since: Option<u64>) -> Resume {
    let mut guard = topic.inner.lock();
    let inner = &mut *guard;
    let view =
        View { name: &topic.name, history: &inner.history, upto: inner.seq, latest: inner.history.back() };
    catch_up(&mut inner.bindings, &view, outbox, id, mode, since)
}

/// What a subscriber catches up from: a topic's kept history up to `upto` (all of it, or what
/// a delay line has released) and the latest value in it.
struct View<'a> {
    name: &'a str,
    history: &'a VecDeque<Pub>,
    upto: u64,
    latest: Option<&'a Pub>,
}

/// Binds `outbox` among `bindings` (a topic's or a delay line's) and queues, in order with
/// what they deliver next: the snapshot, or the history after `since`, or `reset` and the
/// snapshot when `since` is older than the history.
fn catch_up(
    bindings: &mut Vec<Binding>,
    view: &View<'_>,
    outbox: &Arc<Outbox>,
    id: SubId,
    mode: Mode,
    since: Option<u64>,
) -> Resume {
    let already_bound = bindings.iter().any(|b| Arc::ptr_eq(&b.outbox, outbox));
    if !bind(bindings, outbox.clone(), id, mode) {
        return Resume::Empty;
    }
    let Some(latest) = view.latest.cloned() else {
        // Nothing released yet (a new delay line): what the client has is not sent again.
        if let Some(s) = since {
            skip_through(bindings, outbox, s);
        }
        return Resume::Empty;
    };
    match since {
        // Another pattern of this session already delivers this topic: nothing to catch up.
        None if already_bound => Resume::Empty,
        None => {
            outbox.push_item(Item::Snapshot(latest));
            Resume::Snapshot
        }
        Some(s) if s == view.upto => Resume::Resumed,
        Some(s) if s > view.upto => {
            skip_through(bindings, outbox, s);
            Resume::Resumed
        }
        Some(s) if view.history.front().is_some_and(|f| f.seq <= s + 1) => {
            for p in view.history.iter().filter(|p| p.seq > s && p.seq <= view.upto) {
                outbox.push_item(Item::Msg(p.clone()));
            }
            Resume::Resumed
        }
        Some(_) => {
            outbox.push_item(Item::Frame(reset_frame(view.name)));
            outbox.push_item(Item::Snapshot(latest));
            Resume::Reset
        }
    }
}

/// The outbox's binding delivers nothing up to `seq` (a resume ahead of us).
fn skip_through(bindings: &mut [Binding], outbox: &Arc<Outbox>, seq: u64) {
    if let Some(b) = bindings.iter_mut().find(|b| Arc::ptr_eq(&b.outbox, outbox)) {
        b.skip_through = b.skip_through.max(seq);
    }
}

fn reset_frame(topic: &str) -> Utf8Bytes {
    session::frame(&opensports_proto::ws::ServerMsg::Reset { topic: topic.to_string() })
}

#[cfg(test)]
mod tests;
