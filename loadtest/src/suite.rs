//! `--suite`: the Performance tables of loadtest/README.md from one command in one sitting.

use std::fmt::Write as _;
use std::path::Path;

use crate::anchor::Anchor;
use crate::report::{self, Line, Report};

/// What the suite runs, in order.
pub const PRESETS: [&str; 4] = ["light", "relay", "fanout", "full"];

/// One preset's results.
pub struct Row {
    pub preset: String,
    pub ours: Report,
    pub hops: Vec<Line>,
    pub baselines: Vec<(String, Report)>,
    pub anchors: Vec<Anchor>,
}

/// Prints the table and writes it to `target/loadtest/performance.md`.
pub fn write(workspace: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let text = markdown(rows);
    println!("\n{text}");
    let path = workspace.join("target/loadtest/performance.md");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, &text)?;
    println!("written: {}", path.display());
    Ok(())
}

fn markdown(rows: &[Row]) -> String {
    let mut t = String::new();
    let host = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?.split(':').nth(1).map(str::trim).map(String::from)
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        t,
        "Measured {} on {cores} cores ({host}), one sitting, `cargo run --release -p opensports-loadtest -- --suite`.\n",
        date()
    );
    let _ = writeln!(
        t,
        "| preset | OpenSports | loadtest floor | loadtest NATS | anchor floor | anchor NATS | ours / anchor floor |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    let relay_p99 = rows.iter().find(|r| r.preset == "relay").map(|r| r.ours.p50_p99().1);
    for r in rows {
        let fanout = r.preset == "fanout";
        let base = |name: &str| {
            let Some((_, b)) = r.baselines.iter().find(|(n, _)| n == name) else { return "—".to_string() };
            let mut c = b.cell(fanout);
            if let Some(a) = r.anchors.iter().find(|a| a.which == name) {
                let (p50, p99) = b.p50_p99();
                c += if a.calibrates(p50, p99) { " (calibrated)" } else { " (**uncalibrated**)" };
            }
            c
        };
        let anchor = |name: &str| {
            r.anchors.iter().find(|a| a.which == name).map_or("—".to_string(), |a| {
                report::cell(a.p50_ms, a.p99_ms, a.delivered_pct, a.server_cpu_pct, a.server_rss_mib)
            })
        };
        let (p50, p99) = r.ours.p50_p99();
        let ratio = match (r.anchors.iter().find(|a| a.which == "floor"), relay_p99) {
            (Some(a), _) => format!("p50 x{:.2}, p99 x{:.2}", p50 / a.p50_ms, p99 / a.p99_ms),
            (None, Some(relay)) if r.preset == "full" => format!("p99 x{:.2} of ours at relay", p99 / relay),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {ratio} |",
            r.preset,
            r.ours.cell(fanout),
            base("floor"),
            base("nats"),
            anchor("floor"),
            anchor("nats")
        );
    }
    let _ = writeln!(
        t,
        "\nHops of OpenSports (event age since its intended send, p50 / p99 ms; server lines are histogram bucket bounds):\n"
    );
    let _ = writeln!(
        t,
        "| preset | {} |",
        rows.first().map_or(String::new(), |r| r.hops.iter().map(|h| h.0).collect::<Vec<_>>().join(" | "))
    );
    let _ = writeln!(t, "|---|{}", rows.first().map_or(String::new(), |r| "---|".repeat(r.hops.len())));
    for r in rows {
        let cells: Vec<String> = r.hops.iter().map(|(_, _, p50, p99)| format!("{p50} / {p99}")).collect();
        let _ = writeln!(t, "| {} | {} |", r.preset, cells.join(" | "));
    }
    t
}

/// Today's date (UTC), from the system clock.
fn date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil(secs as i64 / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_counts_become_civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(11_016), (2000, 2, 29));
        assert_eq!(super::civil(20_788), (2026, 12, 1));
    }
}
