//! `--restart N[,N...]`: how long a restart takes with N events in the log. For each N it
//! writes a log of N events (20 live basketball games, through the server's own `Store`, so
//! the file is what a server would have written, with no snapshots), starts the server on it
//! in its own process (the defaults a `serve` runs with: built-in plugins and models, state
//! snapshots every 2000 events of a game), which replays every game whole and snapshots them
//! as it goes, kills it (`kill -9`) a second after it serves, and starts it again: that start
//! restores the snapshots and replays only the events after them. For both starts it reports
//! the time from spawn to serving, and the server's own `opensports_store_recovery_seconds`,
//! `opensports_store_recovered_events` and `opensports_store_recovered_snapshots`.
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --restart 100000,1000000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use opensports_server::store::{AckSink, Append, Queued, Store};

use super::Plan;
use super::process::{self, Server};

const GAMES: u64 = 20;

#[derive(Debug, Default)]
struct Count(AtomicU64);

impl AckSink for Count {
    fn ack(&self, _game: &str, _seq: u64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn run(plan: &Plan, sizes: &[u64]) -> anyhow::Result<()> {
    println!(
        "{:>10} {:>10} {:>16} {:>14} {:>14} {:>10} {:>10}",
        "events", "log MiB", "start", "to serving s", "recovery s", "replayed", "snapshots"
    );
    for &n in sizes {
        let dir = tempfile::tempdir()?;
        let log_mib = tokio::task::spawn_blocking({
            let path = dir.path().to_path_buf();
            move || write_log(&path, n)
        })
        .await??;
        for start in ["full replay", "from snapshots"] {
            let started = Instant::now();
            let server = process::spawn_in(Server::Ours, plan, None, dir.path()).await?;
            let serving = started.elapsed().as_secs_f64();
            let metrics = server.metrics().await?;
            let num = |name: &str| opensports_tests::parse_metric(&metrics, name);
            println!(
                "{n:>10} {log_mib:>10.1} {start:>16} {serving:>14.2} {:>14.2} {:>10} {:>10}",
                num("opensports_store_recovery_seconds"),
                num("opensports_store_recovered_events"),
                num("opensports_store_recovered_snapshots"),
            );
            // The snapshots the replay took reach the log within a commit or two.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            drop(server);
        }
    }
    Ok(())
}

/// Writes `n` events over [`GAMES`] live games; returns the log's size in MiB.
fn write_log(dir: &std::path::Path, n: u64) -> anyhow::Result<f64> {
    let store = Store::open(&opensports_server::config::StoreConfig::default(), dir)?;
    let acks = Arc::new(Count::default());
    let sink: Arc<dyn AckSink> = acks.clone();
    let ts0 = super::now_us();
    let mut progress = opensports_server::cli::progress::Progress::new("writing the log");
    for i in 0..n {
        let (g, seq) = (i % GAMES, i / GAMES + 1);
        let game = format!("restart-{g}");
        let event = super::event(&game, seq, ts0 + i as i64 * 1_000);
        let bytes = Arc::new(rkyv::to_bytes::<rkyv::rancor::Error>(&event)?);
        let append = Append { game: &game, seq, sport: "basketball", bytes: &bytes, owner: None };
        while store.try_append(append, &sink)? == Queued::Full {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        progress.update(i as usize + 1, n as usize);
    }
    store.shutdown();
    progress.finish(&format!("{n} events"));
    anyhow::ensure!(
        acks.0.load(Ordering::Relaxed) == n,
        "the log took {} of {n}",
        acks.0.load(Ordering::Relaxed)
    );
    let bytes = std::fs::metadata(store.path())?.len();
    Ok(bytes as f64 / (1 << 20) as f64)
}
