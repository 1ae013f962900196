//! One WebSocket session's outgoing side: a bounded queue for `all`-mode subscriptions, a
//! conflated slot per topic for `latest`-mode ones, and a small control queue.
//!
//! Publishers (shard threads, holding their topic's lock) push; the session's writer task
//! drains everything at once and writes it as one or a few frames. The mutex is held only for
//! a push or a swap, never across I/O, and `Notify` keeps one permit so a push between drain
//! and wait is never missed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use opensports_proto::ws::Mode;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Pub, Run};
use crate::metrics as m;

pub use crate::config::DEFAULT_QUEUE_BYTES;

/// Most control frames (pong, errors) held for a session; more are dropped, since a client
/// that floods ops without reading deserves no more answers.
const CONTROL_CAP: usize = 64;

/// Bytes of replies (frames built for this session alone: `subscribed`, `unsubscribed`,
/// `reset`, errors, and the snapshots a `sub` queues) an outbox holds before its session stops
/// reading the client's input until the writer has sent them. A client that sends ops without
/// reading the answers stalls itself, not the server's memory.
pub const REPLY_BUDGET: usize = 64 * 1024;

/// Most items the writer takes in one drain: the frames it builds from them (snapshots are
/// copied into their own frame) stay bounded whatever a `sub` queued. (A [`Run`] is one item
/// holding many messages.)
pub const DRAIN_MAX: usize = 256;

/// Queue slots an emptied outbox keeps: a backlog's memory goes back once it is drained, so
/// 1,000 sessions that once fell behind do not each keep room for `queue_len` items.
const QUEUE_KEEP: usize = 256;

/// What the writer sends, in order.
#[derive(Debug, Clone)]
pub enum Item {
    /// A live publication (`op: msg`), sent as its shared bytes.
    Msg(Pub),
    /// Several live publications of one topic, sent as their shared batch frame.
    Run(Arc<Run>),
    /// The latest value right after subscribing (`op: snapshot`).
    Snapshot(Pub),
    /// A pre-built frame (`subscribed`, `reset`, `pong`, `error`, ...).
    Frame(Utf8Bytes),
    /// The queue overflowed: send `lagged`, then snapshots of the topics whose messages were
    /// dropped (taken from [`Outbox::take_lag`]).
    Lagged,
}

#[derive(Debug, Default)]
struct State {
    control: VecDeque<Utf8Bytes>,
    queue: VecDeque<Item>,
    /// What `queue` holds against `queue_cap`: one per item, a [`Run`] counting its messages.
    weight: usize,
    /// Bytes of live publications in `queue`, against `queue_bytes`.
    pub_bytes: usize,
    latest: HashMap<Arc<str>, Pub>,
    latest_order: VecDeque<Arc<str>>,
    dropped: u64,
    lagged_topics: HashSet<Arc<str>>,
    lag_pending: bool,
    closed: bool,
    /// Bytes of queued replies (see [`REPLY_BUDGET`]).
    reply_bytes: usize,
    /// Bytes of queued control frames (at most [`CONTROL_CAP`] of them).
    control_bytes: usize,
    /// Queued items that are not live publications (bounded only by the reader's pause).
    replies: usize,
    /// How the writer closes the socket: a close code and reason, or a plain close.
    close_frame: Option<(u16, &'static str)>,
    /// The session's delayed patterns and their delays: the lag rule's snapshot of such a
    /// topic is its delayed value, never the live one.
    delayed: Vec<(opensports_proto::topic::Pattern, u64)>,
}

/// What an item costs against the reply budget.
fn reply_cost(item: &Item) -> usize {
    match item {
        Item::Frame(f) => f.len(),
        Item::Snapshot(p) => p.frame.len(),
        Item::Msg(_) | Item::Run(_) | Item::Lagged => 0,
    }
}

/// Bytes of live publications an item holds (a run's frame holds its messages, and its
/// publications their own frames).
fn pub_bytes(item: &Item) -> usize {
    match item {
        Item::Msg(p) => p.frame.len(),
        Item::Run(r) => r.frame.len() + r.pubs.iter().map(|p| p.frame.len()).sum::<usize>(),
        _ => 0,
    }
}

/// What an item counts against the queue's capacity.
fn weight(item: &Item) -> usize {
    match item {
        Item::Run(r) => r.pubs.len(),
        _ => 1,
    }
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    /// Woken when the writer drained: a paused reader may go on.
    drained: Notify,
    queue_cap: usize,
    /// The `all`-mode queue's byte bound: a subscriber that does not read holds at most this
    /// much of publications the server would otherwise have freed, however large they are.
    queue_bytes: usize,
}

impl Outbox {
    pub fn new(queue_cap: usize) -> Arc<Outbox> {
        Outbox::bounded(queue_cap, DEFAULT_QUEUE_BYTES)
    }

