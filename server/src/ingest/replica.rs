//! Events another cluster node ingested, applied on this one in the cluster stream's order:
//! the same sequencing, log and shard as a publisher's events, without the publisher's
//! credentials and quotas (the ingesting node checked them).

use std::sync::Arc;

use opensports_proto::Event;
use rkyv::util::AlignedVec;

use super::IngestCtx;
use super::seq::Seq;
use super::stream::log_and_queue;
use crate::store::AckSink;

/// What became of a replicated event.
#[derive(Debug)]
pub enum Applied {
    /// Logged (acked to `ack` after the commit) and queued to its shard.
    Queued { game: String },
    /// Already here (this node ingested or applied it before).
    Duplicate,
    /// This node cannot hold it (another sport under the same id, the game table is full).
    Refused(String),
    /// Shutting down.
    Stopped,
}

pub async fn apply(ctx: &IngestCtx, event: Event, bytes: Arc<AlignedVec>, ack: Arc<dyn AckSink>) -> Applied {
    // The same directory rule as a publisher's events (a known game keeps its sport).
    let shard = match ctx.pipeline.directory().admit(&event.game, event.sport()) {
        Ok(shard) => shard,
        Err(code) => return Applied::Refused(format!("game {}: {code}", event.game)),
    };
    // The origin node applied the seq rules when it accepted the event; here it is only
    // classified (a duplicate is dropped), and recorded even where this node's view of the
    // game would refuse it (the origin's log is the truth).
    let missing = match ctx.games.seqs.accept(&event.game, event.seq) {
        (Seq::Duplicate, _) => return Applied::Duplicate,
        (v, _) if v.refused().is_some() => ctx.games.seqs.restore(&event.game, event.seq),
        (_, missing) => missing,
    };
    ctx.games.rosters.restore(&event);
    let game = event.game.clone();
    match log_and_queue(ctx, event, Some(bytes), shard, missing, None, &ack).await {
        true => Applied::Queued { game },
        false => Applied::Stopped,
    }
}
