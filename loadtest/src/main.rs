//! `opensports-loadtest`: an open-loop load generator against a real server on loopback.
//!
//! N QUIC publishers send basketball events at a constant aggregate rate: event i is due at
//! `start + i / rate`; a late event is sent at once but keeps its intended time in `ts`, so the
//! latency measured at the subscribers (receipt − intended send time) includes coordinated
//! omission. M WebSocket subscribers take a topic mix: most subscribe `game/+/state` in `all`
//! mode (these must receive every publication), every fifth the same pattern in `latest` mode,
//! every seventh one game's topic. Events sent during the warm-up are not in the histogram.
//!
//! The server runs in this process (`opensports_server::start` on 127.0.0.1, a temporary data
//! dir, the durable log on), so CPU% and RSS below are server and load generator together.
//! `--baseline floor` runs the same scenario against a naive relay (`floor.rs`) in the same run
//! and prints ours / floor ratios. Not built yet (issue 7): the NATS baseline, the `burst` and
//! `slow-consumers` presets, per-stage latencies, the plot.
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --preset light
//! cargo run -p opensports-loadtest -- --preset smoke --check   # CI: delivered == sent, no timings
//! ```

mod floor;
mod report;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use opensports_client::{Publisher, PublisherConfig, Subscriber, Trust};
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_proto::{Body, Event, Side, basketball as bk};

#[derive(Parser, Debug)]
#[command(
    name = "opensports-loadtest",
    about = "Open-loop load test: QUIC publishers -> server -> WebSocket subscribers"
)]
struct Args {
    /// smoke (CI), light (1k ev/s, 10 subscribers), relay (20k ev/s, 100), fanout (5k ev/s, 1,000).
    #[arg(long, default_value = "light", value_parser = ["smoke", "light", "relay", "fanout"])]
    preset: String,
    /// Override the preset's aggregate publish rate (events/s).
    #[arg(long)]
    rate: Option<f64>,
    /// Override the preset's subscriber count.
    #[arg(long)]
    subscribers: Option<usize>,
    /// Measured seconds (after the warm-up).
    #[arg(long)]
    seconds: Option<f64>,
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Print the report as one JSON line at the end too.
    #[arg(long)]
    json: bool,
    /// Exit non-zero unless every `all`-mode subscriber received every publication.
    #[arg(long)]
    check: bool,
    /// Also run the same scenario against a baseline and print the ratios: `floor` is a naive
    /// QUIC -> broadcast -> WebSocket relay with no processing. (NATS: not built yet.)
    #[arg(long, default_value = "none", value_parser = ["none", "floor"])]
    baseline: String,
}

/// Where a scenario runs.
struct Target {
    quic: std::net::SocketAddr,
    http: std::net::SocketAddr,
    fingerprint: String,
}

/// What one scenario produced.
struct Outcome {
    sent: u64,
    acked: u64,
    publish_secs: f64,
    results: Vec<SubResult>,
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A shot event of about 200 bytes of JSON.
fn event(game: &str, seq: u64, ts: i64) -> Event {
    let side = if seq.is_multiple_of(2) { Side::Home } else { Side::Away };
    let body = Body::Basketball(bk::Event::Shot {
        side,
        player: format!("player-{:04}", seq % 13),
        x: 20.0 + (seq % 50) as f32,
        y: 10.0 + (seq % 30) as f32,
        points: 2,
        made: seq.is_multiple_of(3),
    });
    Event { v: opensports_proto::SCHEMA_VERSION, game: game.into(), seq, ts, clock_ms: Some(600_000), body }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    AllGames,
    Latest,
    OneGame,
}

struct SubResult {
    kind: Kind,
    hist: Histogram<u64>,
    received: u64,
    lagged: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (rate, subs, secs) = match args.preset.as_str() {
        "smoke" => (500.0, 4, 2.0),
        "light" => (1_000.0, 10, 10.0),
        "relay" => (20_000.0, 100, 10.0),
        _ => (5_000.0, 1_000, 10.0),
    };
    let rate = args.rate.unwrap_or(rate);
    let subs = args.subscribers.unwrap_or(subs);
    let secs = args.seconds.unwrap_or(secs);
    let total_secs = args.warmup + secs;
    let per_pub = ((rate * total_secs) as u64 / args.publishers as u64).max(1);

    let dir = tempfile::tempdir()?;
    let mut config = opensports_server::Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.ingest.tokens = vec!["loadtest".into()];
    config.fanout.max_connections = config.fanout.max_connections.max(subs + 16);
    let server = opensports_server::start(config, opensports_server::Listeners::loopback()?).await?;
    let target =
        Target { quic: server.quic_addr, http: server.http_addr, fingerprint: server.fingerprint.clone() };
    let cpu0 = report::Cpu::now();
    let Outcome { sent, acked, publish_secs, results } =
        scenario(&target, &args, rate, subs, per_pub).await?;
    let cpu = cpu0.since();
    server.shutdown().await;

