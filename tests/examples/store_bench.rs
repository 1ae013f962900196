//! Durable log benchmark: group-commit throughput and ack latency of the real writer on a real
//! redb file, then the restart-to-serving time (RTO) of a full server over that log.
//!
//! `cargo run --release -p opensports-tests --example store_bench -- [EVENTS] [PACED_RATE] [LIVE_GAMES]`
//! (defaults 1,000,000 events, 50,000 events/s for the paced run, 16 games live at a time).
//!
//! 1. Saturated: one thread appends every event as fast as the bounded queue takes them;
//!    reports events/s until the last ack, and ack latency (append → ack, which is queue wait +
//!    batch window + commit with fsync).
//! 2. Paced at PACED_RATE on an open-loop schedule: ack latency at a realistic load.
//! 3. RTO: `opensports_server::start` on the same data dir, which replays every live game's
//!    events through the shards before it opens its listeners.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_sink::Sink;
use hdrhistogram::Histogram;
use opensports_proto::{Event, Sport};
use opensports_server::config::StoreConfig;
use opensports_server::sim;
use opensports_server::store::{AckSink, Append, Queued, Store};

mod bench_sink {
    use super::*;

    /// Counts acks and samples their latency (every 64th seq, to keep the writer's thread busy
    /// with the log rather than with the benchmark).
    #[derive(Debug)]
    pub struct Sink {
        pub started: Instant,
        pub sent_at_us: Vec<AtomicU64>,
        pub acked: AtomicU64,
        pub hist: std::sync::Mutex<Histogram<u64>>,
    }

    impl AckSink for Sink {
        fn ack(&self, _game: &str, _seq: u64) {
            // One FIFO writer: the k-th ack answers the k-th append.
            let k = self.acked.fetch_add(1, Ordering::Relaxed);
            if k.is_multiple_of(64)
                && let Some(sent) = self.sent_at_us.get(k as usize)
            {
                let now = self.started.elapsed().as_micros() as u64;
                let lat = now.saturating_sub(sent.load(Ordering::Relaxed)).max(1);
                if let Ok(mut h) = self.hist.lock() {
                    h.saturating_record(lat);
                }
            }
        }
    }
}

/// `total` events of simulated basketball games, `live` games at a time interleaved event by
/// event (as at a busy edge), every game kept live (no `game_end`), so a restart replays all.
fn events(total: usize, live: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(total);
    let mut seed = 0;
    while out.len() < total {
        let group: Vec<Vec<Event>> = (0..live)
            .map(|_| {
                seed += 1;
                sim::generate(Sport::Basketball, seed, 0).events.into_iter().map(|t| t.event).collect()
            })
            .collect();
        let longest = group.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..longest {
            for g in &group {
                if let Some(e) = g.get(i)
                    && out.len() < total
                    && !matches!(
                        e.body,
                        opensports_proto::Body::Basketball(opensports_proto::basketball::Event::GameEnd)
                    )
                {
                    out.push(e.clone());
                }
            }
        }
    }
    out
}

/// Appends `evs` (archived once up front), pacing at `rate` events/s when given. Returns the
/// sink once every event is acked.
fn run(
    store: &Store,
    evs: &[(String, u64, Arc<rkyv::util::AlignedVec>)],
    rate: Option<f64>,
) -> (Arc<Sink>, Duration) {
    let sink = Arc::new(Sink {
        started: Instant::now(),
        sent_at_us: (0..=evs.len()).map(|_| AtomicU64::new(0)).collect(),
        acked: AtomicU64::new(0),
        hist: std::sync::Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")),
    });
    let ack: Arc<dyn AckSink> = sink.clone();
    for (i, (game, seq, bytes)) in evs.iter().enumerate() {
        let pos = i as u64;
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(i as f64 / rate);
            while sink.started.elapsed() < due {
                std::hint::spin_loop();
            }
            sink.sent_at_us[pos as usize].store(due.as_micros() as u64, Ordering::Relaxed);
        } else {
            sink.sent_at_us[pos as usize].store(sink.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        while store
            .try_append(Append { game, seq: *seq, sport: "basketball", bytes, owner: None }, &ack)
            .expect("writer running")
            == Queued::Full
        {
            std::thread::yield_now();
        }
    }
    while sink.acked.load(Ordering::Relaxed) < evs.len() as u64 {
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = sink.started.elapsed();
    (sink, took)
}

fn report(label: &str, n: usize, took: Duration, sink: &Sink) {
    let h = sink.hist.lock().expect("hist");
    println!(
        "{label:<10} {n} events in {:.2} s = {:>9.0} events/s | ack latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let paced: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50_000.0);
    let live: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(16);
    let dir = tempfile::tempdir()?;
    println!(
        "machine: {} cores; log in {}",
        std::thread::available_parallelism()?.get(),
        dir.path().display()
    );

    let evs = events(total, live);
    let archived: Vec<(String, u64, Arc<rkyv::util::AlignedVec>)> = evs
        .iter()
        .map(|e| Ok((e.game.clone(), e.seq, Arc::new(rkyv::to_bytes::<rkyv::rancor::Error>(e)?))))
        .collect::<Result<_, rkyv::rancor::Error>>()?;
    let bytes: usize = archived.iter().map(|a| a.2.len()).sum();
    println!(
        "{} events of {live} live games at a time, {:.0} bytes each on average",
        archived.len(),
        bytes as f64 / archived.len() as f64
    );

    let cfg = StoreConfig::default();
    let store = Store::open(&cfg, dir.path())?;
    let (sink, took) = run(&store, &archived, None);
    report("saturated", archived.len(), took, &sink);
    store.shutdown();
    drop(store);

    let paced_dir = tempfile::tempdir()?;
    let store = Store::open(&cfg, paced_dir.path())?;
    let n = (paced as usize * 5).min(archived.len());
    let (sink, took) = run(&store, &archived[..n], Some(paced));
    report(&format!("{paced:.0}/s"), n, took, &sink);
    store.shutdown();
    drop(store);
    drop(paced_dir);

    // RTO: a full server on the first log; every game is live, so all of it is replayed.
    let size = std::fs::metadata(dir.path().join(opensports_server::store::FILE_NAME))?.len();
    let mut config = opensports_server::Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    config.ingest.tokens = vec!["bench-token".into()];
    config.models.dir = opensports_tests::workspace().join("models");
    let started = Instant::now();
    let running = opensports_server::start(config, opensports_server::Listeners::loopback()?).await?;
    let rto = started.elapsed();
    println!(
        "restart   {} events ({:.0} MiB log) replayed, serving after {:.2} s (RTO)",
        archived.len(),
        size as f64 / (1 << 20) as f64,
        rto.as_secs_f64()
    );
    running.shutdown().await;
    Ok(())
}
