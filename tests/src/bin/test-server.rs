//! The server as a child process for the crash tests: `test-server CONFIG.toml`. Same library
//! entry as `opensports serve`; prints `ready` on stdout once it serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| anyhow::anyhow!("usage: test-server CONFIG.toml"))?;
    let config = opensports_server::Config::load(std::path::Path::new(&path))?;
    let listeners = opensports_server::Listeners::bind(&config)?;
    let running = match opensports_server::start(config, listeners).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    println!("ready {}", running.fingerprint);
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}
