//! Start-up recovery: the log replayed through the shards before the listeners open.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::{Event, Sport};
use rkyv::util::AlignedVec;

use super::seq::GameSeq;
use super::{Store, StoreError, now_ms};
use crate::metrics as m;
use crate::pipeline::{Ingested, Pipeline};

/// What recovery replayed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    pub games: usize,
    pub events: u64,
    pub skipped_games: usize,
    pub elapsed: Duration,
}

/// Replays every game still live, or ended less than `ttl` ago, in seq order into the
/// pipeline, seeds ingest's sequencing, and waits until the shards have processed it all.
/// Games ended longer ago stay in the log (export, retention) but not in memory.
pub fn recover(store: &Store, pipeline: &Pipeline, ttl: Duration) -> Result<Recovered, StoreError> {
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
        if let Err(code) = pipeline.games().admit(&game, sport) {
            tracing::warn!(game, code, "game not recovered");
            continue;
        }
        pipeline.ratings().restore_game(&game, meta.elo_diff, meta.rated);
        let shard = pipeline.shard_of(&game);
        let mut seqs = GameSeq::default();
        let mut failure = None;
        store.for_each_event(&game, 0, &mut |seq, bytes| {
            let mut aligned = AlignedVec::with_capacity(bytes.len());
            aligned.extend_from_slice(bytes);
            let event = match rkyv::from_bytes::<Event, rkyv::rancor::Error>(&aligned) {
                Ok(e) => e,
                Err(e) => {
                    failure = Some(StoreError::BadEvent {
                        path: store.path().into(),
                        game: game.clone(),
                        seq,
                        why: e.to_string(),
                    });
                    return false;
                }
            };
            seqs.accept(seq);
            let item = Ingested {
                event,
                archived: Some(Arc::new(aligned)),
                received: Instant::now(),
                missing: seqs.missing_count(),
            };
            report.events += 1;
            pipeline.send_blocking(shard, item).is_ok()
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        pipeline.games().seed_sequence(&game, seqs);
        report.games += 1;
    }
    pipeline.barrier().map_err(|_| StoreError::Stopped)?;
    report.elapsed = started.elapsed();
    metrics::gauge!(m::STORE_RECOVERED_EVENTS).set(report.events as f64);
    metrics::gauge!(m::STORE_RECOVERY_SECONDS).set(report.elapsed.as_secs_f64());
    Ok(report)
}
