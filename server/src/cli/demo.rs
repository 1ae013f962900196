//! `opensports demo`: the server on defaults with four simulated live games, one per sport,
//! started again with new seeds as they end. Plugins and models are the ones built into the
//! binary (`builtin`) unless the config names others: no toolchain or source tree needed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opensports_client::{Publisher, PublisherConfig, Trust};
use opensports_proto::Sport;

use crate::sim::{self, Speed};
use crate::{Config, Listeners};

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
    // The built-in simulator publishes with the data dir's demo token (one identity across
    // runs, so it still owns the games it created before a restart); anyone may read (the
    // dashboard needs no key) unless the config says otherwise.
    let token = demo_token(&config.server.data_dir)?;
    config.ingest.tokens.push(token.clone());
    if config.auth.public_topics.is_empty() {
        config.auth.public_topics = vec!["#".into()];
    }
    let listeners = Listeners::bind(&config)?;
    let running = crate::start(config, listeners).await?;
    let admin_key = first_admin_key(&running.auth)?;
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
    println!("  cargo run --release -- watch 'game/+/state' --url http://{http}");
    if let Some(key) = admin_key {
        println!("\nAdmin API key (shown once; plugin upload, model roles, backup, export, keys):");
        println!("  {key}");
        println!("  e.g. curl -H 'Authorization: Bearer {key}' http://{http}/v1/keys");
    }
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

/// The demo simulator's token: random on a data dir's first demo, kept in `demo.token`
/// (owner-only) so later demos are the same publisher identity (a game belongs to the
/// identity that created it).
fn demo_token(data_dir: &std::path::Path) -> anyhow::Result<String> {
    use ring::rand::SecureRandom as _;
    let path = data_dir.join("demo.token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() >= 32
    {
        return Ok(t.trim().to_string());
    }
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, token.as_bytes())?;
    Ok(token)
}

/// The live (unrevoked) admin keys a demo created on this data dir: `serve` warns about
/// each, since the demo printed it to a terminal.
pub fn live_demo_keys(auth: &crate::auth::Auth) -> Vec<String> {
    auth.keys()
        .list()
        .into_iter()
        .filter(|k| k.name == DEMO_ADMIN && k.revoked_ms.is_none())
        .map(|k| k.id)
        .collect()
}

/// The name of the admin key a demo creates.
const DEMO_ADMIN: &str = "demo-admin";

/// On the data dir's first demo (no admin key yet), creates one to print once.
fn first_admin_key(auth: &crate::auth::Auth) -> anyhow::Result<Option<String>> {
    if auth.keys().list().iter().any(|k| k.role == crate::auth::Role::Admin && k.revoked_ms.is_none()) {
        return Ok(None);
    }
    let new = crate::auth::NewKey { name: DEMO_ADMIN.into(), role: crate::auth::Role::Admin, scopes: vec![] };
    Ok(Some(auth.create_key(new, "demo", None)?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_makes_one_admin_key_on_a_data_dirs_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::AuthConfig::default();
        let auth = crate::auth::Auth::open(&cfg, dir.path(), &[]).unwrap();
        let key = first_admin_key(&auth).unwrap().expect("a key on the first run");
        assert!(auth.bearer(&key).unwrap().is_admin());
        assert_eq!(first_admin_key(&auth).unwrap(), None, "printed once: none on later runs");
        assert_eq!(live_demo_keys(&auth).len(), 1, "serve names it");
        let token = demo_token(dir.path()).unwrap();
        assert_eq!(demo_token(dir.path()).unwrap(), token, "one demo identity per data dir");
        assert_eq!(token.len(), 48);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(demo_token(other.path()).unwrap(), token, "random per data dir");
    }
}
