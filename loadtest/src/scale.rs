//! `--preset scale`: how many idle subscribers one node holds, and what a broadcast to all of
//! them costs. `--subscribers N` (default 100,000) WebSocket subscribers of one game's `state`
//! connect and subscribe, spread over loopback source addresses (`127.1.x.y`, 100 each) so the
//! server's per-address limits (`auth.max_ws_per_address`, 256) hold as they would for real
//! clients; then `--sse M` (default 10,000) Server-Sent-Event streams of the same topic, on a
//! fresh server. For each transport it reports:
//!
//! - memory per idle subscriber: the server process's RSS growth / subscribers;
//! - the time to accept and subscribe all of them (512 connecting at once);
//! - five broadcasts of one event to all: send → each subscriber's receipt, p50 / p99 / max.
//!
//! The server runs in its own process as a pure relay (durable log on). The open-files limit
//! is raised for both processes (needs root, or a hard limit above 2 × N already).
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --preset scale                       # 100k WS, 10k SSE
//! cargo run --release -p opensports-loadtest -- --preset scale --subscribers 20000 --sse 2000
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use opensports_client::{Publisher, PublisherConfig, Trust};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use super::process::{self, Server, ServerProcess};
use super::{Plan, now_us, report, scan};

/// Subscribers per loopback source address (under the default per-address limits: 256 streams,
/// 128 HTTP connections including upgrades in progress).
const PER_ADDRESS: usize = 100;
/// Connections being set up at once.
const CONNECTING: usize = 512;
/// Broadcasts measured per transport.
const ROUNDS: u64 = 5;
const GAME: &str = "scale-0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Ws,
    Sse,
}

/// What one transport's run measured.
struct Measured {
    subscribers: usize,
    rss_idle_mib: f64,
    rss_subscribed_mib: f64,
    subscribe_secs: f64,
    /// Per broadcast: (p50, p99, max) in ms and how many received it.
    rounds: Vec<(f64, f64, f64, usize)>,
}

pub async fn run(plan: &Plan, sse: usize) -> anyhow::Result<()> {
    let ws = plan.subs;
    // Each process holds one descriptor per subscriber (the server its side, this one its own).
    raise_open_files(ws.max(sse) as u64 + 2048)?;
    let mut out = Vec::new();
    for (transport, n) in [(Transport::Ws, ws), (Transport::Sse, sse)] {
        if n == 0 {
            continue;
        }
        let plan = Plan { subs: n, ..plan.clone() };
        let m = measure(&plan, transport).await?;
        print(transport, &m);
        out.push((transport, m));
    }
    Ok(())
}

fn print(transport: Transport, m: &Measured) {
    let name = match transport {
        Transport::Ws => "WebSocket subscribers",
        Transport::Sse => "SSE streams",
    };
    let per_kib = (m.rss_subscribed_mib - m.rss_idle_mib) * 1024.0 / m.subscribers as f64;
    println!("\nscale: {} {name} of one game's state on one node", m.subscribers);
    println!(
        "  server RSS {:.0} MiB idle -> {:.0} MiB with them: {per_kib:.1} KiB per idle subscriber",
        m.rss_idle_mib, m.rss_subscribed_mib
    );
    println!(
        "  accepted and subscribed in {:.1} s ({:.0}/s, {CONNECTING} at once)",
        m.subscribe_secs,
        m.subscribers as f64 / m.subscribe_secs
    );
    for (k, (p50, p99, max, got)) in m.rounds.iter().enumerate() {
        println!(
            "  broadcast {}: send -> received by {got} of {}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
            k + 1,
            m.subscribers
        );
    }
    let mut p99s: Vec<f64> = m.rounds.iter().map(|r| r.1).collect();
    p99s.sort_by(f64::total_cmp);
    if let Some(median) = p99s.get(p99s.len() / 2) {
        println!("  median broadcast p99 {median:.1} ms");
    }
}

