//! The load test's report: latency percentiles merged across subscribers, counts, and the
//! process's CPU time and RSS from /proc.

use hdrhistogram::Histogram;

use super::{Kind, SubResult};

/// Microseconds, 1 µs to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// CPU seconds used by this process since a point, and its peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    cpu_secs: f64,
    wall: std::time::Instant,
}

#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub percent: f64,
    pub rss_peak_mib: f64,
}

impl Cpu {
    pub fn now() -> Cpu {
        Cpu { cpu_secs: cpu_secs(), wall: std::time::Instant::now() }
    }

    pub fn since(self) -> CpuUse {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        CpuUse { percent: (cpu_secs() - self.cpu_secs) / wall * 100.0, rss_peak_mib: rss_peak_mib() }
    }
}

/// utime + stime of this process (fields 14 and 15 of /proc/self/stat), in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // `rest` starts at field 3 (state, not numeric, filtered out): utime is field 14.
    let ticks = f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0);
    ticks / 100.0
}

fn rss_peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
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
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        preset: &str,
        rate: f64,
        subscribers: usize,
        sent: u64,
        acked: u64,
        publish_secs: f64,
        results: &[SubResult],
        cpu: CpuUse,
    ) -> Report {
        let mut hist = histogram();
        for r in results {
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
        }
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
            "process CPU {:.0}% (server and load generator), RSS peak {:.0} MiB",
            self.cpu.percent, self.cpu.rss_peak_mib
        );
    }

    /// `p50 x0.93, p99 x1.40, ...`: this report over `base`.
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
        })
        .to_string()
    }
}
