//! The load test's report: latency percentiles merged across subscribers, counts, and the
//! process's CPU time and RSS from /proc.

use hdrhistogram::Histogram;

use super::{Kind, Outcome};

/// Microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// CPU seconds used by this process since a point, and its peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pid: Option<u32>,
    cpu_secs: f64,
    wall: std::time::Instant,
}

#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub percent: f64,
    /// CPU seconds used over the span.
    pub secs: f64,
    pub rss_peak_mib: f64,
}

impl Cpu {
    /// This process.
    pub fn now() -> Cpu {
        Cpu { pid: None, cpu_secs: cpu_secs(None), wall: std::time::Instant::now() }
    }

    /// Another process (a baseline server this load test started).
    pub fn of(pid: u32) -> Cpu {
        Cpu { pid: Some(pid), cpu_secs: cpu_secs(Some(pid)), wall: std::time::Instant::now() }
    }

    pub fn since(self) -> CpuUse {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let secs = cpu_secs(self.pid) - self.cpu_secs;
        CpuUse { percent: secs / wall * 100.0, secs, rss_peak_mib: rss_peak_mib(self.pid) }
    }
}

fn proc_file(pid: Option<u32>, name: &str) -> String {
    let path = match pid {
        Some(p) => format!("/proc/{p}/{name}"),
        None => format!("/proc/self/{name}"),
    };
    std::fs::read_to_string(path).unwrap_or_default()
}

/// utime + stime of a process (fields 14 and 15 of /proc/PID/stat), in seconds.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let stat = proc_file(pid, "stat");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // `rest` starts at field 3 (state, not numeric, filtered out): utime is field 14.
    let ticks = f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0);
    ticks / 100.0
}