    /// An outbox whose `all`-mode queue holds at most `queue_cap` messages and `queue_bytes`
    /// bytes of them; past either it overflows (`lagged`).
    pub fn bounded(queue_cap: usize, queue_bytes: usize) -> Arc<Outbox> {
        Arc::new(Outbox {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            drained: Notify::new(),
            queue_cap,
            queue_bytes,
        })
    }

    /// Delivers publications of one topic, in seq order, under one lock and with one wake-up
    /// (a shard hands over everything it published in one drain of its queue). Never blocks
    /// beyond the short mutex.
    pub fn push_pubs(&self, pubs: &[Pub], mode: Mode) {
        let Some(last) = pubs.last() else { return };
        {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            match mode {
                Mode::All => {
                    for p in pubs {
                        if s.weight >= self.queue_cap || s.pub_bytes + p.frame.len() > self.queue_bytes {
                            overflow(&mut s, &p.topic, 1);
                        } else {
                            s.weight += 1;
                            s.pub_bytes += p.frame.len();
                            s.queue.push_back(Item::Msg(p.clone()));
                        }
                    }
                }
                // Only the newest matters.
                Mode::Latest => {
                    if s.latest.insert(last.topic.clone(), last.clone()).is_none() {
                        s.latest_order.push_back(last.topic.clone());
                    }
                }
            }
        }
        self.notify.notify_one();
    }

    /// Delivers `messages` publications of `topic` to an `all`-mode subscription as `items`
    /// built once for every subscriber ([`Run`]s, or a lone [`Item::Msg`]): each is a shared
    /// handle, cloned, never copied. All of them fit or the queue overflows.
    pub fn push_shared(&self, topic: &Arc<str>, items: &[Item], messages: usize) {
        {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            let bytes: usize = items.iter().map(pub_bytes).sum();
            if s.weight + messages > self.queue_cap || s.pub_bytes + bytes > self.queue_bytes {
                overflow(&mut s, topic, messages);
            } else {
                s.weight += messages;
                s.pub_bytes += bytes;
                s.queue.extend(items.iter().cloned());
            }
        }
        self.notify.notify_one();
    }

    /// Queues an item in order with the publications (snapshots, history, `reset`, `subscribed`).
    pub fn push_item(&self, item: Item) {
        {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
            let cost = reply_cost(&item);
            if cost > 0 {
                s.reply_bytes += cost;
                s.replies += 1;
            }
            s.weight += weight(&item);
            s.pub_bytes += pub_bytes(&item);
            s.queue.push_back(item);
        }
        self.notify.notify_one();
    }

    /// Queues a control frame (pong, error) ahead of the publications.
    pub fn push_control(&self, frame: Utf8Bytes) {
        {
            let mut s = self.state.lock();
            if s.closed || s.control.len() >= CONTROL_CAP {
                return;
            }
            s.control_bytes += frame.len();
            s.control.push_back(frame);
        }
        self.notify.notify_one();
    }

    /// Moves what is pending into `out`, at most [`DRAIN_MAX`] queued items (control first,
    /// then the queue, then the `latest` slots once the queue is empty). Returns false once
    /// closed.
    pub fn drain(&self, out: &mut Vec<Item>) -> bool {
        let open = {
            let mut guard = self.state.lock();
            let s = &mut *guard;
            out.extend(s.control.drain(..).map(Item::Frame));
            s.control_bytes = 0;
            let n = s.queue.len().min(DRAIN_MAX);
            for item in s.queue.drain(..n) {
                let cost = reply_cost(&item);
                if cost > 0 {
                    s.replies -= 1;
                }
                s.reply_bytes = s.reply_bytes.saturating_sub(cost);
                s.weight -= weight(&item);
                s.pub_bytes -= pub_bytes(&item);
                out.push(item);
            }
            if s.queue.is_empty() {
                if s.queue.capacity() > 4 * QUEUE_KEEP {
                    s.queue.shrink_to(QUEUE_KEEP);
                }
                while let Some(topic) = s.latest_order.pop_front() {
                    if let Some(p) = s.latest.remove(&topic) {
                        out.push(Item::Msg(p));
                    }
                }
            }
            !s.closed
        };
        self.drained.notify_waiters();
        open
    }

