//! `--preset soak`: memory over a long run. The server (its own process, every shipped plugin
//! and model loaded, the durable log on) gets simulated games of all four sports one after
//! another at `--rate` (200 events/s) through one publisher, while `--subscribers` (50) read
//! `game/#`: every tenth reads slowly (one message per 20 ms: it lags and resyncs), every
//! tenth plus one drops its connection every 10 s and resumes with `since`. Ended games leave
//! memory after the pipeline's TTL, 60 s here (600 by default), so memory reaches its steady
//! state after two TTLs.
//!
//! Every 10 s it prints the server's RSS, open fds and threads, the plugin history gauges and
//! the plugin instances' linear memory;
//! at the end the RSS slope (MiB/min, least squares) over the samples after the warm-up (the
//! first `WARMUP_SECS`), which is what a leak shows as.
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --preset soak --seconds 3600
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opensports_client::{Publisher, PublisherConfig, Subscriber, Trust};
use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};

use super::Plan;
use super::process::{self, Server};

/// Samples before this are the warm-up (games filling up to the TTL's steady state).
pub const WARMUP_SECS: f64 = 150.0;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub async fn run(plan: &Plan) -> anyhow::Result<()> {
    let server = process::spawn(Server::Ours, plan).await?;
    let (quic, http, fp) = (server.quic, server.http, server.fingerprint.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let ws = format!("ws://{http}/ws");
    let mut tasks = Vec::new();
    for i in 0..plan.subs {
        let (ws, stop, received) = (ws.clone(), stop.clone(), received.clone());
        tasks.push(tokio::spawn(async move { subscriber(i, &ws, &stop, &received).await }));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (stop, sent, rate) = (stop.clone(), sent.clone(), plan.rate);
        tokio::spawn(async move {
            publish(PublisherConfig::new(quic, Trust::Fingerprint(fp), "loadtest"), rate, &stop, &sent).await
        })
    };

    let started = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    println!(
        "soak: {} ev/s, {} subscribers, {:.0} s (RSS slope after {WARMUP_SECS:.0} s)",
        plan.rate, plan.subs, plan.seconds
    );
    println!(
        "{:>7} {:>9} {:>5} {:>8} {:>10} {:>10} {:>12}",
        "t (s)", "RSS MiB", "fds", "threads", "history", "held", "sent"
    );
    while started.elapsed().as_secs_f64() < plan.seconds {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let t = started.elapsed().as_secs_f64();
        let rss = status_kib(server.pid(), "VmRSS:") as f64 / 1024.0;
        let threads = status_kib(server.pid(), "Threads:");
        let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map(|d| d.count()).unwrap_or(0);
        let metrics = server.metrics().await.unwrap_or_default();
        let gauge = |name: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name) && !l.starts_with(&format!("{name}_")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let (history, held) =
            (gauge("opensports_plugin_history_events"), gauge("opensports_plugin_history_held_events"));
        println!(
            "{t:>7.0} {rss:>9.1} {fds:>5} {threads:>8} {history:>10.0} {held:>10.0} {:>12}",
            sent.load(Ordering::Relaxed)
        );
        samples.push((t, rss));
    }
    stop.store(true, Ordering::Relaxed);
    let sent = publishing.await??;
    for t in tasks {
        let _ = t.await;
    }
    let after: Vec<(f64, f64)> = samples.iter().copied().filter(|(t, _)| *t >= WARMUP_SECS).collect();
    match slope(&after) {
        Some(per_sec) => println!(
            "soak: RSS slope after warm-up {:+.3} MiB/min over {} samples ({:.1} → {:.1} MiB); {sent} events sent, {} publications received",
            per_sec * 60.0,
            after.len(),
            after.first().map_or(0.0, |s| s.1),
            after.last().map_or(0.0, |s| s.1),
            received.load(Ordering::Relaxed)
        ),
        None => println!("soak: too short for a slope (run past {WARMUP_SECS:.0} s)"),
    }
    Ok(())
}

/// Simulated games of the four sports in turn, each from start to end, paced at `rate`.
async fn publish(
    cfg: PublisherConfig,
    rate: f64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> anyhow::Result<u64> {
    let mut publisher = Publisher::connect(cfg).await?;
    let sports = [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1];
    let started = Instant::now();
    let mut n = 0u64;
    for seed in 1u64.. {
        let sport = sports[seed as usize % sports.len()];
        let game = opensports_server::sim::generate(sport, 10_000 + seed, super::now_us());
        for timed in game.events {
            if stop.load(Ordering::Relaxed) {
                publisher.flush(Duration::from_secs(30)).await?;
                return Ok(n);
            }
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            publisher.send(&timed.event).await?;
            n += 1;
            sent.store(n, Ordering::Relaxed);
        }
    }
    Ok(n)
}

/// One subscriber of `game/#`: slow (i % 10 == 0), reconnecting every 10 s (i % 10 == 1), or
/// reading as fast as it can.
async fn subscriber(i: usize, ws: &str, stop: &AtomicBool, received: &AtomicU64) {
    let Ok(mut sub) = Subscriber::connect(ws).await else { return };
    if sub.subscribe_and_wait(&["game/#"], Mode::All).await.is_err() {
        return;
    }
    let mut last_reconnect = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match sub.next_timeout(Duration::from_millis(500)).await {
            Ok(Some(ServerMsg::Msg(_))) => {
                received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                if sub.reconnect(Duration::from_secs(10)).await.is_err() {
                    return;
                }
            }
        }
        if i.is_multiple_of(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i % 10 == 1 && last_reconnect.elapsed() >= Duration::from_secs(10) {
            last_reconnect = Instant::now();
            if sub.reconnect(Duration::from_secs(10)).await.is_err() {
                return;
            }
        }
    }
}

/// A `/proc/{pid}/status` field's number (kB for memory fields).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Least-squares slope of `(t, y)` (per unit of t).
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mt, my) = points.iter().fold((0.0, 0.0), |(a, b), (t, y)| (a + t / n, b + y / n));
    let num: f64 = points.iter().map(|(t, y)| (t - mt) * (y - my)).sum();
    let den: f64 = points.iter().map(|(t, _)| (t - mt) * (t - mt)).sum();
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 3.0 + 0.5 * t as f64)).collect();
        assert!((super::slope(&pts).unwrap() - 0.5).abs() < 1e-9);
        assert!(super::slope(&pts[..2]).is_none());
    }
}
