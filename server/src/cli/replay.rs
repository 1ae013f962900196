//! `opensports replay FILE`: a real provider feed published over QUIC with its source timing.

use std::path::Path;

use anyhow::Context;
use opensports_client::Publisher;

use super::progress::Progress;
use crate::feeds::{self, Feed, Format};
use crate::sim::{self, Speed};

/// Reads and converts a feed file, printing what it found (and what it could not map).
pub fn load(file: &Path, format: Option<&str>, opts: &feeds::Options<'_>) -> anyhow::Result<Feed> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let stem = file.file_stem().and_then(|s| s.to_str());
    let opts = &feeds::Options { file_stem: stem, ..*opts };
    let format: Format = match format {
        Some(f) => f.parse()?,
        None => feeds::detect(&bytes).with_context(|| file.display().to_string())?,
    };
    let feed = match (format, siblings(file)) {
        (Format::F1LiveTiming, sib) if !sib.is_empty() => {
            let mut topics = vec![(feeds::f1::Topic::TimingData, bytes.as_slice())];
            topics.extend(sib.iter().map(|(t, b, _)| (*t, b.as_slice())));
            for (_, _, path) in &sib {
                eprintln!("  with {}", path.display());
            }
            feeds::f1::session(&topics, opts)
        }
        _ => feeds::parse(format, &bytes, opts),
    }
    .with_context(|| file.display().to_string())?;
    eprintln!("{}: game {}, {} events", file.display(), feed.game.id, feed.game.events.len());
    for (kind, n) in &feed.unknown {
        eprintln!("  not in our schema, not sent: {kind} x{n}");
    }
    for (_, why) in &feed.skipped {
        eprintln!("  skipped: {why}");
    }
    Ok(feed)
}

/// The other live-timing topics captured beside a `..._timing_data.raw` file.
fn siblings(file: &Path) -> Vec<(feeds::f1::Topic, Vec<u8>, std::path::PathBuf)> {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(prefix) = name.strip_suffix("_timing_data.raw") else { return Vec::new() };
    feeds::f1::Topic::SIBLINGS
        .iter()
        .filter_map(|(suffix, topic)| {
            let path = file.with_file_name(format!("{prefix}{suffix}"));
            std::fs::read(&path).ok().map(|b| (*topic, b, path))
        })
        .collect()
}

/// Publishes the feed's events paced by their source time (`speed`), with a progress bar and
/// a summary line.
pub async fn publish(publisher: &mut Publisher, feed: &Feed, speed: Speed) -> anyhow::Result<()> {
    let mut progress = Progress::new("replay");
    let games = std::slice::from_ref(&feed.game);
    sim::publish(publisher, games, speed, |done, total| progress.update(done, total)).await?;
    publisher.flush(std::time::Duration::from_secs(30)).await?;
    let unknown: usize = feed.unknown.values().sum();
    progress.finish(&format!(
        "{}: {} events published and acked, {unknown} source records not in our schema, {} skipped",
        feed.game.id,
        feed.game.events.len(),
        feed.skipped.len()
    ));
    Ok(())
}
