//! Start-up recovery: the log replayed through the shards before the listeners open. A game
//! with a usable state snapshot (`snapshot.rs`) is restored from it and only the events after
//! it are replayed; any other game is replayed from its first event.

use std::time::{Duration, Instant};

use opensports_proto::Sport;

use super::snapshot::GameSnapshot;
use super::{Ingested, Pipeline};
use crate::metrics as m;
use crate::seqs::GameSeq;
use crate::store::{Store, StoreError, now_ms};

/// What ingest remembers of each game (sequencing, people), told what recovery brings back.
pub trait Remember {
    /// An event read back from the log; returns the game's events missing so far.
    fn event(&self, event: &opensports_proto::Event) -> u64;
    /// A game restored from a snapshot, before the events after it: the seqs and the people
    /// it covers.
    fn snapshot(&self, game: &str, seqs: &GameSeq, people: &[String]);
}

/// What recovery replayed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    pub games: usize,
    pub events: u64,
    /// Games restored from a snapshot (then only the events after it were replayed).
    pub from_snapshots: usize,
    pub skipped_games: usize,
    pub elapsed: Duration,
}

/// Replays every game still live, or ended less than `ttl` ago, in seq order into the
/// pipeline, and waits until the shards have processed it all. Games ended longer ago stay in
/// the log (export, retention) but not in memory.
///
/// `memory` is told of every snapshot restored and every replayed event, so ingest's
/// sequencing (and its per-game bounds) knows what was accepted before the restart.
/// `snapshots`: use the games' snapshots (`store.snapshot_every` > 0).
pub fn recover(
    store: &Store,
    pipeline: &Pipeline,
    ttl: Duration,
    snapshots: bool,
    memory: &dyn Remember,
) -> Result<Recovered, StoreError> {
    let started = Instant::now();
    let mut report = Recovered::default();
    let now = now_ms();
    let mut games: Vec<_> = store.games()?.into_iter().collect();
    games.sort_by(|a, b| a.0.cmp(&b.0));
    for (game, meta) in games {
        if meta.ended_at_ms.is_some_and(|t| now - t >= ttl.as_millis() as i64) {
            report.skipped_games += 1;
            continue;
        }
        let Some(sport) = Sport::parse(&meta.sport) else {
            tracing::warn!(game, sport = meta.sport, "unknown sport in the log; game not recovered");
            continue;
        };
        let shard = match pipeline.directory().admit(&game, sport) {
            Ok(shard) => shard,
            Err(code) => {
                tracing::warn!(game, code, "game not recovered");
                continue;
            }
        };
        pipeline.ratings().restore_game(&game, meta.elo_diff, meta.rated);
        let mut ranges = vec![(0, u64::MAX)];
        if snapshots && let Some(snap) = usable_snapshot(store, &game) {
            let (seqs, people, tail) = (snap.seqs.clone(), snap.people.clone(), snap.tail());
            if pipeline.restore(shard, snap).map_err(|_| StoreError::Stopped)? {
                memory.snapshot(&game, &seqs, &people);
                report.from_snapshots += 1;
                ranges = tail;
            }
        }
        store.replay_game(&game, &ranges, &mut |seq, event, archived| {
            debug_assert_eq!(event.seq, seq);
            let missing = memory.event(&event);
            let item =
                Ingested { event, archived: Some(archived), received: Instant::now(), missing, trace: None };
            report.events += 1;
            pipeline.send_blocking(shard, item).is_ok()
        })?;
        report.games += 1;
    }
    pipeline.barrier().map_err(|_| StoreError::Stopped)?;
    report.elapsed = started.elapsed();
    metrics::gauge!(m::STORE_RECOVERED_EVENTS).set(report.events as f64);
    metrics::gauge!(m::STORE_RECOVERY_SECONDS).set(report.elapsed.as_secs_f64());
    metrics::gauge!(m::STORE_RECOVERED_SNAPSHOTS).set(report.from_snapshots as f64);
    Ok(report)
}

/// The game's snapshot if it decodes and the log holds its highest seq (it was committed
/// with or after the events it covers; a missing one means a damaged or edited log).
fn usable_snapshot(store: &Store, game: &str) -> Option<GameSnapshot> {
    let bytes = match store.snapshot(game) {
        Ok(b) => b?,
        Err(e) => {
            tracing::warn!(game, error = %e, "cannot read the game's snapshot; replaying it whole");
            return None;
        }
    };
    let snap = match GameSnapshot::decode(game, &bytes) {
        Ok(s) => s,
        Err(why) => {
            tracing::warn!(game, why, "snapshot not used; replaying the game whole");
            return None;
        }
    };
    let logged = store.reader().and_then(|r| r.contains(game, snap.seqs.high)).unwrap_or(false);
    if !logged {
        tracing::warn!(
            game,
            seq = snap.seqs.high,
            "the log lacks the snapshot's last event; replaying the game whole"
        );
        return None;
    }
    Some(snap)
}
