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

use super::Pub;
use crate::metrics as m;

/// Most control frames (pong, errors) held for a session; more are dropped, since a client
/// that floods ops without reading deserves no more answers.
const CONTROL_CAP: usize = 64;

/// What the writer sends, in order.
#[derive(Debug, Clone)]
pub enum Item {
    /// A live publication (`op: msg`), sent as its shared bytes.
    Msg(Pub),
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
    latest: HashMap<Arc<str>, Pub>,
    latest_order: VecDeque<Arc<str>>,
    dropped: u64,
    lagged_topics: HashSet<Arc<str>>,
    lag_pending: bool,
    closed: bool,
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    queue_cap: usize,
}

impl Outbox {
    pub fn new(queue_cap: usize) -> Arc<Outbox> {
        Arc::new(Outbox { state: Mutex::new(State::default()), notify: Notify::new(), queue_cap })
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
                        if s.queue.len() >= self.queue_cap {
                            overflow(&mut s, p);
                        } else {
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

    /// Queues an item in order with the publications (snapshots, history, `reset`, `subscribed`).
    pub fn push_item(&self, item: Item) {
        {
            let mut s = self.state.lock();
            if s.closed {
                return;
            }
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
            s.control.push_back(frame);
        }
        self.notify.notify_one();
    }

    /// Moves everything pending into `out` (control first). Returns false once closed.
    pub fn drain(&self, out: &mut Vec<Item>) -> bool {
        let mut s = self.state.lock();
        out.extend(s.control.drain(..).map(Item::Frame));
        out.extend(s.queue.drain(..));
        while let Some(topic) = s.latest_order.pop_front() {
            if let Some(p) = s.latest.remove(&topic) {
                out.push(Item::Msg(p));
            }
        }
        !s.closed
    }

    /// Waits until something is pushed or the outbox is closed.
    pub async fn wait(&self) {
        self.notify.notified().await;
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
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

/// The `all`-mode queue is full: drop every queued publication (frames stay, they are few and
/// carry protocol state), remember which topics lost messages, and queue one `Lagged` marker.
/// The writer then sends `lagged` and fresh snapshots of those topics, so the client converges
/// to the current values instead of replaying a stale backlog.
fn overflow(s: &mut State, incoming: &Pub) {
    let mut dropped = 1;
    s.lagged_topics.insert(incoming.topic.clone());
    let old = std::mem::take(&mut s.queue);
    for item in old {
        match item {
            Item::Msg(p) | Item::Snapshot(p) => {
                dropped += 1;
                s.lagged_topics.insert(p.topic.clone());
            }
            other @ (Item::Frame(_) | Item::Lagged) => s.queue.push_back(other),
        }
    }
    if !s.lag_pending {
        s.lag_pending = true;
        s.queue.push_back(Item::Lagged);
    }
    s.dropped += dropped;
    metrics::counter!(m::FANOUT_DROPPED_TOTAL).increment(dropped);
}
