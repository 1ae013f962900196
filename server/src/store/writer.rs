//! The group-commit writer: one thread owns every write transaction.
//!
//! It takes the first queued message, keeps collecting for at most `commit_window_us` or
//! `max_batch` events, commits with `Durability::Immediate` (fsync), and only then acks. Acks
//! for retries of events already accepted ride the same queue and go out only once what they
//! duplicate is in a committed transaction (checked in the log, not assumed from the order:
//! a retry can overtake its original's append, e.g. a cluster redelivery).
//!
//! A failed commit is retried until it succeeds: the queue fills, ingest stops reading,
//! publishers wait. Stalling is correct; acking is not. Between tries the file is closed and
//! reopened (`handle.rs`: redb refuses writes after an I/O error until then), so a disk that
//! was full commits again once space returns, without a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::Mutex;
use redb::ReadableTable;
use rkyv::util::AlignedVec;

use super::handle::Handle;
use super::seal::{T_EVENTS, T_GAMES, T_REPORTS, T_SNAPSHOTS};
use super::{AckSink, EVENTS, GAMES, GameMeta, RATINGS, REPORTS, SNAPSHOTS, StoreError, now_ms};
use crate::config::StoreConfig;
use crate::metrics as m;

/// How often ended games past retention are looked for.
const RETENTION_SWEEP: Duration = Duration::from_secs(60);

/// A message for the writer; built only by [`super::Store`]'s methods.
#[derive(Debug)]
pub(super) enum WriteMsg {
    /// Log `(game, seq)`; ack it after the commit.
    Append {
        game: String,
        seq: u64,
        sport: &'static str,
        bytes: Arc<AlignedVec>,
        owner: Option<Arc<str>>,
        ack: Arc<dyn AckSink>,
    },
    /// A retry of an event already accepted: ack once the original is committed.
    Ack { game: String, seq: u64, ack: Arc<dyn AckSink> },
    /// The game ended at this wall-clock time.
    Ended { game: String, at_ms: i64 },
    /// The game's pre-game Elo difference was pinned.
    Pregame { game: String, elo_diff: f64 },
    /// The game's result was applied: these ratings are current.
    Rated { game: String, ratings: Vec<(String, f64)> },
    /// The game's state snapshot (replaces the one before). Queued by the shard after every
    /// event it covers was queued, so it commits with or after them.
    Snapshot { game: String, bytes: Vec<u8> },
    /// The game's post-game report (JSON), as it leaves memory.
    Report { game: String, bytes: Vec<u8> },
}

pub(super) struct Writer {
    db: Arc<Handle>,
    closing: Arc<AtomicBool>,
    window: Duration,
    max_batch: usize,
    retention_ms: Option<i64>,
    metas: HashMap<String, GameMeta>,
    /// Bookkeeping that found the queue full (see `Store::overflow`), taken with each batch.
    overflow: Arc<Mutex<Vec<WriteMsg>>>,
    /// Acks of retries whose original is not in the log yet (it was admitted but its append
    /// is still on its way here): retried with each batch, acked once the original is
    /// committed, never before.
    deferred: Vec<WriteMsg>,
    /// Seals every value written when `[store.encryption]` is on.
    seal: super::Seal,
}

