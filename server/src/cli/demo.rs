//! `opensports demo`: the server on defaults with four simulated live games, one per sport,
//! started again with new seeds as they end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opensports_client::{Publisher, PublisherConfig, Trust};
use opensports_proto::Sport;

use crate::sim::{self, Speed};
use crate::{Config, Listeners};

/// Builds the shipped plugins from the source tree (when the binary runs from it) so the demo
/// shows their outputs too. Without a toolchain the demo runs without plugins.
async fn shipped_plugins() -> Vec<crate::config::PluginEntry> {
    let Some(ws) = super::plugin::source_workspace() else { return Vec::new() };
    let names = super::plugin::shipped(&ws);
    eprintln!("building {} plugins for wasm32 (first run takes a minute)…", names.len());
    match tokio::task::spawn_blocking(move || super::plugin::build(&ws, &names, None, true)).await {
        Ok(Ok(files)) => files.into_iter().map(crate::config::PluginEntry::new).collect(),
        Ok(Err(e)) => {
            eprintln!("plugins not built ({e:#}); the demo runs without them");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// Runs until Ctrl-C.
/// With `replay`, a real feed file (see `opensports replay`) is published instead of the
/// simulated games, round after round under fresh game ids.
pub async fn run(
    mut config: Config,
    speed: Speed,
    seed: u64,
    replay: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let feed = replay.map(|p| super::replay::load(p, None, &Default::default())).transpose()?;
    if config.plugins.load.is_empty() {
        config.plugins.load = shipped_plugins().await;
    }
    let listeners = Listeners::bind(&config)?;
    let token = config.ingest.tokens.first().cloned().unwrap_or_default();
    let running = crate::start(config, listeners).await?;
    let http = super::display_addr(running.http_addr);
    let quic = super::display_addr(running.quic_addr);
    println!("OpenSports Edge demo: four simulated live games (basketball, football, soccer, F1)\n");
    println!("  dashboard   http://{http}/");
    println!("  games       http://{http}/v1/games");
    println!("  WebSocket   ws://{http}/ws");
    println!("  metrics     http://{http}/metrics");
    println!("  plugins     http://{http}/v1/plugins");
    println!("  QUIC        {quic}  (certificate sha256 {})\n", running.fingerprint);
    println!("Watch the feed in another terminal:");
    println!("  cargo run --release -- watch 'game/+/state' --url ws://{http}/ws");
    println!("\nCtrl-C stops the demo.");

    let mut cfg = PublisherConfig::new(quic, Trust::Fingerprint(running.fingerprint.clone()), token);
    cfg.name = "opensports-demo-sim".into();
    let sim = tokio::spawn(async move {
        let mut publisher = Publisher::connect(cfg).await?;
        for round in 0u64.. {
            let start_ts =
                SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
            let games: Vec<_> = match &feed {
                Some(f) => {
                    let mut g = f.game.clone();
                    g.id = format!("{}-{round}", g.id);
                    for t in &mut g.events {
                        t.event.game.clone_from(&g.id);
                    }
                    vec![g]
                }
                None => Sport::ALL.iter().map(|s| sim::generate(*s, seed + round, start_ts)).collect(),
            };
            sim::publish(&mut publisher, &games, speed, |_, _| {}).await?;
            tracing::info!(round, "simulated games ended; starting new ones");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        anyhow::Ok(())
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        r = sim => match r {
            Ok(Err(e)) => eprintln!("simulator stopped: {e}"),
            Err(e) => eprintln!("simulator task failed: {e}"),
            Ok(Ok(())) => {}
        },
    }
    println!("\nshutting down…");
    running.shutdown().await;
    Ok(())
}