    let rep = report::Report::new(&args.preset, rate, subs, sent, acked, publish_secs, &results, cpu);
    rep.print();
    if args.json {
        println!("{}", rep.json());
    }
    if args.baseline == "floor" {
        let floor_dir = tempfile::tempdir()?;
        let floor = floor::start(floor_dir.path()).await?;
        let target =
            Target { quic: floor.quic_addr, http: floor.http_addr, fingerprint: floor.fingerprint.clone() };
        let cpu0 = report::Cpu::now();
        let base = scenario(&target, &args, rate, subs, per_pub).await?;
        let cpu = cpu0.since();
        drop(floor);
        let b = report::Report::new(
            "floor",
            rate,
            subs,
            base.sent,
            base.acked,
            base.publish_secs,
            &base.results,
            cpu,
        );
        println!("\nbaseline: naive QUIC -> broadcast -> WebSocket relay, same machine, same run");
        b.print();
        println!("ratio ours / floor: {}", rep.ratios(&b));
        if args.json {
            println!("{}", b.json());
        }
    }
    if args.check {
        let all: Vec<&SubResult> = results.iter().filter(|r| r.kind == Kind::AllGames).collect();
        let short: Vec<u64> = all.iter().filter(|r| r.received != sent).map(|r| r.received).collect();
        anyhow::ensure!(acked == sent, "acked {acked} of {sent}");
        anyhow::ensure!(short.is_empty(), "{} all-mode subscribers short of {sent}: {short:?}", short.len());
        println!("check: {} all-mode subscribers received all {sent} publications", all.len());
    }
    Ok(())
}

/// One run: subscribers connect and subscribe, publishers send on the open-loop schedule, and
/// every reader finishes (all expected messages, or 5 s idle).
async fn scenario(
    target: &Target,
    args: &Args,
    rate: f64,
    subs: usize,
    per_pub: u64,
) -> anyhow::Result<Outcome> {
    let ws = format!("ws://{}/ws", target.http);
    // Subscribers first, so they see every publication.
    let received = Arc::new(AtomicU64::new(0));
    let started_us = now_us();
    let measure_from = started_us + (args.warmup * 1e6) as i64;
    let expected_per_all = per_pub * args.publishers as u64;
    let mut readers = Vec::new();
    for i in 0..subs {
        let kind = if i % 7 == 6 {
            Kind::OneGame
        } else if i % 5 == 4 {
            Kind::Latest
        } else {
            Kind::AllGames
        };
        let mut sub = Subscriber::connect(&ws).await?;
        let (pattern, mode) = match kind {
            Kind::AllGames => ("game/+/state", Mode::All),
            Kind::Latest => ("game/+/state", Mode::Latest),
            Kind::OneGame => ("game/lt-0/state", Mode::All),
        };
        sub.subscribe_and_wait(&[pattern], mode).await?;
        let expected = if kind == Kind::OneGame { per_pub } else { expected_per_all };
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            let mut r = SubResult { kind, hist: report::histogram(), received: 0, lagged: 0 };
            let idle = Duration::from_secs(5);
            while r.received + r.lagged < expected {
                match sub.next_timeout(idle).await {
                    Ok(Some(ServerMsg::Msg(p))) | Ok(Some(ServerMsg::Snapshot(p))) => {
                        r.received += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                        if p.ts >= measure_from {
                            r.hist.saturating_record((now_us() - p.ts).max(1) as u64);
                        }
                    }
                    Ok(Some(ServerMsg::Lagged { dropped })) => r.lagged += dropped,
                    Ok(Some(_)) => {}
                    // Latest-mode subscribers see fewer messages by design: idle means done.
                    Ok(None) | Err(_) => break,
                }
            }
            r
        }));
    }

    // Publishers: open loop.
    let start = tokio::time::Instant::now();
    let start_us = now_us();
    let mut writers = Vec::new();
    for p in 0..args.publishers {
        let mut cfg =
            PublisherConfig::new(target.quic, Trust::Fingerprint(target.fingerprint.clone()), "loadtest");
        cfg.codec = opensports_proto::codec::Codec::Json;
        let publishers = args.publishers;
        let interval = publishers as f64 / rate;
        writers.push(tokio::spawn(async move {
            let mut publisher = Publisher::connect(cfg).await?;
            let game = format!("lt-{p}");
            for i in 0..per_pub {
                let offset = (i as f64 + p as f64 / publishers as f64) * interval;
                let due = start + Duration::from_secs_f64(offset);
                if due > tokio::time::Instant::now() + Duration::from_micros(500) {
                    tokio::time::sleep_until(due).await;
                }
                let intended = start_us + (offset * 1e6) as i64;
                publisher.send(&event(&game, i + 1, intended)).await?;
            }
            publisher.flush(Duration::from_secs(60)).await?;
            let acked = publisher.acked(&game);
            publisher.close(Duration::from_secs(5)).await?;
            anyhow::Ok(acked)
        }));
    }
    let mut acked = 0;
    for w in writers {
        acked += w.await??;
    }
    let sent = per_pub * args.publishers as u64;
    let publish_secs = start.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await?);
    }
    Ok(Outcome { sent, acked, publish_secs, results })
}
