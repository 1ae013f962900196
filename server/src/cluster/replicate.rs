//! Local events to JetStream, in commit order, each once (`Nats-Msg-Id` `{game}:{seq}`: a
//! retry after an error or a restart is dropped by JetStream's dedupe window).
//!
//! The log writer hands each committed event to the [`Backlog`] and never waits on it: a
//! JetStream that is down or slow never slows local commits. With `cluster.ack = "cluster"`
//! publishers' acks wait for JetStream, and the backpressure is taken by the publishers'
//! streams ([`StreamAck::must_wait`]) before they log more. With `ack = "local"` nothing waits:
//! past `cluster.max_pending` events the backlog keeps only each game's range of seqs, and the
//! replicator reads those events back from the local log once JetStream takes them again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use parking_lot::Mutex;
use rkyv::util::AlignedVec;
use tokio::sync::{Notify, watch};

use super::{NODE_HEADER, OWNER_HEADER, SUBJECT_PREFIX};
use crate::config::ClusterAck;
use crate::ingest::ReplicatedStream;
use crate::metrics as m;
use crate::store::{AckSink, Store};

/// Publishes in flight before the replicator waits for JetStream's acks.
const WINDOW: usize = 1024;
/// How long one publish may wait for JetStream's ack before it is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon a spilled range that was not in the log yet is read again.
const SPILL_RETRY: Duration = Duration::from_millis(50);

/// What the replicator is handed, in the log's commit order.
#[derive(Debug)]
pub enum Item {
    /// A committed event; `ack` (the publisher's) hears once JetStream has it (`ack = cluster`);
    /// `owner`: the publisher identity (unknown for events read back from the log).
    Event {
        game: String,
        seq: u64,
        bytes: Arc<AlignedVec>,
        owner: Option<Arc<str>>,
        ack: Option<Arc<dyn AckSink>>,
    },
    /// A retry of an event already accepted: acked after everything before it.
    AckOnly { game: String, seq: u64, ack: Arc<dyn AckSink> },
}

/// Committed events waiting for JetStream. Pushing never blocks (the log writer pushes).
#[derive(Debug)]
pub struct Backlog {
    state: Mutex<BacklogState>,
    ready: Notify,
    /// `cluster.max_pending`.
    max: usize,
}

#[derive(Debug, Default)]
struct BacklogState {
    queue: VecDeque<Item>,
    /// Events past `max` with no ack waiting (`ack = local`): per game, the lowest and highest
    /// seq to read back from the log.
    spilled: BTreeMap<String, (u64, u64)>,
}

impl Backlog {
    pub fn new(max: usize) -> Arc<Backlog> {
        Arc::new(Backlog { state: Mutex::default(), ready: Notify::new(), max: max.max(1) })
    }

    fn push(&self, item: Item) {
        {
            let mut s = self.state.lock();
            match item {
                Item::Event { game, seq, ack: None, .. } if s.queue.len() >= self.max => {
                    metrics::counter!(m::CLUSTER_SPILLED_TOTAL).increment(1);
                    let range = s.spilled.entry(game).or_insert((seq, seq));
                    *range = (range.0.min(seq), range.1.max(seq));
                }
                item => s.queue.push_back(item),
            }
        }
        self.ready.notify_one();
    }

    /// Whether the queue is at `max` (publishers waiting for cluster acks hold off).
    fn full(&self) -> bool {
        self.state.lock().queue.len() >= self.max
    }

    /// Up to `n` queued items.
    fn take(&self, n: usize, into: &mut VecDeque<Item>) {
        let mut s = self.state.lock();
        let k = n.min(s.queue.len());
        into.extend(s.queue.drain(..k));
    }

    fn has_spilled(&self) -> bool {
        !self.state.lock().spilled.is_empty()
    }

    /// One game's spilled range, to read back from the log.
    fn take_spilled(&self) -> Option<(String, u64, u64)> {
        self.state.lock().spilled.pop_first().map(|(g, (from, to))| (g, from, to))
    }

    /// A range read back only in part: the rest goes back.
    fn respill(&self, game: String, from: u64, to: u64) {
        let mut s = self.state.lock();
        let range = s.spilled.entry(game).or_insert((from, to));
        *range = (range.0.min(from), range.1.max(to));
    }
}

