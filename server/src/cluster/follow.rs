//! Reads the whole events stream through this node's durable consumer and applies what other
//! nodes ingested, in stream order, through [`crate::ingest::replica`]. Each message is acked
//! to JetStream after this node's own commit, so a node that restarts resumes where its log
//! ends.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{Cluster, OWNER_HEADER};
use crate::ingest::IngestCtx;
use crate::ingest::replica::{self, Applied};
use crate::metrics as m;
use crate::store::AckSink;

/// This node's durable consumer of the stream (created at the stream's start the first time).
pub(super) async fn consumer(
    stream: &jetstream::stream::Stream,
    node: &str,
    ack_wait: Duration,
) -> Result<PullConsumer, String> {
    let name = format!("node-{node}");
    stream
        .get_or_create_consumer(
            &name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                max_ack_pending: 65_536,
                ack_wait,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {name}: {e}"))
}

/// Acks one JetStream message once this node has committed its event.
#[derive(Debug)]
struct CommitAck {
    msg: jetstream::Message,
    rt: tokio::runtime::Handle,
}

impl AckSink for CommitAck {
    fn ack(&self, _game: &str, _seq: u64) {
        let msg = self.msg.clone();
        self.rt.spawn(async move {
            let _ = msg.ack().await;
        });
    }
}

pub(super) async fn run(
    cluster: Arc<Cluster>,
    consumer: PullConsumer,
    ctx: Arc<IngestCtx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let applied = metrics::counter!(m::CLUSTER_APPLIED_TOTAL);
    let rt = tokio::runtime::Handle::current();
    // An empty stream: nothing to catch up on.
    if let Ok(info) = consumer.clone().info().await
        && info.num_pending == 0
    {
        cluster.applied(0, 0);
    }
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "cluster consumer unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = shutdown.changed() => return,
            };
            let msg = match next {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "cluster consumer error");
                    continue;
                }
                None => break,
            };
            let Ok(info) =
                msg.info().map(|i| (i.stream_sequence, i.pending, i.published.unix_timestamp_nanos()))
            else {
                continue;
            };
            let (stream_seq, pending, published_ns) = info;
            // Every message goes through admission, this node's own events too: they are
            // duplicates here (acked once committed here, which they may not be yet: the
            // replicator can publish before the log's commit), or, after a crash that lost
            // them, applied again.
            let outcome = apply(&msg, &ctx, CommitAck { msg: msg.clone(), rt: rt.clone() }).await;
            match outcome {
                Applied::Queued { game } => {
                    applied.increment(1);
                    let now =
                        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
                    let lag = (now - published_ns).max(0) as f64 / 1e9;
                    metrics::gauge!(m::CLUSTER_GAME_LAG_SECONDS, "game" => game).set(lag);
                }
                // A redelivery (JetStream's ack wait passed, e.g. during a slow commit) or this
                // node's own event: acked through `CommitAck` once the original is committed
                // here, never before (a crash in between must not lose it).
                Applied::Duplicate => metrics::counter!(m::CLUSTER_DUPLICATES_TOTAL).increment(1),
                Applied::Refused(why) => {
                    metrics::counter!(m::CLUSTER_REFUSED_TOTAL).increment(1);
                    tracing::warn!(stream_seq, error = %why, "a cluster event this node cannot apply");
                    let _ = msg.ack_with(jetstream::AckKind::Term).await;
                }
                Applied::Stopped => return,
            }
            cluster.applied(stream_seq, pending);
        }
    }
}

async fn apply(msg: &jetstream::Message, ctx: &IngestCtx, ack: CommitAck) -> Applied {
    let bytes = opensports_proto::codec::aligned(&msg.payload);
    // The same decoder (and validation) as a publisher's rkyv frames.
    let event = match opensports_proto::codec::decode_event(opensports_proto::codec::Codec::Rkyv, &bytes) {
        Ok(e) => e,
        Err(e) => return Applied::Refused(format!("undecodable event: {e}")),
    };
    // The origin's publisher identity, when named (bounded: the message is another node's).
    let owner = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(OWNER_HEADER))
        .map(|o| o.as_str())
        .filter(|o| !o.is_empty() && o.len() <= 256)
        .map(Arc::from);
    replica::apply(ctx, event, Arc::new(bytes), owner, Arc::new(ack)).await
}
