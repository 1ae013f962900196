//! The latency-percentile plot: one line per run (ours and each baseline), latency on a log
//! scale against the percentile spread as HdrHistogram plots it (x = log10(1 / (1 - q)), so
//! 90%, 99%, 99.9% are evenly spaced and the tail is readable). SVG, by plotters.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Decades of the percentile axis: up to 99.999%.
const DECADES: f64 = 5.0;
const COLORS: [RGBColor; 5] =
    [RGBColor(214, 39, 40), RGBColor(31, 119, 180), RGBColor(44, 160, 44), BLACK, MAGENTA];

/// Writes the plot of `runs` (label, histogram in µs) to `path`.
pub fn write(path: &Path, title: &str, runs: &[(String, &Histogram<u64>)]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let lines: Vec<(&str, Vec<(f64, f64)>)> =
        runs.iter().filter(|(_, h)| !h.is_empty()).map(|(l, h)| (l.as_str(), points(h))).collect();
    anyhow::ensure!(!lines.is_empty(), "nothing to plot: no latency was recorded");
    let all = lines.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (lo, hi) = ((lo * 0.8).max(0.001), (hi * 1.25).max(lo * 2.0));
    let decades = lines.iter().filter_map(|(_, p)| p.last()).fold(1f64, |d, &(x, _)| d.max(x.ceil()));

    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(64)
        // log10(ms) on a linear axis: plotters' log scale labels only whole decades.
        .build_cartesian_2d(0f64..decades, lo.log10()..hi.log10())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, ms (intended send -> receipt)")
        .x_labels(decades as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_labels(12)
        .y_label_formatter(&|y| significant(10f64.powf(*y)))
        .draw()
        .map_err(plot_err)?;
    for (i, (label, pts)) in lines.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts.into_iter().map(|(x, y)| (x, y.log10())), color.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// (log10(1 / (1 - q)), latency in ms) for q from 0 up to the histogram's resolution.
fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    // No point beyond the quantile one sample resolves.
    let top = (h.len() as f64).log10().min(DECADES);
    (0..=(top * 40.0) as usize)
        .map(|k| {
            let x = k as f64 / 40.0;
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q).max(1) as f64 / 1000.0)
        })
        .collect()
}

/// 0 -> "0%", 1 -> "90%", 2 -> "99%", 3 -> "99.9%".
fn percentile_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as usize).saturating_sub(2);
    format!("{q:.digits$}%")
}

/// Two significant digits: 0.034, 0.56, 7.8, 120, 63000.
fn significant(v: f64) -> String {
    let magnitude = v.log10().floor();
    let digits = (1.0 - magnitude).max(0.0) as usize;
    let step = 10f64.powf(magnitude - 1.0);
    format!("{:.digits$}", (v / step).round() * step)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_points_follow_the_percentile_axis() {
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(
            (
                significant(0.0342),
                significant(0.56),
                significant(7.81),
                significant(123.0),
                significant(63096.0)
            ),
            ("0.034".into(), "0.56".into(), "7.8".into(), "120".into(), "63000".into())
        );
        let mut h = crate::report::histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let p = points(&h);
        // 10,000 samples resolve 4 decades; latency never falls as the percentile rises.
        assert_eq!(p.last().map(|&(x, _)| x), Some(4.0));
        assert!(p.windows(2).all(|w| w[0].1 <= w[1].1));
        let at = |x: f64| p.iter().find(|&&(px, _)| (px - x).abs() < 1e-9).map(|&(_, y)| y);
        assert!((at(2.0).unwrap() - 9.9).abs() < 0.05, "p99 of 1..10000 µs is 9.9 ms: {:?}", at(2.0));
    }

    #[test]
    fn writes_an_svg_with_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.svg");
        let (mut a, mut b) = (crate::report::histogram(), crate::report::histogram());
        for v in 100..1_000u64 {
            a.record(v).unwrap();
            b.record(v * 3).unwrap();
        }
        write(&path, "test", &[("ours".into(), &a), ("nats".into(), &b)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("ours") && svg.contains("nats") && svg.contains("99%")
        );
        assert!(write(&path, "empty", &[("x".into(), &crate::report::histogram())]).is_err());
    }
}