/// One publisher stream's ack sink when clustered. Each event goes to the backlog as the
/// stream offers it to the log, so JetStream gets it while the local commit runs (a crash
/// before that commit loses nothing: the node applies its own event back from the stream).
/// The publisher hears when `cluster.ack` says: after the commit (`local`), or after both the
/// commit and JetStream's ack (`cluster`, through a [`Both`]). Both halves complete in order
/// (the log commits in order, the replicator acks in order), so an ack never claims an event
/// before every earlier one holds. Past `max_pending` (only with `ack = local`: `cluster`
/// publishers wait first) the event is handed over after its commit instead, where the backlog
/// may spill it to be read back from the log. A retry's ack follows the same queue, so no ack
/// overtakes an earlier one.
#[derive(Debug)]
pub struct StreamAck {
    inner: Arc<dyn AckSink>,
    owner: Arc<str>,
    /// Events offered to the log but not yet committed, in append order.
    logged: Mutex<VecDeque<(u64, Logged)>>,
    backlog: Arc<Backlog>,
    mode: ClusterAck,
}

/// What a logged event still needs at its commit.
#[derive(Debug)]
enum Logged {
    /// Already queued for JetStream: at the commit, ack (`local`) or complete its [`Both`].
    Queued(Option<Arc<Both>>),
    /// Queued at the commit (the backlog was full when it was logged).
    AtCommit(Arc<AlignedVec>),
}

/// The publisher's ack for one event, sent when its second half (the local commit, the
/// JetStream ack) arrives.
#[derive(Debug)]
pub struct Both {
    inner: Arc<dyn AckSink>,
    halves: std::sync::atomic::AtomicU8,
}

impl AckSink for Both {
    fn ack(&self, game: &str, seq: u64) {
        if self.halves.fetch_add(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.inner.ack(game, seq);
        }
    }
}

impl StreamAck {
    pub(super) fn new(
        inner: Arc<dyn AckSink>,
        owner: Arc<str>,
        backlog: Arc<Backlog>,
        mode: ClusterAck,
    ) -> StreamAck {
        StreamAck { inner, owner, logged: Mutex::new(VecDeque::new()), backlog, mode }
    }
}

impl ReplicatedStream for StreamAck {
    fn logging(&self, game: &str, seq: u64, bytes: &Arc<AlignedVec>) {
        if self.backlog.full() {
            self.logged.lock().push_back((seq, Logged::AtCommit(bytes.clone())));
            return;
        }
        let both = (self.mode == ClusterAck::Cluster)
            .then(|| Arc::new(Both { inner: self.inner.clone(), halves: Default::default() }));
        self.logged.lock().push_back((seq, Logged::Queued(both.clone())));
        let ack = both.map(|b| b as Arc<dyn AckSink>);
        let (game, bytes, owner) = (game.to_string(), bytes.clone(), Some(self.owner.clone()));
        self.backlog.push(Item::Event { game, seq, bytes, owner, ack });
    }

    fn must_wait(&self) -> bool {
        self.mode == ClusterAck::Cluster && self.backlog.full()
    }
}

impl AckSink for StreamAck {
    /// The log writer's thread, after the commit: nothing here waits.
    fn ack(&self, game: &str, seq: u64) {
        let logged = {
            let mut q = self.logged.lock();
            match q.front() {
                Some((s, _)) if *s == seq => q.pop_front().map(|(_, l)| l),
                _ => None,
            }
        };
        let cluster = self.mode == ClusterAck::Cluster;
        match logged {
            Some(Logged::Queued(Some(both))) => both.ack(game, seq),
            Some(Logged::Queued(None)) => self.inner.ack(game, seq),
            Some(Logged::AtCommit(bytes)) => {
                let ack = if cluster {
                    Some(self.inner.clone())
                } else {
                    self.inner.ack(game, seq);
                    None
                };
                let (game, owner) = (game.to_string(), Some(self.owner.clone()));
                self.backlog.push(Item::Event { game, seq, bytes, owner, ack })
            }
            // A retry of an accepted event: after everything queued before it.
            None if cluster => {
                self.backlog.push(Item::AckOnly { game: game.to_string(), seq, ack: self.inner.clone() })
            }
            None => self.inner.ack(game, seq),
        }
    }
}

