//! Start-up recovery: the log replayed through the shards before the listeners open.

use std::time::{Duration, Instant};

use opensports_proto::Sport;

use super::{Ingested, Pipeline};
use crate::metrics as m;
use crate::store::{Store, StoreError, now_ms};

/// What recovery replayed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    pub games: usize,
    pub events: u64,
    pub skipped_games: usize,
    pub elapsed: Duration,
}

/// Replays every game still live, or ended less than `ttl` ago, in seq order into the
/// pipeline, and waits until the shards have processed it all. Games ended longer ago stay in
/// the log (export, retention) but not in memory.
///
/// `sequence(event)` is told of every replayed event, so ingest's sequencing (and its per-game
/// bounds) knows what was accepted before the restart; it returns the game's events missing
/// so far.
pub fn recover(
    store: &Store,
    pipeline: &Pipeline,
    ttl: Duration,
    sequence: &mut dyn FnMut(&opensports_proto::Event) -> u64,
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
        store.replay_game(&game, &mut |seq, event, archived| {
            debug_assert_eq!(event.seq, seq);
            let missing = sequence(&event);
            let item = Ingested { event, archived: Some(archived), received: Instant::now(), missing };
            report.events += 1;
            pipeline.send_blocking(shard, item).is_ok()
        })?;
        report.games += 1;
    }
    pipeline.barrier().map_err(|_| StoreError::Stopped)?;
    report.elapsed = started.elapsed();
    metrics::gauge!(m::STORE_RECOVERED_EVENTS).set(report.events as f64);
    metrics::gauge!(m::STORE_RECOVERY_SECONDS).set(report.elapsed.as_secs_f64());
    Ok(report)
}