    /// Whether the session holds as many replies as it may (see [`REPLY_BUDGET`]): its reader
    /// then waits in [`Outbox::room`] before reading the client's next message.
    pub fn over_budget(&self) -> bool {
        let s = self.state.lock();
        s.reply_bytes + s.control_bytes > REPLY_BUDGET || s.replies > self.queue_cap
    }

    /// Waits until the writer has drained enough for the reader to go on (or the outbox closed).
    pub async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a drain in between is not missed.
            drained.as_mut().enable();
            if !self.over_budget() || self.is_closed() {
                return;
            }
            drained.await;
        }
    }

    /// Closes with a WebSocket close code and reason, which the writer sends.
    pub fn close_with(&self, code: u16, reason: &'static str) {
        {
            let mut s = self.state.lock();
            s.closed = true;
            s.close_frame.get_or_insert((code, reason));
        }
        self.notify.notify_one();
        self.drained.notify_waiters();
    }

    /// The close code and reason the session was closed with, if any.
    pub fn close_frame(&self) -> Option<(u16, &'static str)> {
        self.state.lock().close_frame
    }

    /// Waits until something is pushed or the outbox is closed.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }

    /// Sets the session's delayed patterns (see [`Outbox::delay_for`]).
    pub fn set_delayed(&self, delayed: Vec<(opensports_proto::topic::Pattern, u64)>) {
        self.state.lock().delayed = delayed;
    }

    /// The delay this outbox gets `topic` at (`None`: as published): the largest of its
    /// delayed patterns matching it, so a resync is never early for any of them.
    pub fn delay_for(&self, topic: &str) -> Option<u64> {
        let s = self.state.lock();
        s.delayed.iter().filter(|(p, _)| p.matches(topic)).map(|(_, d)| *d).max()
    }

    /// Takes the dropped count and the topics that lost messages, for the `lagged` notice.
    pub fn take_lag(&self) -> (u64, Vec<Arc<str>>) {
        let mut s = self.state.lock();
        s.lag_pending = false;
        let dropped = std::mem::take(&mut s.dropped);
        (dropped, s.lagged_topics.drain().collect())
    }

    /// Stops accepting items and wakes the writer so it can exit.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
        self.drained.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// The `all`-mode queue is full: drop every queued publication (frames stay, they are few and
/// carry protocol state), remember which topics lost messages, and queue one `Lagged` marker.
/// The writer then sends `lagged` and fresh snapshots of those topics, so the client converges
/// to the current values instead of replaying a stale backlog.
fn overflow(s: &mut State, topic: &Arc<str>, incoming: usize) {
    let mut dropped = incoming as u64;
    s.lagged_topics.insert(topic.clone());
    let old = std::mem::take(&mut s.queue);
    for item in old {
        match item {
            Item::Msg(p) => {
                dropped += 1;
                s.lagged_topics.insert(p.topic.clone());
            }
            Item::Run(r) => {
                dropped += r.pubs.len() as u64;
                s.lagged_topics.insert(r.topic().clone());
            }
            Item::Snapshot(p) => {
                dropped += 1;
                s.replies -= 1;
                s.reply_bytes = s.reply_bytes.saturating_sub(p.frame.len());
                s.lagged_topics.insert(p.topic.clone());
            }
            other @ (Item::Frame(_) | Item::Lagged) => s.queue.push_back(other),
        }
    }
    if !s.lag_pending {
        s.lag_pending = true;
        s.queue.push_back(Item::Lagged);
    }
    // What is left (frames and the marker) counts one each, and holds no publication.
    s.weight = s.queue.len();
    s.pub_bytes = 0;
    s.dropped += dropped;
    metrics::counter!(m::FANOUT_DROPPED_TOTAL).increment(dropped);
}
