//! Getting data out and back: JSONL/CSV export of a game's events, a consistent online
//! backup, verification, restore and offline compaction.

use std::io::Write;
use std::path::{Path, PathBuf};

use opensports_proto::codec::{self, Codec};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::seal::{T_EVENTS, T_GAMES};
use super::{
    EVENTS, FILE_NAME, GAMES, GameMeta, META, RATINGS, Seal, StoreError, check_seal, open_db, open_value,
};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One wire-format JSON event per line.
    Jsonl,
    /// `game,seq,ts,clock_ms,sport,type,event` with the whole event as JSON in the last column.
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown format {other:?} (jsonl or csv)")),
        }
    }
}

/// Progress callback: (done, total).
pub type ProgressFn<'a> = dyn FnMut(u64, u64) + 'a;

/// Writes every event of `game` in seq order from one snapshot. Returns the events written;
/// `Ok(None)` when the log does not know the game.
pub fn export_game(
    db: &Database,
    seal: &Seal,
    game: &str,
    format: Format,
    out: &mut dyn Write,
    progress: &mut ProgressFn<'_>,
) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let games = txn.open_table(GAMES)?;
    let Some(meta) = games.get(game)? else { return Ok(None) };
    let meta = open_value(seal, Path::new(""), (T_GAMES, game, 0), meta.value())?;
    let total = serde_json::from_slice::<GameMeta>(&meta).map(|m| m.events).unwrap_or(0);
    let events = txn.open_table(EVENTS)?;
    if format == Format::Csv {
        writeln!(out, "game,seq,ts,clock_ms,sport,type,event")?;
    }
    let mut n = 0u64;
    let mut line = Vec::new();
    for item in events.range((game, 0)..=(game, u64::MAX))? {
        let (k, v) = item?;
        let seq = k.value().1;
        let plain = open_value(seal, Path::new(""), (T_EVENTS, game, seq), v.value())?;
        let ev = codec::decode_event(Codec::Rkyv, &plain).map_err(|e| StoreError::BadEvent {
            path: PathBuf::new(),
            game: game.into(),
            seq,
            why: e.to_string(),
        })?;
        line.clear();
        serde_json::to_writer(&mut line, &ev).map_err(std::io::Error::other)?;
        match format {
            Format::Jsonl => {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            Format::Csv => {
                let clock = ev.clock_ms.map(|c| c.to_string()).unwrap_or_default();
                let json = String::from_utf8_lossy(&line).replace('"', "\"\"");
                writeln!(
                    out,
                    "{},{},{},{clock},{},{},\"{json}\"",
                    ev.game,
                    ev.seq,
                    ev.ts,
                    ev.sport(),
                    ev.body.kind()
                )?;
            }
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress(n, total);
        }
    }
    progress(n, total);
    Ok(Some(n))
}

/// What a backup or verification found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub games: u64,
    pub events: u64,
}

/// Copies the log as of one read snapshot into a new redb file at `to` (written to a
/// temporary name, then renamed): consistent while the server keeps writing. Values are copied
/// as stored: an encrypted log's backup is encrypted under the same keys, marker included.
pub fn backup(db: &Database, to: &Path, progress: &mut ProgressFn<'_>) -> Result<Summary, StoreError> {
    // `to` plus a suffix (not its extension replaced): two backups to different files never
    // share a temporary name.
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let src = db.begin_read()?;
    let (src_events, src_games) = (src.open_table(EVENTS)?, src.open_table(GAMES)?);
    let total = src_events.len()?;
    let dst = Database::create(&tmp).map_err(|source| StoreError::Open { path: tmp.clone(), source })?;
    let mut summary = Summary::default();
    let txn = dst.begin_write()?;
    {
        let mut games = txn.open_table(GAMES)?;
        for item in src_games.iter()? {
            let (k, v) = item?;
            games.insert(k.value(), v.value())?;
            summary.games += 1;
        }
        let mut meta = txn.open_table(META)?;
        for item in src.open_table(META)?.iter()? {
            let (k, v) = item?;
            meta.insert(k.value(), v.value())?;
        }
        let mut ratings = txn.open_table(RATINGS)?;
        for item in src.open_table(RATINGS)?.iter()? {
            let (k, v) = item?;
            ratings.insert(k.value(), v.value())?;
        }
        let mut events = txn.open_table(EVENTS)?;
        for item in src_events.iter()? {
            let (k, v) = item?;
            events.insert(k.value(), v.value())?;
            summary.events += 1;
            if summary.events.is_multiple_of(16_384) {
                progress(summary.events, total);
            }
        }
    }
    txn.commit()?;
    drop(dst);
    std::fs::rename(&tmp, to)?;
    progress(summary.events, total);
    Ok(summary)
}

/// Checks that every game's metadata agrees with its events (count and highest seq).
pub fn verify(db: &Database, seal: &Seal) -> Result<Summary, String> {
    let check = || -> Result<Summary, StoreError> {
        check_seal(db, seal, false)?;
        let txn = db.begin_read()?;
        let (games, events) = (txn.open_table(GAMES)?, txn.open_table(EVENTS)?);
        let mut summary = Summary::default();
        for item in games.iter()? {
            let (k, v) = item?;
            let game = k.value();
            let meta =
                GameMeta::parse(game, &open_value(seal, Path::new(""), (T_GAMES, game, 0), v.value())?)?;
            let (mut count, mut high) = (0u64, 0u64);
            for e in events.range((game, 0)..=(game, u64::MAX))? {
                high = e?.0.value().1;
                count += 1;
            }
            if count != meta.events || high != meta.high {
                return Err(StoreError::Inconsistent(format!(
                    "game {game}: metadata says {} events up to seq {}, the log holds {count} up to {high}",
                    meta.events, meta.high
                )));
            }
            summary.games += 1;
            summary.events += count;
        }
        if summary.events != events.len()? {
            return Err(StoreError::Inconsistent("events of games without metadata".into()));
        }
        Ok(summary)
    };
    check().map_err(|e| e.to_string())
}

/// Installs the backup `from` as the log of `data_dir` after verifying it. Refuses to
/// overwrite an existing log unless `force` (which keeps the old one as `.before-restore`).
pub fn restore(from: &Path, data_dir: &Path, force: bool, seal: &Seal) -> Result<Summary, String> {
    let summary = {
        let db = open_db(from).map_err(|e| format!("backup {}: {e}", from.display()))?;
        verify(&db, seal).map_err(|e| format!("backup {} is inconsistent: {e}", from.display()))?
    };
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let target = data_dir.join(FILE_NAME);
    if target.exists() {
        if !force {
            return Err(format!(
                "{} exists; pass --force to replace it (it is kept as .before-restore)",
                target.display()
            ));
        }
        // Fails with a clear message while a server holds the file.
        drop(open_db(&target).map_err(|e| e.to_string())?);
        let keep = target.with_extension("redb.before-restore");
        std::fs::rename(&target, &keep).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    let tmp = target.with_extension("restoring");
    std::fs::copy(from, &tmp).map_err(|e| format!("copying to {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(summary)
}

/// Shrinks the file of a log no server is using. Returns (bytes before, bytes after).
pub fn compact(data_dir: &Path) -> Result<(u64, u64), String> {
    let path = data_dir.join(FILE_NAME);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    let mut db = open_db(&path).map_err(|e| e.to_string())?;
    db.compact().map_err(|e| format!("compacting {}: {e}", path.display()))?;
    drop(db);
    Ok((before, size(&path)))
}
