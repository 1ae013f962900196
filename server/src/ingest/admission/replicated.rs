//! Events another cluster node ingested, admitted on this one in the cluster stream's order:
//! the same directory (a known game keeps its sport, the game cap), sequencing and roster as a
//! publisher's events; the credential and quotas were the origin node's to check. Its owner
//! (the origin's publisher identity, when the message names it) owns the game here too.

use std::sync::Arc;

use opensports_proto::Event;

use super::Rules;
use crate::seqs::Seq;

/// What becomes of a replicated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicated {
    /// Log it and queue it to `shard`, with `missing` seqs of the game not here yet.
    Accept { shard: usize, missing: u64 },
    /// Already here (this node ingested or applied it before).
    Duplicate,
    /// This node cannot hold it (another sport under the same id, the game table is full).
    Refused(String),
}

pub fn replicated(rules: Rules<'_>, event: &Event, owner: Option<&Arc<str>>) -> Replicated {
    let shard = match rules.directory.admit(&event.game, event.sport()) {
        Ok(shard) => shard,
        Err(code) => return Replicated::Refused(format!("game {}: {code}", event.game)),
    };
    if let Some(owner) = owner
        && rules.owners.owner(&event.game).is_none()
    {
        rules.owners.claim(&event.game, owner);
    }
    // The origin node applied the seq rules when it accepted the event; here it is only
    // classified (a duplicate is dropped), and recorded even where this node's view of the
    // game would refuse it (the origin's log is the truth).
    let missing = match rules.seqs.accept(&event.game, event.seq) {
        (Seq::Duplicate, _) => return Replicated::Duplicate,
        (v, _) if v.refused().is_some() => rules.seqs.restore(&event.game, event.seq),
        (_, missing) => missing,
    };
    rules.rosters.restore(event);
    Replicated::Accept { shard, missing }
}