/// The replicator: publishes items in order with up to [`WINDOW`] in flight and acks each
/// one's publisher in the same order once JetStream has it. New items are sent as they come,
/// never held back behind an earlier one's ack. An error or a timeout sends the whole window
/// again after a pause (dedupe drops what JetStream already had), so order holds and nothing
/// is acked that JetStream does not hold.
pub(super) async fn run(
    js: jetstream::Context,
    node: String,
    backlog: Arc<Backlog>,
    store: Option<Arc<Store>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut inflight: VecDeque<(Item, Flight)> = VecDeque::new();
    let mut next: VecDeque<Item> = VecDeque::new();
    let published = metrics::counter!(m::CLUSTER_PUBLISHED_TOTAL);
    let retries = metrics::counter!(m::CLUSTER_PUBLISH_RETRIES_TOTAL);
    let client = js.client();
    // While NATS is unreachable only the oldest item is sent (and retried): the rest wait in
    // the backlog, which spills past `max_pending` as it should, instead of piling up in the
    // client's buffer.
    let connected = || client.connection_state() == async_nats::connection::State::Connected;
    loop {
        // Fill the window: queued items first, then what spilled (read back from the log).
        while inflight.len() < WINDOW && (inflight.is_empty() || connected()) {
            if next.is_empty() {
                backlog.take(WINDOW - inflight.len(), &mut next);
            }
            if next.is_empty()
                && let Some(store) = &store
            {
                read_back(&backlog, store, WINDOW - inflight.len(), &mut next).await;
            }
            let Some(item) = next.pop_front() else { break };
            let flight = send(&js, &node, &item).await;
            inflight.push_back((item, flight));
        }
        // Wait for the oldest publish's ack, or for new work while the window has room.
        let room = inflight.len() < WINDOW && connected();
        let Some((_, oldest)) = inflight.front_mut() else {
            tokio::select! {
                _ = backlog.ready.notified() => continue,
                // A spilled range not in the log yet (its commit is under way): try again soon.
                _ = tokio::time::sleep(SPILL_RETRY), if backlog.has_spilled() => continue,
                _ = shutdown.changed() => return,
            }
        };
        let ok = match oldest {
            Flight::Nothing => true,
            Flight::NotSent => false,
            Flight::Sent(ack, deadline) => tokio::select! {
                biased;
                r = ack => r.is_ok(),
                _ = tokio::time::sleep_until(*deadline) => false,
                _ = backlog.ready.notified(), if room => continue,
                _ = shutdown.changed() => return,
            },
        };
        let Some((item, _)) = inflight.pop_front() else { continue };
        if ok {
            match item {
                Item::Event { game, seq, ack, .. } => {
                    published.increment(1);
                    if let Some(a) = ack {
                        a.ack(&game, seq);
                    }
                }
                Item::AckOnly { game, seq, ack } => ack.ack(&game, seq),
            }
            continue;
        }
        // JetStream did not take it (no quorum, a NATS node going away): send the window again.
        retries.increment(1);
        tracing::warn!("JetStream publish failed; retrying (publishers wait for their acks)");
        inflight.push_front((item, Flight::NotSent));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let items: Vec<Item> = inflight.drain(..).map(|(i, _)| i).collect();
        for item in items {
            let fut = send(&js, &node, &item).await;
            inflight.push_back((item, fut));
        }
    }
}

/// Reads one spilled game's events back from the log (at most `n`; the rest stays spilled).
async fn read_back(backlog: &Backlog, store: &Arc<Store>, n: usize, into: &mut VecDeque<Item>) {
    let Some((game, from, to)) = backlog.take_spilled() else { return };
    let store = store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let r = store.for_each_event(&game, from, &mut |seq, bytes| {
            if seq > to || got.len() >= n {
                return false;
            }
            got.push((seq, Arc::new(opensports_proto::codec::aligned(bytes))));
            true
        });
        (game, got, r)
    })
    .await;
    let Ok((game, got, r)) = read else { return };
    if let Err(e) = r {
        tracing::warn!(error = %e, game, "reading spilled events back from the log failed; retrying later");
        return backlog.respill(game, from, to);
    }
    match got.last() {
        Some(&(last, _)) if last < to => backlog.respill(game.clone(), last + 1, to),
        Some(_) => {}
        // Not committed yet (logged early, spilled before its commit): read again later.
        None => return backlog.respill(game, from, to),
    }
    into.extend(got.into_iter().map(|(seq, bytes)| Item::Event {
        game: game.clone(),
        seq,
        bytes,
        owner: None,
        ack: None,
    }));
}

/// A publish in flight.
enum Flight {
    /// Waiting for JetStream's ack.
    Sent(<PublishAckFuture as std::future::IntoFuture>::IntoFuture, tokio::time::Instant),
    /// The send itself failed (disconnected): to be sent again.
    NotSent,
    /// Nothing to publish (a retry's ack).
    Nothing,
}

