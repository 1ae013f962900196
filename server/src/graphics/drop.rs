//! The file-drop output, for graphics engines that watch files instead of polling HTTP: every
//! game in memory as `{dir}/{game}.json`, `.xml` and `.csv`, rewritten when its document
//! changes. Each file is written whole to `.{name}.tmp` beside it and renamed over it, so a
//! reader opens either the old document or the new one, never a half-written file (rename is
//! atomic within a directory on POSIX file systems).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Document, Encoding, Graphics};
use crate::fanout::Fanout;
use crate::pipeline::directory::GameDirectory;

/// How often documents are checked for changes.
pub const EVERY: Duration = Duration::from_millis(100);

/// Writes the documents of every game in memory into `dir` until `shutdown` flips. A game that
/// leaves memory leaves its last files behind (its final score).
pub async fn run(
    dir: PathBuf,
    graphics: Arc<Graphics>,
    fanout: Arc<Fanout>,
    games: Arc<GameDirectory>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut written: HashMap<String, String> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let changed: Vec<(String, Document)> = games
            .list()
            .into_iter()
            .filter_map(|(game, sport)| {
                let doc = Document::read(&fanout, &game, graphics.fields(sport), 0);
                let etag = doc.etag();
                (written.get(&game) != Some(&etag)).then(|| {
                    written.insert(game.clone(), etag);
                    (game, doc)
                })
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        let to = dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            for (game, doc) in &changed {
                for enc in Encoding::ALL {
                    write_atomically(
                        &to,
                        &format!("{game}.{}", enc.extension()),
                        enc.encode(doc).as_bytes(),
                    )?;
                }
            }
            Ok::<_, std::io::Error>(changed.len())
        })
        .await;
        match result {
            Ok(Ok(n)) => {
                metrics::counter!(crate::metrics::GRAPHICS_FILES_WRITTEN_TOTAL).increment(n as u64 * 3)
            }
            Ok(Err(e)) => {
                // Try every game again next time.
                written.clear();
                tracing::warn!(dir = %dir.display(), error = %e, "graphics file drop failed");
            }
            Err(e) => tracing::error!(error = %e, "graphics file drop panicked"),
        }
    }
}

/// `bytes` as `dir/name`, written to a temporary file beside it and renamed over it.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}