impl Writer {
    pub(super) fn new(
        db: Arc<Handle>,
        cfg: &StoreConfig,
        metas: HashMap<String, GameMeta>,
        overflow: Arc<Mutex<Vec<WriteMsg>>>,
        closing: Arc<AtomicBool>,
        seal: super::Seal,
    ) -> Writer {
        Writer {
            db,
            closing,
            window: Duration::from_micros(cfg.commit_window_us),
            max_batch: cfg.max_batch,
            retention_ms: (cfg.retention_hours > 0).then(|| cfg.retention_hours as i64 * 3_600_000),
            metas,
            overflow,
            deferred: Vec::new(),
            seal,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<WriteMsg>) {
        let commit_latency = metrics::histogram!(m::STORE_COMMIT_SECONDS);
        let batch_size = metrics::histogram!(m::STORE_BATCH_EVENTS);
        let appended = metrics::counter!(m::STORE_EVENTS_TOTAL);
        let mut batch = Vec::with_capacity(self.max_batch);
        let mut last_sweep: Option<Instant> = None;
        let mut open = true;
        while open {
            if last_sweep.is_none_or(|t| t.elapsed() >= RETENTION_SWEEP) {
                last_sweep = Some(Instant::now());
                self.sweep();
            }
            match rx.recv_timeout(RETENTION_SWEEP) {
                Ok(msg) => batch.push(msg),
                Err(RecvTimeoutError::Timeout) => continue,
                // Shutting down: commit any bookkeeping still waiting, then stop.
                Err(RecvTimeoutError::Disconnected) if self.overflow.lock().is_empty() => break,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            let deadline = Instant::now() + self.window;
            while open && batch.len() < self.max_batch {
                // Returns at once while messages are queued, else waits out the window.
                match rx.recv_deadline(deadline) {
                    Ok(msg) => batch.push(msg),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Bookkeeping waits here only while the queue was full, i.e. while this loop is
            // busy: taking it with every batch is soon enough.
            batch.append(&mut self.overflow.lock());
            batch.append(&mut self.deferred);
            let mut early = Vec::new();
            let started = Instant::now();
            let mut attempt = 0u32;
            let events = loop {
                early.clear();
                match self.commit(&batch, &mut early) {
                    Ok(n) => {
                        self.db.committed();
                        break n;
                    }
                    Err(e) => {
                        attempt += 1;
                        metrics::counter!(m::STORE_COMMIT_ERRORS_TOTAL).increment(1);
                        self.db.failing(&e);
                        if attempt.is_power_of_two() {
                            tracing::warn!(error = %e, attempt, "event log commit failed; retrying");
                        }
                        if self.closing.load(Ordering::Relaxed) && attempt >= 3 {
                            tracing::error!("giving up at shutdown: {} events stay un-acked", batch.len());
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10u64 << attempt.min(6)));
                        // redb takes no more writes after a failed commit until it is
                        // reopened; reopening also repairs from the last committed state.
                        if let Err(e) = self.db.reopen() {
                            tracing::warn!(error = %e, "reopening the event log failed; retrying");
                        }
                    }
                }
            };
            commit_latency.record(started.elapsed().as_secs_f64());
            batch_size.record(events as f64);
            appended.increment(events);
            for (i, msg) in batch.drain(..).enumerate() {
                if early.binary_search(&i).is_ok() {
                    self.deferred.push(msg);
                    continue;
                }
                match msg {
                    WriteMsg::Append { game, seq, ack, .. } | WriteMsg::Ack { game, seq, ack } => {
                        ack.ack(&game, seq)
                    }
                    WriteMsg::Ended { .. }
                    | WriteMsg::Pregame { .. }
                    | WriteMsg::Rated { .. }
                    | WriteMsg::Snapshot { .. }
                    | WriteMsg::Report { .. } => {}
                }
            }
        }
    }

    /// One write transaction for the whole batch. Returns the events written; `early` gets the
    /// positions (ascending) of retry acks whose original is not in the log yet.
    fn commit(&mut self, batch: &[WriteMsg], early: &mut Vec<usize>) -> Result<u64, StoreError> {
        let mut written = 0;
        let txn = self.db.get()?.begin_write()?;
        // Metadata changes are staged and applied to the cache only after the commit.
        let mut staged: HashMap<&str, GameMeta> = HashMap::new();
        {
            let mut events = txn.open_table(EVENTS)?;
            let mut games = txn.open_table(GAMES)?;
            let mut ratings = txn.open_table(RATINGS)?;
            let mut snapshots = txn.open_table(SNAPSHOTS)?;
            let mut reports = txn.open_table(REPORTS)?;
            for (i, msg) in batch.iter().enumerate() {
                match msg {
                    WriteMsg::Append { game, seq, sport, bytes, owner, .. } => {
                        let value = self.seal.put((T_EVENTS, game, *seq), bytes.as_slice());
                        let fresh = events.insert((game.as_str(), *seq), &*value)?.is_none();
                        let meta = stage(&mut staged, &self.metas, game);
                        if meta.sport.is_empty() {
                            meta.sport = (*sport).to_string();
                        }
                        if meta.owner.is_none()
                            && let Some(o) = owner
                        {
                            meta.owner = Some(o.to_string());
                        }
                        meta.high = meta.high.max(*seq);
                        meta.events += u64::from(fresh);
                        written += 1;
                    }
                    WriteMsg::Ended { game, at_ms } => {
                        let meta = stage(&mut staged, &self.metas, game);
                        meta.ended_at_ms.get_or_insert(*at_ms);
                    }
                    WriteMsg::Pregame { game, elo_diff } => {
                        let meta = stage(&mut staged, &self.metas, game);
                        meta.elo_diff.get_or_insert(*elo_diff);
                    }
                    WriteMsg::Rated { game, ratings: updated } => {
                        let meta = stage(&mut staged, &self.metas, game);
                        meta.rated = true;
                        for (team, r) in updated {
                            ratings.insert(team.as_str(), *r)?;
                        }
                    }
                    // A game deleted by retention takes no new snapshot.
                    WriteMsg::Snapshot { game, bytes } => {
                        if self.metas.contains_key(game) || staged.contains_key(game.as_str()) {
                            snapshots
                                .insert(game.as_str(), &*self.seal.put((T_SNAPSHOTS, game, 0), bytes))?;
                        }
                    }
                    WriteMsg::Report { game, bytes } => {
                        if self.metas.contains_key(game) || staged.contains_key(game.as_str()) {
                            reports.insert(game.as_str(), &*self.seal.put((T_REPORTS, game, 0), bytes))?;
                        }
                    }
                    // Acked only once the original is in this batch or an earlier commit.
                    WriteMsg::Ack { game, seq, .. } => {
                        if events.get((game.as_str(), *seq))?.is_none() {
                            early.push(i);
                        }
                    }
                }
            }
            for (game, meta) in &staged {
                let json = serde_json::to_vec(meta)
                    .map_err(|source| StoreError::Meta { game: game.to_string(), source })?;
                games.insert(*game, &*self.seal.put((T_GAMES, game, 0), &json))?;
            }
        }
        txn.commit()?;
        for (game, meta) in staged {
            self.metas.insert(game.to_string(), meta);
        }
        Ok(written)
    }

    /// Deletes the events of games that ended longer than the retention ago.
    fn sweep(&mut self) {
        let Some(retention) = self.retention_ms else { return };
        let now = now_ms();
        let expired: Vec<String> = self
            .metas
            .iter()
            .filter(|(_, m)| m.ended_at_ms.is_some_and(|t| now - t >= retention))
            .map(|(g, _)| g.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        match self.db.get().and_then(|db| delete_games(&db, &expired)) {
            Ok(events) => {
                for g in &expired {
                    self.metas.remove(g);
                }
                // A retry of an event of a deleted game waits for nothing any more.
                self.deferred.retain(|m| !matches!(m, WriteMsg::Ack { game, .. } if expired.contains(game)));
                metrics::counter!(m::STORE_RETENTION_GAMES_TOTAL).increment(expired.len() as u64);
                tracing::info!(games = expired.len(), events, "retention: deleted ended games from the log");
            }
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
    }
}

/// The staged copy of a game's metadata, made from the committed one on first touch.
fn stage<'a, 'b>(
    staged: &'b mut HashMap<&'a str, GameMeta>,
    committed: &HashMap<String, GameMeta>,
    game: &'a str,
) -> &'b mut GameMeta {
    staged.entry(game).or_insert_with(|| committed.get(game).cloned().unwrap_or_default())
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("games", &self.metas.len()).finish()
    }
}

/// Deletes games and their events in one transaction; returns the events deleted. redb
/// reuses the freed pages; `opensports compact` shrinks the file offline.
fn delete_games(db: &redb::Database, games: &[String]) -> Result<u64, StoreError> {
    let txn = db.begin_write()?;
    let mut deleted = 0u64;
    {
        let mut events = txn.open_table(EVENTS)?;
        let mut metas = txn.open_table(GAMES)?;
        let mut snapshots = txn.open_table(SNAPSHOTS)?;
        let mut reports = txn.open_table(REPORTS)?;
        for g in games {
            events.retain_in((g.as_str(), 0)..=(g.as_str(), u64::MAX), |_, _| {
                deleted += 1;
                false
            })?;
            metas.remove(g.as_str())?;
            snapshots.remove(g.as_str())?;
            reports.remove(g.as_str())?;
        }
    }
    txn.commit()?;
    Ok(deleted)
}
