//! The open redb file, shared by the writer and the readers, and the log's health.
//!
//! redb refuses every write after a failed commit ("Previous I/O error occurred. Please close
//! and re-open the database"): a full disk that frees up would keep the log failing until a
//! restart. So the database sits in a slot the writer can empty and refill: after a failed
//! commit it closes the file (waiting briefly for readers to finish) and opens it again, which
//! runs redb's repair from the last committed transaction. Readers meanwhile get
//! [`StoreError::Reopening`].
//!
//! [`Health`] is what `/readyz` reports and what publishers are told on their control stream
//! (PROTOCOL.md §1.2, `log`): `Open`, or `Failing` with the last error, from the first failed
//! commit until one succeeds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::Database;
use tokio::sync::watch;

use super::{StoreError, open_db_cached};
use crate::metrics as m;

/// How long a reopen waits for readers to let go of the old file.
const READERS_GRACE: Duration = Duration::from_secs(2);

/// Whether the log commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Open,
    /// Commits fail (the reason is the last error); publishers are not acked meanwhile.
    Failing(String),
}

impl Health {
    /// `"open"` or `"failing"` (`/readyz`'s `log`, the control message's `status`).
    pub fn name(&self) -> &'static str {
        match self {
            Health::Open => "open",
            Health::Failing(_) => "failing",
        }
    }
}

/// The database slot and the health watch.
#[derive(Debug)]
pub(super) struct Handle {
    path: PathBuf,
    cache_mib: usize,
    slot: RwLock<Option<Arc<Database>>>,
    health: watch::Sender<Health>,
}

impl Handle {
    pub(super) fn new(path: &Path, db: Database, cache_mib: usize) -> Handle {
        metrics::gauge!(m::STORE_FAILING).set(0.0);
        Handle {
            path: path.to_path_buf(),
            cache_mib,
            slot: RwLock::new(Some(Arc::new(db))),
            health: watch::Sender::new(Health::Open),
        }
    }

    /// The open database (held only for one read or one commit).
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.slot.read().clone().ok_or(StoreError::Reopening)
    }

    pub(super) fn health(&self) -> Health {
        self.health.borrow().clone()
    }

    pub(super) fn watch(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Records a failed commit (only the change from open is logged as such).
    pub(super) fn failing(&self, why: &StoreError) {
        let reason = why.to_string();
        let changed = self.health.send_if_modified(|h| {
            let was_open = *h == Health::Open;
            *h = Health::Failing(reason.clone());
            was_open
        });
        if changed {
            metrics::gauge!(m::STORE_FAILING).set(1.0);
            tracing::error!(error = %reason, "the event log cannot commit: publishers are not acked until it can");
        }
    }

    /// Records a successful commit.
    pub(super) fn committed(&self) {
        if self.health.send_if_modified(|h| std::mem::replace(h, Health::Open) != Health::Open) {
            metrics::gauge!(m::STORE_FAILING).set(0.0);
            tracing::info!("the event log commits again");
        }
    }

    /// Closes the file and opens it again (after a failed commit). On failure the slot stays
    /// empty and the next attempt tries again.
    pub(super) fn reopen(&self) -> Result<(), StoreError> {
        let old = self.slot.write().take();
        if let Some(db) = old {
            let weak = Arc::downgrade(&db);
            drop(db);
            // Readers hold the file for one read: wait for them, briefly.
            let until = Instant::now() + READERS_GRACE;
            while weak.strong_count() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let db = open_db_cached(&self.path, self.cache_mib)?;
        metrics::counter!(m::STORE_REOPENS_TOTAL).increment(1);
        *self.slot.write() = Some(Arc::new(db));
        Ok(())
    }
}
