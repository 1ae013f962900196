//! The durable event log: one redb file, `data_dir/opensports.redb`.
//!
//! Ingest hands every accepted event (already archived with rkyv) to a single writer thread,
//! which group-commits them with `Durability::Immediate` and only then acks the publishers.
//! The fan-out path does not wait for the commit: shards get the same event at the same time.
//!
//! # Layout
//! - [`EVENTS`], [`GAMES`], [`RATINGS`]: the table definitions, all of them, here.
//! - [`Store`]: opening (with clear errors for a corrupt file), the writer handle, reads for
//!   recovery, export and backup.
//! - `writer`: the group-commit thread (batching, acks, retention). Only this module builds
//!   its messages; the stages call [`Store`] methods.
//! - [`export`]: JSONL/CSV export, online backup, restore.
//!
//! `store` is a leaf: it knows events as bytes and games as metadata, never the pipeline.
//! Recovery (`pipeline::recover`) is a deterministic replay: on start, every game still live
//! (or ended within the pipeline's TTL) is read back in seq order through
//! [`Store::replay_game`] and fed through the shards before the listeners open. Core state, plugin state, topic seqs, latest values and history rings come out exactly
//! as they were, so subscribers resume with `since` across a restart (server/DESIGN.md).

pub mod export;
mod handle;
pub mod rekey;
pub mod seal;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Sender, TrySendError};
use opensports_proto::Event;
use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use rkyv::util::AlignedVec;
use serde::{Deserialize, Serialize};

use crate::config::StoreConfig;
use handle::Handle;
pub use handle::Health;
pub use seal::Seal;
use seal::{T_EVENTS, T_GAMES, T_REPORTS, T_SNAPSHOTS};
use writer::WriteMsg;

/// `(game, seq)` → the event archived with rkyv (the same bytes plugins read).
pub const EVENTS: TableDefinition<'static, (&str, u64), &[u8]> = TableDefinition::new("events");
/// game → [`GameMeta`] as JSON.
pub const GAMES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("games");
/// `sport/team` → Elo rating, kept current as games end (see `model::ratings`).
pub const RATINGS: TableDefinition<'static, &str, f64> = TableDefinition::new("ratings");

/// game → its latest state snapshot (`pipeline::snapshot`): recovery restores it and replays
/// only the events after it. Derived data: dropping it costs one full replay, nothing else.
pub const SNAPSHOTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("snapshots");

/// game → its post-game report (`crate::report::Report` as JSON), saved when the game leaves
/// memory, so `GET /v1/games/{id}/report` still answers afterwards. Deleted with the game.
pub const REPORTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("reports");

/// `seal` → the marker of an encrypted log (`seal.rs`); absent on a log never encrypted.
pub const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

/// File name of the log inside the data dir.
pub const FILE_NAME: &str = "opensports.redb";

/// What the log knows of a game besides its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GameMeta {
    pub sport: String,
    /// Highest seq in the log.
    pub high: u64,
    /// Events in the log.
    pub events: u64,
    /// Wall-clock time (ms since the epoch) the server saw the game end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    /// Pre-game Elo difference (home minus away, home advantage included), pinned when the
    /// teams were first known, so a replay gives the same win probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elo_diff: Option<f64>,
    /// The result was applied to the ratings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rated: bool,
    /// The publisher identity whose event created the game (its owner: see
    /// `auth::scope`); `None` for games logged before owners were, or applied from a cluster
    /// peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl GameMeta {
    /// Reads the `games` table's JSON for `game`.
    pub fn parse(game: &str, json: &[u8]) -> Result<GameMeta, StoreError> {
        serde_json::from_slice(json).map_err(|source| StoreError::Meta { game: game.into(), source })
    }
}