async fn measure(plan: &Plan, transport: Transport) -> anyhow::Result<Measured> {
    let server = process::spawn(Server::Ours, plan).await?;
    let mut publisher = publisher(&server).await?;
    // The game exists before anyone subscribes; its first state is history, not measured.
    let mut seq = 1;
    publisher.send(&super::event(GAME, seq, now_us())).await?;
    publisher.flush(Duration::from_secs(30)).await?;
    let rss_idle_mib = rss_mib(server.pid());

    let measure_from = Arc::new(AtomicU64::new(u64::MAX));
    let received: Arc<Vec<AtomicUsize>> = Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
    let started = Instant::now();
    let subscribed = Arc::new(tokio::sync::Semaphore::new(CONNECTING));
    let mut readers = Vec::with_capacity(plan.subs);
    for i in 0..plan.subs {
        let permit = subscribed.clone().acquire_owned().await?;
        let (http, measure_from, received) = (server.http, measure_from.clone(), received.clone());
        readers.push(tokio::spawn(async move {
            let mut sub = Sub::connect(transport, source(i), http).await?;
            drop(permit);
            let mut lat = Vec::with_capacity(ROUNDS as usize);
            while (lat.len() as u64) < ROUNDS {
                let Some(text) = sub.next(Duration::from_secs(60)).await? else { break };
                scan::scan(&text, |seen| {
                    if let scan::Seen::Msg(ts) = seen
                        && ts as u64 >= measure_from.load(Ordering::Relaxed)
                    {
                        let round = lat.len();
                        lat.push((now_us() - ts).max(1) as u64);
                        if let Some(r) = received.get(round) {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
            // Kept open until every broadcast is measured: closing now would load the others'.
            anyhow::Ok((lat, sub))
        }));
    }
    // Every permit back: every subscriber connected and subscribed (or failed).
    let _all = subscribed.acquire_many(CONNECTING as u32).await?;
    let subscribe_secs = started.elapsed().as_secs_f64();
    let rss_subscribed_mib = rss_mib(server.pid());
    let failed = readers.iter().filter(|r| r.is_finished()).count();
    if let Some(first) = readers.iter_mut().find(|r| r.is_finished()) {
        let why = match first.await {
            Ok(Err(e)) => format!("{e:#}"),
            other => format!("{:?}", other.map(|_| ())),
        };
        anyhow::bail!("{failed} of {} subscribers failed; the first: {why}", plan.subs);
    }

    measure_from.store(now_us() as u64, Ordering::Relaxed);
    for round in 0..ROUNDS as usize {
        seq += 1;
        publisher.send(&super::event(GAME, seq, now_us())).await?;
        // The next broadcast once everyone has this one (or 30 s passed).
        let deadline = Instant::now() + Duration::from_secs(30);
        while received[round].load(Ordering::Relaxed) < plan.subs && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut hists: Vec<Histogram<u64>> = (0..ROUNDS).map(|_| report::histogram()).collect();
    let mut open = Vec::with_capacity(readers.len());
    for r in readers {
        let (lat, sub) = r.await??;
        for (k, us) in lat.into_iter().enumerate() {
            hists[k].saturating_record(us);
        }
        open.push(sub);
    }
    drop(open);
    publisher.close(Duration::from_secs(5)).await?;
    let ms = |us: u64| us as f64 / 1000.0;
    let rounds = hists
        .iter()
        .map(|h| (ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.99)), ms(h.max()), h.len() as usize))
        .collect();
    Ok(Measured { subscribers: plan.subs, rss_idle_mib, rss_subscribed_mib, subscribe_secs, rounds })
}

async fn publisher(server: &ServerProcess) -> anyhow::Result<Publisher> {
    let cfg = PublisherConfig::new(server.quic, Trust::Fingerprint(server.fingerprint.clone()), "loadtest");
    Ok(Publisher::connect(cfg).await?)
}

/// Subscriber `i`'s source address: `127.1.x.y`, [`PER_ADDRESS`] per address.
fn source(i: usize) -> IpAddr {
    let a = i / PER_ADDRESS;
    IpAddr::V4(Ipv4Addr::new(127, 1, (a / 250) as u8, (a % 250 + 1) as u8))
}

/// One idle subscriber of the game's state, either transport.
enum Sub {
    Ws(Box<scan::RawSub>),
    Sse(BufReader<TcpStream>, String),
}

impl Sub {
    async fn connect(transport: Transport, from: IpAddr, http: SocketAddr) -> anyhow::Result<Sub> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut tcp = socket.connect(http).await?;
        let topic = format!("game/{GAME}/state");
        match transport {
            Transport::Ws => {
                let url = format!("ws://{http}/ws");
                Ok(Sub::Ws(Box::new(scan::RawSub::connect_on(tcp, &url, &topic, 4096).await?)))
            }
            Transport::Sse => {
                let req = format!("GET /v1/sse?topics={topic}&mode=all HTTP/1.1\r\nHost: {http}\r\n\r\n");
                tcp.write_all(req.as_bytes()).await?;
                let mut r = BufReader::with_capacity(4096, tcp);
                let mut line = String::new();
                r.read_line(&mut line).await?;
                anyhow::ensure!(line.starts_with("HTTP/1.1 200"), "GET /v1/sse: {line}");
                // The headers: the stream is subscribed once they are sent.
                while line != "\r\n" && !line.is_empty() {
                    line.clear();
                    r.read_line(&mut line).await?;
                }
                Ok(Sub::Sse(r, String::new()))
            }
        }
    }

    /// The next text: a WebSocket frame, or an SSE `data:` line (chunked framing skipped).
    async fn next(&mut self, idle: Duration) -> anyhow::Result<Option<String>> {
        match self {
            Sub::Ws(ws) => Ok(ws.next_frame(idle).await?.map(|t| t.to_string())),
            Sub::Sse(r, line) => loop {
                line.clear();
                match tokio::time::timeout(idle, r.read_line(line)).await {
                    Err(_) | Ok(Ok(0)) => return Ok(None),
                    Ok(n) => {
                        n?;
                    }
                }
                if let Some(data) = line.strip_prefix("data: ") {
                    return Ok(Some(data.to_string()));
                }
            },
        }
    }
}

/// The server process's resident memory now (VmRSS), MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Raises this process's open-files limit (soft, and hard when allowed) to at least `n`; the
/// server process inherits it.
fn raise_open_files(n: u64) -> anyhow::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_none_or(|c| c >= n) {
        return Ok(());
    }
    let hard = now.maximum.map_or(n, |m| m.max(n));
    if setrlimit(Resource::Nofile, Rlimit { current: Some(n), maximum: Some(hard) }).is_ok() {
        return Ok(());
    }
    // Raising the hard limit needs CAP_SYS_RESOURCE; up to it needs nothing.
    let hard = now.maximum.unwrap_or(n);
    anyhow::bail!(
        "{n} open files needed, and this machine's hard limit is {hard} (raising it needs root with \
         CAP_SYS_RESOURCE, or `ulimit -Hn` / LimitNOFILE set before the run): measure at most \
         --subscribers {} and --sse {} here",
        hard.saturating_sub(2048),
        hard.saturating_sub(2048)
    )
}
