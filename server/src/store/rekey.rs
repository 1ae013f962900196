//! `opensports rekey`: every value of the log rewritten under the key ring's newest key (or,
//! for a log written unencrypted, encrypted for the first time), in one transaction, with the
//! marker; older keys can leave the ring afterwards. Offline: no server may hold the log.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::seal::{Keyring, SealError, T_EVENTS, T_GAMES, T_META, T_REPORTS, T_SNAPSHOTS};
use super::{EVENTS, GAMES, META, REPORTS, SNAPSHOTS, StoreError};

/// What a rekey rewrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rekeyed {
    /// Values rewritten under the newest key.
    pub values: u64,
    /// Of them, values that were not encrypted before.
    pub were_plain: u64,
}

/// Rewrites every value of `db` under `ring`'s newest key. A value sealed under a key the ring
/// does not hold, or that does not open, stops it with nothing changed.
pub fn rekey(db: &Database, ring: &Keyring, progress: &mut dyn FnMut(u64)) -> Result<Rekeyed, StoreError> {
    let plain_log = db.begin_read()?.open_table(META)?.get("seal")?.is_none();
    let mut done = Rekeyed::default();
    let txn = db.begin_write()?;
    {
        let mut events = txn.open_table(EVENTS)?;
        let keys: Vec<(String, u64)> = events
            .iter()?
            .map(|r| r.map(|(k, _)| (k.value().0.to_string(), k.value().1)))
            .collect::<Result<_, _>>()?;
        for (game, seq) in keys {
            let Some(old) = events.get((game.as_str(), seq))?.map(|v| v.value().to_vec()) else { continue };
            let new = reseal(ring, plain_log, (T_EVENTS, &game, seq), &old, &mut done)?;
            events.insert((game.as_str(), seq), new.as_slice())?;
            progress(done.values);
        }
        for (def, table) in [(GAMES, T_GAMES), (SNAPSHOTS, T_SNAPSHOTS), (REPORTS, T_REPORTS)] {
            rekey_by_game(&txn, def, table, ring, plain_log, &mut done)?;
        }
        let marker = ring.seal((T_META, "", 0), b"opensports sealed log");
        txn.open_table(META)?.insert("seal", marker.as_slice())?;
    }
    txn.commit()?;
    Ok(done)
}

fn rekey_by_game(
    txn: &redb::WriteTransaction,
    def: TableDefinition<'static, &str, &[u8]>,
    table: &str,
    ring: &Keyring,
    plain_log: bool,
    done: &mut Rekeyed,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(def)?;
    let rows: Vec<(String, Vec<u8>)> = t
        .iter()?
        .map(|r| r.map(|(k, v)| (k.value().to_string(), v.value().to_vec())))
        .collect::<Result<_, _>>()?;
    for (game, old) in rows {
        let new = reseal(ring, plain_log, (table, &game, 0), &old, done)?;
        t.insert(game.as_str(), new.as_slice())?;
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
        ring.open(at, old).map_err(|e: SealError| {
            StoreError::Seal(format!("{} of {} (seq {}): {e}; nothing was changed", at.0, at.1, at.2))
        })?
    };
    done.values += 1;
    Ok(ring.seal(at, &plain))
}