/// Why the log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the event log {path} is damaged or not a redb file ({source}). Nothing was changed. \
         Restore a backup with `opensports restore --from BACKUP --data-dir DIR`, or move the \
         file aside to start with an empty log"
    )]
    Corrupt { path: PathBuf, source: redb::DatabaseError },
    #[error(
        "the event log {path} is in use by another process (is a server already running on this data dir?)"
    )]
    Locked { path: PathBuf },
    #[error("event log {path}: {source}")]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error("event log: {0}")]
    Db(#[from] redb::Error),
    #[error("event log: {0}")]
    Io(#[from] std::io::Error),
    #[error("event log: bad game metadata for {game}: {source}")]
    Meta { game: String, source: serde_json::Error },
    #[error(
        "the event log {path} holds an unreadable event ({game}, {seq}): {why}. Restore a backup \
         with `opensports restore`, or export what is readable with `opensports export`"
    )]
    BadEvent { path: PathBuf, game: String, seq: u64, why: String },
    #[error("event log: {0}")]
    Inconsistent(String),
    #[error("the event log writer has stopped")]
    Stopped,
    #[error("event log encryption: {0}")]
    Seal(String),
    #[error("the event log is being reopened after a failed commit; try again")]
    Reopening,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_err!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Who hears that events are durable: a publisher connection's control stream.
pub trait AckSink: Send + Sync + std::fmt::Debug {
    /// Every event of `game` up to `seq` sent on this connection is committed.
    fn ack(&self, game: &str, seq: u64);
}

/// One event for [`Store::try_append`].
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    pub game: &'a str,
    pub seq: u64,
    pub sport: &'static str,
    /// The event archived with rkyv (the bytes the log stores and plugins read).
    pub bytes: &'a Arc<AlignedVec>,
    /// Who sent it (`None`: a cluster peer's event).
    pub owner: Option<&'a Arc<str>>,
}

/// Whether the writer took a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The writer queue is full; try again after a pause (backpressure to the publisher).
    Full,
}

/// How long shutdown waits for the writer's last commit.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The open log and its writer thread.
#[derive(Debug)]
pub struct Store {
    db: Arc<Handle>,
    path: PathBuf,
    /// Set at shutdown: a writer retrying a failed commit gives up instead of waiting.
    closing: Arc<std::sync::atomic::AtomicBool>,
    /// Closed when the writer thread ends (shutdown waits on it, bounded).
    done: crossbeam_channel::Receiver<()>,
    tx: Mutex<Option<Sender<WriteMsg>>>,
    /// Bookkeeping (game ended, ratings) that found the queue full. The shard threads that
    /// send it must never wait on the log writer, so it waits here and the writer takes it
    /// with its next batch. At most a few messages per game: bounded by the games in memory.
    overflow: Arc<Mutex<Vec<WriteMsg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    seal: Seal,
}

