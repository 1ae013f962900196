//! Events another cluster node ingested, applied on this one in the cluster stream's order:
//! admitted by the admission core ([`super::admission::replicated`]), then the same log and
//! shard as a publisher's events.

use std::sync::Arc;

use opensports_proto::Event;
use rkyv::util::AlignedVec;

use super::IngestCtx;
use super::admission::{self, Replicated};
use super::stream::{ack_retry, log_and_queue};
use crate::store::AckSink;

/// What became of a replicated event.
#[derive(Debug)]
pub enum Applied {
    /// Logged (acked to `ack` after the commit) and queued to its shard.
    Queued { game: String },
    /// Already here (this node ingested or applied it before): `ack` hears once the original
    /// is committed here.
    Duplicate,
    /// This node cannot hold it (another sport under the same id, the game table is full).
    Refused(String),
    /// Shutting down.
    Stopped,
}

/// Admits, logs (acked to `ack` after the commit) and queues one replicated event; `owner` is
/// the origin's publisher identity when the message names it.
pub async fn apply(
    ctx: &IngestCtx,
    event: Event,
    bytes: Arc<AlignedVec>,
    owner: Option<Arc<str>>,
    ack: Arc<dyn AckSink>,
) -> Applied {
    let (shard, missing) = match admission::replicated(ctx.rules(), &event, owner.as_ref()) {
        Replicated::Accept { shard, missing } => (shard, missing),
        Replicated::Duplicate => {
            // Never acked before the original is in this node's log: a redelivery can come
            // while the original's commit is still under way (and a crash then would lose it).
            if !ack_retry(ctx, &event.game, event.seq, &ack).await {
                return Applied::Stopped;
            }
            return Applied::Duplicate;
        }
        Replicated::Refused(why) => return Applied::Refused(why),
    };
    let game = event.game.clone();
    match log_and_queue(ctx, event, Some(bytes), (shard, missing), owner.as_ref(), &ack, None).await {
        true => Applied::Queued { game },
        false => Applied::Stopped,
    }
}
