//! `opensports rekey`: the log rewritten into a fresh file with every value under the key
//! ring's newest key (or, for a log written unencrypted, encrypted for the first time), then
//! renamed over the old one, so no page of the old file (plain text, or values under a key
//! being retired) stays behind. Older keys can leave the ring afterwards. Offline: no server
//! may hold the log.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use super::seal::{Keyring, T_EVENTS, T_GAMES, T_META, T_REPORTS, T_SNAPSHOTS};
use super::{EVENTS, GAMES, META, RATINGS, REPORTS, SNAPSHOTS, StoreError, open_db};

/// What a rekey rewrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// Values rewritten under the newest key.
    pub values: u64,
    /// Of them, values that were not encrypted before.
    pub were_plain: u64,
}

/// Rewrites the log at `path` under `ring`'s newest key. A value sealed under a key the ring
/// does not hold, or that does not open, stops it with nothing changed.
pub fn rekey(path: &Path, ring: &Keyring, progress: &mut dyn FnMut(u64)) -> Result<Rekeyed, StoreError> {
    let src = open_db(path)?;
    let read = src.begin_read()?;
    let known = [EVENTS.name(), GAMES.name(), RATINGS.name(), SNAPSHOTS.name(), REPORTS.name(), META.name()];
    for t in read.list_tables()? {
        if !known.contains(&t.name()) {
            return Err(StoreError::Seal(format!(
                "unknown table {:?} in the log; nothing was changed",
                t.name()
            )));
        }
    }
    let plain_log = read.open_table(META)?.get("seal")?.is_none();
    let tmp = PathBuf::from(format!("{}.rekeying", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let dst = Database::create(&tmp).map_err(|source| StoreError::Open { path: tmp.clone(), source })?;
    let mut done = Rekeyed::default();
    let txn = dst.begin_write()?;
    {
        let mut events = txn.open_table(EVENTS)?;
        for item in read.open_table(EVENTS)?.iter()? {
            let (k, v) = item?;
            let (game, seq) = k.value();
            let new = reseal(ring, plain_log, (T_EVENTS, game, seq), v.value(), &mut done)?;
            events.insert((game, seq), new.as_slice())?;
            progress(done.values);
        }
        for (def, table) in [(GAMES, T_GAMES), (SNAPSHOTS, T_SNAPSHOTS), (REPORTS, T_REPORTS)] {
            copy_by_game(&read, &txn, def, table, ring, plain_log, &mut done)?;
        }
        let mut ratings = txn.open_table(RATINGS)?;
        for item in read.open_table(RATINGS)?.iter()? {
            let (k, v) = item?;
            ratings.insert(k.value(), v.value())?;
        }
        let marker = ring.seal((T_META, "", 0), b"opensports sealed log");
        txn.open_table(META)?.insert("seal", marker.as_slice())?;
    }
    txn.commit()?;
    drop((dst, read, src));
    std::fs::rename(&tmp, path)?;
    Ok(done)
}

fn copy_by_game(
    read: &redb::ReadTransaction,
    txn: &redb::WriteTransaction,
    def: TableDefinition<'static, &str, &[u8]>,
    table: &str,
    ring: &Keyring,
    plain_log: bool,
    done: &mut Rekeyed,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(def)?;
    for item in read.open_table(def)?.iter()? {
        let (k, v) = item?;
        let new = reseal(ring, plain_log, (table, k.value(), 0), v.value(), done)?;
        t.insert(k.value(), new.as_slice())?;
    }
    Ok(())
}

/// One value under the newest key: opened first (taken as it is on a log never encrypted: a
/// rekey is one transaction, so a log is all plain, without the marker, or all sealed).
fn reseal(
    ring: &Keyring,
    plain_log: bool,
    at: (&str, &str, u64),
    old: &[u8],
    done: &mut Rekeyed,
) -> Result<Vec<u8>, StoreError> {
    let plain = if plain_log {
        done.were_plain += 1;
        old.to_vec()
    } else {
        ring.open(at, old).map_err(|e| {
            StoreError::Seal(format!("{} of {} (seq {}): {e}; nothing was changed", at.0, at.1, at.2))
        })?
    };
    done.values += 1;
    Ok(ring.seal(at, &plain))
}