/// Starts one publish.
async fn send(js: &jetstream::Context, node: &str, item: &Item) -> Flight {
    let Item::Event { game, seq, bytes, owner, .. } = item else { return Flight::Nothing };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{game}:{seq}").as_str());
    headers.insert(NODE_HEADER, node);
    if let Some(owner) = owner {
        headers.insert(OWNER_HEADER, owner.as_ref());
    }
    let payload = Bytes::copy_from_slice(bytes.as_slice());
    match js.publish_with_headers(format!("{SUBJECT_PREFIX}{game}"), headers, payload).await {
        Ok(f) => {
            Flight::Sent(std::future::IntoFuture::into_future(f), tokio::time::Instant::now() + ACK_TIMEOUT)
        }
        Err(e) => {
            tracing::debug!(error = %e, "JetStream publish not sent");
            Flight::NotSent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Nobody;
    impl AckSink for Nobody {
        fn ack(&self, _: &str, _: u64) {}
    }

    fn event(game: &str, seq: u64, ack: bool) -> Item {
        let ack: Option<Arc<dyn AckSink>> = if ack { Some(Arc::new(Nobody)) } else { None };
        Item::Event { game: game.into(), seq, bytes: Arc::new(AlignedVec::new()), owner: None, ack }
    }

    #[test]
    fn the_backlog_never_blocks_and_spills_only_what_no_ack_waits_for() {
        let b = Backlog::new(2);
        b.push(event("g1", 1, false));
        b.push(event("g1", 2, false));
        assert!(b.full());
        // Past max: local-ack events keep only their game's range; acked ones stay queued.
        for seq in [3, 7, 5] {
            b.push(event("g1", seq, false));
        }
        b.push(event("g2", 9, false));
        b.push(event("g1", 8, true));
        let mut taken = VecDeque::new();
        b.take(10, &mut taken);
        let seqs: Vec<u64> = taken
            .iter()
            .map(|i| match i {
                Item::Event { seq, .. } | Item::AckOnly { seq, .. } => *seq,
            })
            .collect();
        assert_eq!(seqs, [1, 2, 8]);
        assert!(!b.full());
        assert_eq!(b.take_spilled(), Some(("g1".into(), 3, 7)));
        assert_eq!(b.take_spilled(), Some(("g2".into(), 9, 9)));
        assert_eq!(b.take_spilled(), None);
        // A range read back in part goes back, merged with what spilled meanwhile.
        b.respill("g1".into(), 5, 7);
        b.respill("g1".into(), 4, 6);
        assert_eq!(b.take_spilled(), Some(("g1".into(), 4, 7)));
    }

    /// Counts the publisher's acks.
    #[derive(Debug, Default)]
    struct Count(std::sync::atomic::AtomicU64);
    impl AckSink for Count {
        fn ack(&self, _: &str, seq: u64) {
            self.0.store(seq, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn events_are_queued_as_they_are_logged_and_a_cluster_ack_waits_for_both_halves() {
        let backlog = Backlog::new(8);
        let publisher = Arc::new(Count::default());
        let heard = || publisher.0.load(std::sync::atomic::Ordering::SeqCst);
        let stream = StreamAck::new(publisher.clone(), Arc::from("k"), backlog.clone(), ClusterAck::Cluster);
        let bytes = Arc::new(AlignedVec::new());
        stream.logging("g1", 1, &bytes);
        stream.logging("g1", 2, &bytes);
        // Both are for JetStream before either commit.
        let mut taken = VecDeque::new();
        backlog.take(10, &mut taken);
        let acks: Vec<Arc<dyn AckSink>> = taken
            .drain(..)
            .map(|i| match i {
                Item::Event { seq, ack: Some(ack), .. } => {
                    assert!(seq == 1 || seq == 2);
                    ack
                }
                other => panic!("expected an event with its ack, got {other:?}"),
            })
            .collect();
        // Event 1: JetStream first, then the commit; event 2: the commit first.
        acks[0].ack("g1", 1);
        assert_eq!(heard(), 0, "acked before the local commit");
        stream.ack("g1", 1);
        assert_eq!(heard(), 1);
        stream.ack("g1", 2);
        assert_eq!(heard(), 1, "acked before JetStream had it");
        acks[1].ack("g1", 2);
        assert_eq!(heard(), 2);
        // A retry's ack (nothing logged for it) waits in the queue behind what came before.
        stream.ack("g1", 2);
        backlog.take(10, &mut taken);
        assert!(matches!(taken.front(), Some(Item::AckOnly { seq: 2, .. })));

        // `local`: queued as logged too, acked at the commit alone.
        let local = StreamAck::new(publisher.clone(), Arc::from("k"), backlog.clone(), ClusterAck::Local);
        local.logging("g2", 1, &bytes);
        backlog.take(10, &mut taken);
        assert!(matches!(taken.back(), Some(Item::Event { seq: 1, ack: None, .. })));
        local.ack("g2", 1);
        assert_eq!(heard(), 1);
    }

    #[test]
    fn only_cluster_acks_make_publishers_wait() {
        let backlog = Backlog::new(1);
        backlog.push(event("g1", 1, false));
        let stream = |mode| StreamAck::new(Arc::new(Nobody), Arc::from("k"), backlog.clone(), mode);
        assert!(stream(ClusterAck::Cluster).must_wait());
        assert!(!stream(ClusterAck::Local).must_wait());
    }
}