fn rss_peak_mib(pid: Option<u32>) -> f64 {
    let status = proc_file(pid, "status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

pub struct Report {
    preset: String,
    rate: f64,
    subscribers: usize,
    sent: u64,
    acked: u64,
    delivered: u64,
    expected: u64,
    lagged: u64,
    publish_secs: f64,
    hist: Histogram<u64>,
    cpu: CpuUse,
    /// CPU and RSS of the server process (every target runs in its own).
    server: CpuUse,
}

impl Report {
    /// `cpu` is the load generator's, `server` the server process's.
    pub fn new(
        preset: &str,
        rate: f64,
        subscribers: usize,
        out: &Outcome,
        cpu: CpuUse,
        server: CpuUse,
    ) -> Report {
        let Outcome { sent, acked, publish_secs, ref results, .. } = *out;
        let mut hist = histogram();
        // Slow consumers are the disturbance, not the measurement.
        for r in results.iter().filter(|r| r.kind != Kind::Slow) {
            let _ = hist.add(&r.hist);
        }
        let all = results.iter().filter(|r| r.kind == Kind::AllGames);
        Report {
            preset: preset.into(),
            rate,
            subscribers,
            sent,
            acked,
            delivered: all.clone().map(|r| r.received).sum(),
            expected: all.count() as u64 * sent,
            lagged: results.iter().map(|r| r.lagged).sum(),
            publish_secs,
            hist,
            cpu,
            server,
        }
    }

    /// Latency (µs, intended send -> receipt) merged over the measured subscribers.
    pub fn hist(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// One table cell: latency, delivery, and the server process's CPU and RSS; with `per_1k`,
    /// also the server's CPU ms per 1,000 deliveries (what fanout is judged on).
    pub fn cell(&self, per_1k: bool) -> String {
        let pct = if self.expected > 0 { self.delivered as f64 * 100.0 / self.expected as f64 } else { 0.0 };
        let (p50, p99) = self.p50_p99();
        let mut c = cell(p50, p99, pct, self.server.percent, self.server.rss_peak_mib);
        if per_1k && self.delivered > 0 {
            c += &format!(", {:.3} CPU ms / 1k deliveries", self.server.secs * 1e6 / self.delivered as f64);
        }
        if self.lagged > 0 {
            c += &format!(", {} lagged", self.lagged);
        }
        c
    }

    /// p50 and p99 in ms.
    /// The server process's CPU and peak RSS over the run.
    pub fn server(&self) -> CpuUse {
        self.server
    }

    pub fn p50_p99(&self) -> (f64, f64) {
        (self.ms(0.5), self.ms(0.99))
    }

    fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn print(&self) {
        println!("preset {}: {} ev/s, {} subscribers", self.preset, self.rate, self.subscribers);
        println!("sent {} acked {} in {:.1} s", self.sent, self.acked, self.publish_secs);
        println!("delivered (all-mode) {} of {}   lagged {}", self.delivered, self.expected, self.lagged);
        println!("| p50 | p90 | p99 | p99.9 | max | (ms, intended send -> receipt)");
        println!(
            "| {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            self.ms(0.5),
            self.ms(0.9),
            self.ms(0.99),
            self.ms(0.999),
            self.hist.max() as f64 / 1000.0
        );
        println!(
            "server process CPU {:.0}%, RSS peak {:.0} MiB; load generator CPU {:.0}%, RSS peak {:.0} MiB",
            self.server.percent, self.server.rss_peak_mib, self.cpu.percent, self.cpu.rss_peak_mib
        );
    }

    /// `p50 x0.93, p99 x1.40, ...`: this report over `base`.
    /// `ratios` and the server's CPU seconds beside `base`'s: one variant of a preset against
    /// the same preset in the same sitting.
    pub fn versus(&self, base: &Report) -> String {
        let (a, b) = (self.server(), base.server());
        format!(
            "{}; server CPU x{:.2} ({:.1} / {:.1} s)",
            self.ratios(base),
            a.secs / b.secs.max(1e-9),
            a.secs,
            b.secs
        )
    }

    pub fn ratios(&self, base: &Report) -> String {
        let r = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "-".into() };
        format!(
            "p50 x{}, p99 x{}, p99.9 x{}, max x{}, delivered {} vs {}",
            r(self.ms(0.5), base.ms(0.5)),
            r(self.ms(0.99), base.ms(0.99)),
            r(self.ms(0.999), base.ms(0.999)),
            r(self.hist.max() as f64, base.hist.max() as f64),
            self.delivered,
            base.delivered
        )
    }

    pub fn json(&self) -> String {
        serde_json::json!({
            "preset": self.preset, "rate": self.rate, "subscribers": self.subscribers,
            "sent": self.sent, "acked": self.acked, "delivered": self.delivered, "expected": self.expected,
            "lagged": self.lagged,
            "latency_ms": {"p50": self.ms(0.5), "p90": self.ms(0.9), "p99": self.ms(0.99), "p999": self.ms(0.999),
                           "max": self.hist.max() as f64 / 1000.0},
            "cpu_percent": self.cpu.percent, "rss_peak_mib": self.cpu.rss_peak_mib,
            "server_process": {"cpu_percent": self.server.percent, "rss_peak_mib": self.server.rss_peak_mib},
        })
        .to_string()
    }
}

/// A table cell of any target's figures: latency (ms), delivered %, server CPU % and RSS (MiB).
pub fn cell(p50: f64, p99: f64, delivered_pct: f64, cpu_pct: f64, rss_mib: f64) -> String {
    format!("p50 {p50:.3} / p99 {p99:.3} ms, {delivered_pct:.1}%, CPU {cpu_pct:.0}%, {rss_mib:.0} MiB")
}

/// `(count, p50, p99)` in ms of a server histogram in Prometheus text, its buckets summed over
/// the label sets that contain `label` (all when empty); each quantile is the upper bound of
/// its bucket.
fn quantiles(prometheus: &str, metric: &str, label: &str) -> Option<(u64, f64, f64)> {
    // Cumulative bucket counts per upper bound.
    let mut buckets: std::collections::BTreeMap<u64, u64> = Default::default();
    let prefix = format!("{metric}_bucket{{");
    for line in prometheus.lines().filter(|l| l.starts_with(&prefix) && l.contains(label)) {
        let le = line.split("le=\"").nth(1)?.split('"').next()?;
        let count: u64 = line.rsplit(' ').next()?.parse().ok()?;
        let le_ns = if le == "+Inf" { u64::MAX } else { (le.parse::<f64>().ok()? * 1e9) as u64 };
        *buckets.entry(le_ns).or_default() += count;
    }
    let total = *buckets.get(&u64::MAX)?;
    if total == 0 {
        return None;
    }
    let at = |q: f64| {
        let want = (q * total as f64).ceil() as u64;
        let le = buckets.iter().find(|(_, c)| **c >= want).map_or(u64::MAX, |(le, _)| *le);
        if le == u64::MAX { f64::INFINITY } else { le as f64 / 1e6 }
    };
    Some((total, at(0.5), at(0.99)))
}

/// One line of a stage or hop table: `(what, count, p50 ms, p99 ms)`.
pub type Line = (&'static str, u64, f64, f64);

/// The server's stage histograms (Prometheus text from its `/metrics`).
pub fn stages(prometheus: &str) -> Vec<Line> {
    const STAGES: [(&str, &str); 6] = [
        ("ingest -> shard (queue)", "opensports_pipeline_queue_seconds"),
        ("plugin call", "opensports_plugin_call_seconds"),
        ("model inference", "opensports_model_infer_seconds"),
        ("ingest -> published", "opensports_pipeline_latency_seconds"),
        ("published -> socket flushed", "opensports_fanout_delivery_seconds"),
        ("delay line: due -> released", "opensports_delay_release_lateness_seconds"),
    ];
    STAGES
        .iter()
        .filter_map(|&(label, metric)| quantiles(prometheus, metric, "").map(|(n, a, b)| (label, n, a, b)))
        .collect()
}

/// The cluster path's own stages on the ingesting node: its log commit (which replication
/// waits for) and, on the receiving node, JetStream stored -> applied.
pub fn cluster_stages(ingesting: &str, receiving: &str) -> Vec<Line> {
    let mut out = Vec::new();
    if let Some((n, a, b)) = quantiles(ingesting, "opensports_store_commit_seconds", "") {
        out.push(("A: log commit (fsync)", n, a, b));
    }
    if let Some((n, a, b)) = quantiles(ingesting, "opensports_pipeline_latency_seconds", "") {
        out.push(("A: ingest -> published", n, a, b));
    }
    if let Some((n, a, b)) = quantiles(receiving, "opensports_pipeline_latency_seconds", "") {
        out.push(("B: applied -> published", n, a, b));
    }
    out
}

pub fn print_stages(stages: &[Line]) {
    println!("server stages (bucket upper bounds, ms):");
    for (stage, n, p50, p99) in stages {
        println!("  {stage:<28} n {n:>9}  p50 <= {p50:<7}  p99 <= {p99}");
    }
}

/// Every hop of the path on one clock (the wall clock this machine's processes share): the age
/// of an event, since its intended send time, when the publisher's write returned (load
/// generator), when the server read it, its shard took it, it was published and flushed to a
/// WebSocket (`opensports_event_age_seconds`, bucket bounds, warm-up included), and at the
/// subscriber (`receipt`). Cumulative: each hop's cost is its step from the line before.
pub fn hops(written: &Histogram<u64>, prometheus: &str, receipt: &Histogram<u64>) -> Vec<Line> {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let local = |what, h: &Histogram<u64>| (!h.is_empty()).then(|| (what, h.len(), ms(h, 0.5), ms(h, 0.99)));
    const SERVER: [(&str, &str); 4] = [
        ("server read it off QUIC", "stage=\"read\""),
        ("its shard took it", "stage=\"shard\""),
        ("published to its topic", "stage=\"published\""),
        ("flushed to a WebSocket", "stage=\"flushed\""),
    ];
    let mut lines: Vec<Line> = local("publisher's write returned", written).into_iter().collect();
    lines.extend(SERVER.iter().filter_map(|&(what, label)| {
        quantiles(prometheus, "opensports_event_age_seconds", label).map(|(n, a, b)| (what, n, a, b))
    }));
    lines.extend(local("subscriber received it", receipt));
    lines
}

pub fn print_hops(hops: &[Line]) {
    println!("hops: age since the intended send, ms (server lines are bucket upper bounds)");
    for (hop, n, p50, p99) in hops {
        println!("  {hop:<28} n {n:>9}  p50 {p50:<7}  p99 {p99}");
    }
}
