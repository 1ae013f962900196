//! Local events to JetStream, in commit order, each once (`Nats-Msg-Id` `{game}:{seq}`: a
//! retry after an error or a restart is dropped by JetStream's dedupe window).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishAckFuture;
use bytes::Bytes;
use parking_lot::Mutex;
use rkyv::util::AlignedVec;
use tokio::sync::{mpsc, watch};

use super::{NODE_HEADER, SUBJECT_PREFIX};
use crate::config::ClusterAck;
use crate::metrics as m;
use crate::store::AckSink;

/// Publishes in flight before the replicator waits for JetStream's acks.
const WINDOW: usize = 1024;
/// How long one publish may wait for JetStream's ack before it is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the replicator is handed, in the log's commit order.
#[derive(Debug)]
pub enum Item {
    /// A committed event; `ack` (the publisher's) hears once JetStream has it (`ack = cluster`).
    Event { game: String, seq: u64, bytes: Arc<AlignedVec>, ack: Option<Arc<dyn AckSink>> },
    /// A retry of an event already accepted: acked after everything before it.
    AckOnly { game: String, seq: u64, ack: Arc<dyn AckSink> },
}

/// One publisher stream's ack sink when clustered. The stream notes each event's bytes before
/// it goes to the log; when the log writer acks `(game, seq)` after its commit, the event is
/// handed to the replicator (which acks the publisher after JetStream, or at once with
/// `ack = local`). A retry's ack follows the same queue, so no ack overtakes an earlier one.
#[derive(Debug)]
pub struct StreamAck {
    inner: Arc<dyn AckSink>,
    /// Events logged but not yet committed, in append order.
    logged: Mutex<VecDeque<(u64, Arc<AlignedVec>)>>,
    tx: mpsc::Sender<Item>,
    mode: ClusterAck,
}

impl StreamAck {
    pub(super) fn new(inner: Arc<dyn AckSink>, tx: mpsc::Sender<Item>, mode: ClusterAck) -> StreamAck {
        StreamAck { inner, logged: Mutex::new(VecDeque::new()), tx, mode }
    }

    /// Called before the event is offered to the log.
    pub fn logging(&self, seq: u64, bytes: &Arc<AlignedVec>) {
        self.logged.lock().push_back((seq, bytes.clone()));
    }

    fn hand(&self, item: Item) {
        // The log writer's thread: waiting here is backpressure (the writer stalls, ingest
        // stops reading, publishers wait), never a lost event.
        if self.tx.blocking_send(item).is_err() {
            tracing::warn!("the replicator has stopped; an event stays un-replicated");
        }
    }
}

impl AckSink for StreamAck {
    fn ack(&self, game: &str, seq: u64) {
        let logged = {
            let mut q = self.logged.lock();
            match q.front() {
                Some((s, _)) if *s == seq => q.pop_front(),
                _ => None,
            }
        };
        let publisher = match self.mode {
            ClusterAck::Cluster => Some(self.inner.clone()),
            ClusterAck::Local => {
                self.inner.ack(game, seq);
                None
            }
        };
        match (logged, publisher) {
            (Some((_, bytes)), ack) => self.hand(Item::Event { game: game.to_string(), seq, bytes, ack }),
            (None, Some(ack)) => self.hand(Item::AckOnly { game: game.to_string(), seq, ack }),
            (None, None) => {}
        }
    }
}

/// The replicator: publishes items in order with up to [`WINDOW`] in flight and acks each
/// one's publisher in the same order once JetStream has it. An error or a timeout sends the
/// whole window again after a pause (dedupe drops what JetStream already had), so order holds
/// and nothing is acked that JetStream does not hold.
pub(super) async fn run(
    js: jetstream::Context,
    node: String,
    mut rx: mpsc::Receiver<Item>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut inflight: VecDeque<(Item, Flight)> = VecDeque::new();
    let published = metrics::counter!(m::CLUSTER_PUBLISHED_TOTAL);
    let retries = metrics::counter!(m::CLUSTER_PUBLISH_RETRIES_TOTAL);
    loop {
        // Fill the window: wait for the first item only when nothing is in flight.
        while inflight.len() < WINDOW {
            let item = if inflight.is_empty() {
                tokio::select! {
                    item = rx.recv() => item,
                    _ = shutdown.changed() => return,
                }
            } else {
                rx.try_recv().ok()
            };
            let Some(item) = item else { break };
            let fut = send(&js, &node, &item).await;
            inflight.push_back((item, fut));
        }
        let Some((item, fut)) = inflight.pop_front() else { continue };
        let ok = match fut {
            Flight::Nothing => true,
            Flight::NotSent => false,
            Flight::Sent(f) => matches!(tokio::time::timeout(ACK_TIMEOUT, f).await, Ok(Ok(_))),
        };
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

/// A publish in flight.
enum Flight {
    /// Waiting for JetStream's ack.
    Sent(PublishAckFuture),
    /// The send itself failed (disconnected): to be sent again.
    NotSent,
    /// Nothing to publish (a retry's ack).
    Nothing,
}

/// Starts one publish.
async fn send(js: &jetstream::Context, node: &str, item: &Item) -> Flight {
    let Item::Event { game, seq, bytes, .. } = item else { return Flight::Nothing };
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{game}:{seq}").as_str());
    headers.insert(NODE_HEADER, node);
    let payload = Bytes::copy_from_slice(bytes.as_slice());
    match js.publish_with_headers(format!("{SUBJECT_PREFIX}{game}"), headers, payload).await {
        Ok(f) => Flight::Sent(f),
        Err(e) => {
            tracing::debug!(error = %e, "JetStream publish not sent");
            Flight::NotSent
        }
    }
}
