//! `--calibrate`: runs `../shared/anchor-bench` (an independent reference harness: a minimal
//! quinn → broadcast → tokio-tungstenite relay and nats-server, each with its own generator)
//! for the same rate, subscribers and seconds, in the same invocation, and checks the load
//! test's own baselines against it. A baseline more than [`TOLERANCE`]× off the anchor's p50 or
//! p99 is marked uncalibrated: its ratios say more about this harness than about the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

/// How far (either way) a baseline may be from the anchor's figure and still count.
pub const TOLERANCE: f64 = 1.5;

/// One anchor run's figures.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub which: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub delivered_pct: f64,
    pub server_cpu_pct: f64,
    pub server_rss_mib: f64,
}

/// The anchor harness: `$OPENSPORTS_ANCHOR`, else `../shared/anchor-bench` beside the workspace.
pub fn dir(workspace: &Path) -> PathBuf {
    std::env::var_os("OPENSPORTS_ANCHOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("../shared/anchor-bench"))
}

/// Runs `run.sh which rate subs secs` (building the harness into the workspace's target dir
/// the first time) and reads its JSON line.
pub fn run(
    anchor: &Path,
    workspace: &Path,
    which: &'static str,
    rate: f64,
    subs: usize,
    secs: f64,
) -> anyhow::Result<Anchor> {
    let script = anchor.join("run.sh");
    anyhow::ensure!(script.exists(), "no anchor harness at {} (set OPENSPORTS_ANCHOR)", anchor.display());
    let out = Command::new("bash")
        .arg(&script)
        .args([
            which.to_string(),
            format!("{}", rate.round() as u64),
            subs.to_string(),
            format!("{}", secs.round().max(1.0) as u64),
        ])
        .env("ANCHOR_BENCH_TARGET", workspace.join("target/anchor-bench"))
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).with_context(|| {
        format!(
            "anchor {which} printed no result (exit {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    parse(which, line)
}

fn parse(which: &'static str, line: &str) -> anyhow::Result<Anchor> {
    let v: serde_json::Value = serde_json::from_str(line).context("anchor result is not JSON")?;
    let num = |k: &str| v[k].as_f64().or_else(|| v[k].as_str()?.parse().ok()).unwrap_or(f64::NAN);
    Ok(Anchor {
        which,
        p50_ms: num("p50_us") / 1000.0,
        p99_ms: num("p99_us") / 1000.0,
        delivered_pct: num("delivered_pct"),
        server_cpu_pct: num("server_cpu_pct"),
        server_rss_mib: num("server_hwm_kb") / 1024.0,
    })
}

impl Anchor {
    pub fn print(&self) {
        println!(
            "anchor {}: p50 {:.3} ms, p99 {:.3} ms, delivered {:.1}%, server CPU {:.0}%, RSS peak {:.0} MiB",
            self.which,
            self.p50_ms,
            self.p99_ms,
            self.delivered_pct,
            self.server_cpu_pct,
            self.server_rss_mib
        );
    }

    /// Whether a baseline's p50 and p99 are both within [`TOLERANCE`] of this anchor's.
    pub fn calibrates(&self, p50_ms: f64, p99_ms: f64) -> bool {
        let near = |a: f64, b: f64| a > 0.0 && b > 0.0 && (a / b).max(b / a) <= TOLERANCE;
        near(p50_ms, self.p50_ms) && near(p99_ms, self.p99_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_harness_line_and_judges_within_one_and_a_half() {
        let line = r#"{"label":"floor","rate":1000,"p50_us":354,"p99_us":581,"delivered_pct":100.000,"server_cpu_pct":"7.1","server_hwm_kb":33792}"#;
        let a = parse("floor", line).unwrap();
        assert_eq!((a.p50_ms, a.p99_ms, a.server_rss_mib), (0.354, 0.581, 33.0));
        assert!((a.server_cpu_pct - 7.1).abs() < 1e-9);
        assert!(a.calibrates(0.5, 0.8));
        assert!(!a.calibrates(0.54, 0.8), "p50 1.53x off");
        assert!(!a.calibrates(0.35, 0.38), "p99 1.53x under");
    }
}