impl Store {
    /// Opens (or creates) `data_dir/opensports.redb` and starts the writer.
    pub fn open(cfg: &StoreConfig, data_dir: &Path) -> Result<Arc<Store>, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let seal = Seal::load(&cfg.encryption).map_err(StoreError::Seal)?;
        let db = open_db_cached(&path, cfg.cache_mib)?;
        {
            // Create the tables so readers never meet a missing one.
            let txn = db.begin_write()?;
            txn.open_table(EVENTS)?;
            txn.open_table(GAMES)?;
            txn.open_table(RATINGS)?;
            txn.open_table(SNAPSHOTS)?;
            txn.open_table(REPORTS)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        check_seal(&db, &seal, true)?;
        let metas = read_games(&db, &seal)?;
        let db = Arc::new(Handle::new(&path, db, cfg.cache_mib));
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_len);
        let overflow = Arc::new(Mutex::new(Vec::new()));
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (done_tx, done) = crossbeam_channel::bounded::<()>(0);
        let w = writer::Writer::new(db.clone(), cfg, metas, overflow.clone(), closing.clone(), seal.clone());
        let handle = std::thread::Builder::new().name("store-writer".into()).spawn(move || {
            let _done = done_tx;
            w.run(rx)
        })?;
        Ok(Arc::new(Store {
            db,
            path,
            closing,
            done,
            tx: Mutex::new(Some(tx)),
            overflow,
            writer: Mutex::new(Some(handle)),
            seal,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log commits now.
    pub fn health(&self) -> Health {
        self.db.health()
    }

    /// Hears every change of [`Store::health`].
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<Health> {
        self.db.watch()
    }

    /// Queues event `(game, seq)`, archived with rkyv, for the log without waiting; `ack`
    /// hears when it is committed. `owner` (who sent it) is recorded as the game's owner if it
    /// has none yet. [`Queued::Full`] is backpressure: retry after a pause.
    pub fn try_append(&self, append: Append<'_>, ack: &Arc<dyn AckSink>) -> Result<Queued, StoreError> {
        let Append { game, seq, sport, bytes, owner } = append;
        let (bytes, ack, owner) = (bytes.clone(), ack.clone(), owner.cloned());
        self.try_send(WriteMsg::Append { game: game.to_string(), seq, sport, bytes, owner, ack })
    }

    /// Queues the ack of a retry of `(game, seq)`, an event already accepted: `ack` hears once
    /// the original is committed (the writer checks the log), so the ack never overtakes it.
    pub fn try_ack_after_commit(
        &self,
        game: &str,
        seq: u64,
        ack: &Arc<dyn AckSink>,
    ) -> Result<Queued, StoreError> {
        self.try_send(WriteMsg::Ack { game: game.to_string(), seq, ack: ack.clone() })
    }

    fn try_send(&self, msg: WriteMsg) -> Result<Queued, StoreError> {
        let tx = self.tx.lock().clone();
        let Some(tx) = tx else { return Err(StoreError::Stopped) };
        match tx.try_send(msg) {
            Ok(()) => Ok(Queued::Yes),
            Err(TrySendError::Full(_)) => Ok(Queued::Full),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Stopped),
        }
    }

    /// Records that a game ended (for retention and for recovery's TTL).
    pub fn game_ended(&self, game: &str, at_ms: i64) {
        self.bookkeeping(WriteMsg::Ended { game: game.to_string(), at_ms });
    }

    /// Records a game's pre-game Elo difference, pinned once (replays give the same numbers).
    pub fn pregame(&self, game: &str, elo_diff: f64) {
        self.bookkeeping(WriteMsg::Pregame { game: game.to_string(), elo_diff });
    }

    /// Records that a game's result was applied to the ratings, with the ratings now current.
    pub fn rated(&self, game: &str, ratings: Vec<(String, f64)>) {
        self.bookkeeping(WriteMsg::Rated { game: game.to_string(), ratings });
    }

    /// Queues a game's state snapshot without waiting (shard threads send these). Dropped, and
    /// counted, when the writer's queue is full: the next one on the schedule replaces it.
    pub fn save_snapshot(&self, game: &str, bytes: Vec<u8>) {
        let msg = WriteMsg::Snapshot { game: game.to_string(), bytes };
        if !matches!(self.try_send(msg), Ok(Queued::Yes)) {
            metrics::counter!(crate::metrics::STORE_SNAPSHOTS_DROPPED_TOTAL).increment(1);
        }
    }

    /// The game's latest state snapshot, if one was taken.
    pub fn snapshot(&self, game: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(SNAPSHOTS)?;
        let Some(v) = table.get(game)? else { return Ok(None) };
        Ok(Some(self.open_value((T_SNAPSHOTS, game, 0), v.value())?.into_owned()))
    }

    /// Queues a game's post-game report without waiting (the shard, as the game leaves
    /// memory). Dropped, and counted as a dropped snapshot, when the writer's queue is full.
    pub fn save_report(&self, game: &str, bytes: Vec<u8>) {
        let msg = WriteMsg::Report { game: game.to_string(), bytes };
        if !matches!(self.try_send(msg), Ok(Queued::Yes)) {
            metrics::counter!(crate::metrics::STORE_SNAPSHOTS_DROPPED_TOTAL).increment(1);
        }
    }

    /// The game's saved post-game report (JSON), if it left memory with one.
    pub fn report(&self, game: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(REPORTS)?;
        let Some(v) = table.get(game)? else { return Ok(None) };
        Ok(Some(self.open_value((T_REPORTS, game, 0), v.value())?.into_owned()))
    }

    /// Queues a bookkeeping message without ever waiting (shard threads send these).
    fn bookkeeping(&self, msg: WriteMsg) {
        let tx = self.tx.lock().clone();
        let Some(tx) = tx else {
            return tracing::warn!("event log writer gone; bookkeeping not recorded");
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            // The writer is busy (its queue is full): it takes this with its next batch.
            Err(TrySendError::Full(msg)) => self.overflow.lock().push(msg),
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("event log writer gone; bookkeeping not recorded")
            }
        }
    }

    /// Calls `f(seq, event, archived bytes)` for each event of `game` whose seq is in one of
    /// `ranges` (inclusive, ascending: `&[(0, u64::MAX)]` for all), in seq order, from one
    /// consistent read of the log (recovery's replay). Stops early when `f` returns false. An
    /// event that does not decode is [`StoreError::BadEvent`].
    pub fn replay_game(
        &self,
        game: &str,
        ranges: &[(u64, u64)],
        f: &mut dyn FnMut(u64, Event, Arc<AlignedVec>) -> bool,
    ) -> Result<(), StoreError> {
        let mut failure = None;
        self.for_each_in(game, ranges, &mut |seq, bytes| {
            let aligned = opensports_proto::codec::aligned(bytes);
            match rkyv::from_bytes::<Event, rkyv::rancor::Error>(&aligned) {
                Ok(event) => f(seq, event, Arc::new(aligned)),
                Err(e) => {
                    failure = Some(StoreError::BadEvent {
                        path: self.path.clone(),
                        game: game.to_string(),
                        seq,
                        why: e.to_string(),
                    });
                    false
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// Writes every logged event of `game` in seq order (`GET /v1/games/{id}/events`);
    /// `Ok(None)` when the log does not know the game.
    pub fn export_game(
        &self,
        game: &str,
        format: export::Format,
        out: &mut dyn std::io::Write,
    ) -> Result<Option<u64>, StoreError> {
        export::export_game(&*self.db.get()?, &self.seal, game, format, out, &mut |_, _| {})
    }

    /// A consistent copy of the log, taken while writes go on, into a new redb file at `to`.
    pub fn backup(&self, to: &Path) -> Result<export::Summary, StoreError> {
        export::backup(&*self.db.get()?, to, &mut |_, _| {})
    }

    /// A consistent read view of the log, for many point reads (a plugin rebuild).
    pub fn reader(&self) -> Result<LogReader, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        Ok(LogReader { events: txn.open_table(EVENTS)?, seal: self.seal.clone() })
    }

    /// Every rating kept in the log.
    pub fn ratings(&self) -> Result<HashMap<String, f64>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(RATINGS)?;
        let mut out = HashMap::new();
        for item in table.iter()? {
            let (k, v) = item?;
            out.insert(k.value().to_string(), v.value());
        }
        Ok(out)
    }

    /// One game's metadata, if the log knows it.
    pub fn game(&self, game: &str) -> Result<Option<GameMeta>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let games = txn.open_table(GAMES)?;
        let Some(v) = games.get(game)? else { return Ok(None) };
        Ok(Some(GameMeta::parse(game, &self.open_value((T_GAMES, game, 0), v.value())?)?))
    }

    /// Every game in the log with its metadata.
    pub fn games(&self) -> Result<HashMap<String, GameMeta>, StoreError> {
        read_games(&*self.db.get()?, &self.seal)
    }

    /// A stored value opened (as written), or an error naming it.
    fn open_value<'a>(
        &self,
        at: (&str, &str, u64),
        v: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
        open_value(&self.seal, &self.path, at, v)
    }

    /// Calls `f(seq, archived_event)` for each event of `game` with seq ≥ `from`, in order,
    /// from one consistent snapshot. Stops early when `f` returns false.
    pub fn for_each_event(
        &self,
        game: &str,
        from: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.for_each_in(game, &[(from, u64::MAX)], f)
    }

    /// [`Store::for_each_event`] over several inclusive seq ranges, in the order given.
    fn for_each_in(
        &self,
        game: &str,
        ranges: &[(u64, u64)],
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let events = txn.open_table(EVENTS)?;
        for &(from, to) in ranges {
            for item in events.range((game, from)..=(game, to))? {
                let (k, v) = item?;
                let seq = k.value().1;
                if !f(seq, &self.open_value((T_EVENTS, game, seq), v.value())?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Commits everything queued, then stops the writer. Called at graceful shutdown. Never
    /// hangs: a writer whose commits fail gives up after a few tries, and one stuck inside a
    /// commit (a hung disk) is left behind after [`SHUTDOWN_GRACE`] (what it held is un-acked,
    /// so publishers resend it).
    pub fn shutdown(&self) {
        self.closing.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(self.tx.lock().take());
        let Some(h) = self.writer.lock().take() else { return };
        if let Err(crossbeam_channel::RecvTimeoutError::Timeout) = self.done.recv_timeout(SHUTDOWN_GRACE) {
            return tracing::error!(
                "the event log writer is stuck in a commit after {SHUTDOWN_GRACE:?}; shutting down without it \
                 (what it held was never acked: publishers resend it)"
            );
        }
        if h.join().is_err() {
            tracing::error!("the event log writer panicked");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Point reads of events from one read snapshot ([`Store::reader`]).
pub struct LogReader {
    events: redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>,
    seal: Seal,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogReader")
    }
}

impl LogReader {
    /// Whether `(game, seq)` is in the log.
    pub fn contains(&self, game: &str, seq: u64) -> Result<bool, StoreError> {
        Ok(self.events.get((game, seq))?.is_some())
    }

    /// The archived event `(game, seq)`, aligned for rkyv.
    pub fn get(&self, game: &str, seq: u64) -> Result<Option<AlignedVec>, StoreError> {
        let Some(v) = self.events.get((game, seq))? else { return Ok(None) };
        let plain = self.seal.get((T_EVENTS, game, seq), v.value()).map_err(|e| StoreError::BadEvent {
            path: PathBuf::new(),
            game: game.into(),
            seq,
            why: e.to_string(),
        })?;
        Ok(Some(opensports_proto::codec::aligned(&plain)))
    }
}

/// Opens a redb file with errors that say what to do.
pub fn open_db(path: &Path) -> Result<Database, StoreError> {
    open_db_cached(path, crate::config::StoreConfig::default().cache_mib)
}

/// [`open_db`] with redb's page cache at `cache_mib` MiB (redb's own default is 1 GiB, which a
/// long-running server fills as the log grows: `store.cache_mib` bounds it).
pub fn open_db_cached(path: &Path, cache_mib: usize) -> Result<Database, StoreError> {
    let existed = path.exists();
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache_mib.max(1) << 20);
    let result = if existed { builder.open(path) } else { builder.create(path) };
    result.map_err(|source| match source {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.into() },
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))
        | redb::DatabaseError::Storage(redb::StorageError::Io(_))
        | redb::DatabaseError::RepairAborted
        | redb::DatabaseError::UpgradeRequired(_)
            if existed =>
        {
            StoreError::Corrupt { path: path.into(), source }
        }
        source => StoreError::Open { path: path.into(), source },
    })
}

fn read_games(db: &Database, seal: &Seal) -> Result<HashMap<String, GameMeta>, StoreError> {
    let txn = db.begin_read()?;
    let games = txn.open_table(GAMES)?;
    let mut out = HashMap::new();
    for item in games.iter()? {
        let (k, v) = item?;
        let game = k.value();
        let json = seal
            .get((T_GAMES, game, 0), v.value())
            .map_err(|e| StoreError::Seal(format!("game {game}: {e}")))?;
        out.insert(game.to_string(), GameMeta::parse(game, &json)?);
    }
    Ok(out)
}

/// A stored value opened with `seal`; an event that does not open is a [`StoreError::BadEvent`].
pub fn open_value<'a>(
    seal: &Seal,
    path: &Path,
    (table, game, seq): (&str, &str, u64),
    v: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
    seal.get((table, game, seq), v).map_err(|e| match table {
        T_EVENTS => StoreError::BadEvent { path: path.into(), game: game.into(), seq, why: e.to_string() },
        _ => StoreError::Seal(format!("{table} of {game}: {e}")),
    })
}

/// Refuses a log this seal cannot read (encrypted without a key, with another key, or plain
/// with one), and (`mark`) marks an empty log encrypted when it is on.
pub(crate) fn check_seal(db: &Database, seal: &Seal, mark: bool) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let marker = txn.open_table(META)?.get("seal")?.map(|v| v.value().to_vec());
    let empty = txn.open_table(EVENTS)?.is_empty()? && txn.open_table(GAMES)?.is_empty()?;
    drop(txn);
    seal.check(marker.as_deref(), empty).map_err(StoreError::Seal)?;
    if let (true, None, Some(m)) = (mark, &marker, seal.marker()) {
        let txn = db.begin_write()?;
        txn.open_table(META)?.insert("seal", m.as_slice())?;
        txn.commit()?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug, Default)]
    struct Count(AtomicU64);
    impl AckSink for Count {
        fn ack(&self, _game: &str, seq: u64) {
            self.0.fetch_max(seq, Ordering::SeqCst);
        }
    }

    fn append(store: &Store, game: &str, seq: u64, ack: &Arc<Count>) {
        let bytes = Arc::new(rkyv::util::AlignedVec::new());
        let ack: Arc<dyn AckSink> = ack.clone();
        assert_eq!(
            store
                .try_append(Append { game, seq, sport: "basketball", bytes: &bytes, owner: None }, &ack)
                .unwrap(),
            Queued::Yes
        );
    }

    #[test]
    fn acks_follow_commits_and_retention_deletes_old_ended_games() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::default();
        let store = Store::open(&cfg, dir.path()).unwrap();
        let ack = Arc::new(Count::default());
        for seq in 1..=3 {
            append(&store, "old", seq, &ack);
            append(&store, "live", seq, &ack);
        }
        store.game_ended("old", now_ms() - 169 * 3_600_000);
        store.shutdown();
        assert_eq!(ack.0.load(Ordering::SeqCst), 3);
        let games = store.games().unwrap();
        assert_eq!(games["old"].events, 3);
        assert!(games["old"].ended_at_ms.is_some() && games["live"].ended_at_ms.is_none());
        drop(store);

        // The writer sweeps at start: "old" ended 169 h ago, past the default 168 h.
        let store = Store::open(&cfg, dir.path()).unwrap();
        store.shutdown();
        let games = store.games().unwrap();
        assert!(!games.contains_key("old"), "{games:?}");
        assert_eq!(
            games["live"],
            GameMeta { sport: "basketball".into(), high: 3, events: 3, ..GameMeta::default() }
        );
        let mut seqs = Vec::new();
        store
            .for_each_event("old", 0, &mut |s, _| {
                seqs.push(s);
                true
            })
            .unwrap();
        assert!(seqs.is_empty());
        store
            .for_each_event("live", 0, &mut |s, _| {
                seqs.push(s);
                true
            })
            .unwrap();
        assert_eq!(seqs, [1, 2, 3]);
    }

    /// A retry's ack that reaches the writer before its original's append (a cluster
    /// redelivery during a slow commit) waits for the original's commit: acking it at once
    /// would let a crash lose an acked event.
    #[test]
    fn a_retry_ack_never_overtakes_its_original() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), dir.path()).unwrap();
        let (retry, other) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let retry_sink: Arc<dyn AckSink> = retry.clone();
        assert_eq!(store.try_ack_after_commit("g", 5, &retry_sink).unwrap(), Queued::Yes);
        // Commits after it go through; the retry is still not acked (its original is not in
        // the log). A second writer message per round makes sure a batch passed it.
        for seq in 1..=3 {
            append(&store, "h", seq, &other);
            while other.0.load(Ordering::SeqCst) < seq {
                std::thread::yield_now();
            }
        }
        assert_eq!(retry.0.load(Ordering::SeqCst), 0, "acked before its original was logged");
        append(&store, "g", 5, &other);
        store.shutdown();
        assert_eq!(retry.0.load(Ordering::SeqCst), 5);
    }
}
