//! The report's charts, drawn once through [`Canvas`] for both outputs: SVG in the page
//! (`html.rs`) and PDF drawing operators (`pdf.rs`). Coordinates are the chart's own, x to the
//! right and y down, in points.

use super::{Chart, Report, WinProbChart};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Color(pub u8, pub u8, pub u8);

pub const INK: Color = Color(0x1f, 0x23, 0x28);
pub const GRID: Color = Color(0xc8, 0xcc, 0xd0);
pub const HOME: Color = Color(0x1f, 0x5f, 0xbf);
pub const AWAY: Color = Color(0xd0, 0x50, 0x10);
const FLOOR: Color = Color(0xf4, 0xe9, 0xd8);
const GRASS: Color = Color(0xe3, 0xf1, 0xe3);
/// Lap-chart lines, one per driver in turn.
const PALETTE: [Color; 10] = [
    Color(0x1f, 0x77, 0xb4),
    Color(0xff, 0x7f, 0x0e),
    Color(0x2c, 0xa0, 0x2c),
    Color(0xd6, 0x27, 0x28),
    Color(0x94, 0x67, 0xbd),
    Color(0x8c, 0x56, 0x4b),
    Color(0xe3, 0x77, 0xc2),
    Color(0x7f, 0x7f, 0x7f),
    Color(0xbc, 0xbd, 0x22),
    Color(0x17, 0xbe, 0xcf),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// What the charts draw with.
pub trait Canvas {
    fn polyline(&mut self, pts: &[(f32, f32)], stroke: Color, width: f32);
    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Option<Color>, stroke: Option<Color>);
    /// `class` names what it marks (`shot`, `goal`, `moment`) for the page's readers.
    fn circle(&mut self, x: f32, y: f32, r: f32, fill: Option<Color>, stroke: Option<Color>, class: &str);
    fn text(&mut self, x: f32, y: f32, size: f32, fill: Color, anchor: Anchor, text: &str);
}

/// A canvas that draws nothing: a dry run gives a chart's height.
#[derive(Debug)]
pub struct Measure;

impl Canvas for Measure {
    fn polyline(&mut self, _: &[(f32, f32)], _: Color, _: f32) {}
    fn rect(&mut self, _: f32, _: f32, _: f32, _: f32, _: Option<Color>, _: Option<Color>) {}
    fn circle(&mut self, _: f32, _: f32, _: f32, _: Option<Color>, _: Option<Color>, _: &str) {}
    fn text(&mut self, _: f32, _: f32, _: f32, _: Color, _: Anchor, _: &str) {}
}

fn side_color(home: bool) -> Color {
    if home { HOME } else { AWAY }
}

/// The win-probability chart, `w` × `h`: home's probability on the game clock, period lines,
/// the key moments numbered.
pub fn win_probability(c: &mut dyn Canvas, wp: &WinProbChart, home: &str, w: f32, h: f32) {
    let (l, r, t, b) = (34.0, 8.0, 14.0, 18.0);
    let (pw, ph) = (w - l - r, h - t - b);
    let x_max = wp.x_max.max(1.0) as f32;
    let px = |x: f64| l + pw * (x as f32 / x_max).clamp(0.0, 1.0);
    let py = |y: f64| t + ph * (1.0 - y as f32);
    c.rect(l, t, pw, ph, None, Some(GRID));
    for (y, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        c.polyline(&[(l, py(y)), (l + pw, py(y))], GRID, 0.5);
        c.text(l - 4.0, py(y) + 3.0, 8.0, INK, Anchor::End, label);
    }
    for (x, name) in &wp.periods {
        c.polyline(&[(px(*x), t), (px(*x), t + ph)], GRID, 0.5);
        c.text(px(*x) + 3.0, t + ph + 12.0, 8.0, INK, Anchor::Start, name);
    }
    let pts: Vec<(f32, f32)> = wp.points.iter().map(|(x, y)| (px(*x), py(*y))).collect();
    c.polyline(&pts, HOME, 1.4);
    c.text(l + 4.0, t - 4.0, 8.0, HOME, Anchor::Start, &format!("{home} win probability"));
    for (i, m) in wp.moments.iter().enumerate() {
        let (x, y) = (px(m.x), py(m.after));
        c.circle(x, y, 6.0, Some(Color(0xff, 0xff, 0xff)), Some(INK), "moment");
        c.text(x, y + 3.0, 8.0, INK, Anchor::Middle, &(i + 1).to_string());
    }
}

/// The sport's chart, `w` wide; gives the height it used.
pub fn sport_chart(c: &mut dyn Canvas, chart: &Chart, report: &Report, w: f32) -> f32 {
    let [home, away] = report.teams.clone().unwrap_or_else(|| ["home".into(), "away".into()]);
    match chart {
        Chart::Court { shots } => {
            let s = w / 94.0;
            court(c, s);
            for m in shots {
                let fill = m.scored.then_some(side_color(m.home));
                c.circle(
                    m.x * s,
                    m.y * s,
                    0.8 * s,
                    fill,
                    Some(side_color(m.home)),
                    if m.scored { "goal" } else { "shot" },
                );
            }
            legend(c, 50.0 * s + 12.0, &home, &away, "filled: made");
            50.0 * s + 18.0
        }
        Chart::Pitch { shots } => {
            let s = w / 105.0;
            pitch(c, s);
            for m in shots {
                let fill = m.scored.then_some(side_color(m.home));
                c.circle(
                    m.x * s,
                    m.y * s,
                    1.0 * s,
                    fill,
                    Some(side_color(m.home)),
                    if m.scored { "goal" } else { "shot" },
                );
            }
            legend(c, 68.0 * s + 12.0, &home, &away, "filled: goal");
            68.0 * s + 18.0
        }
        Chart::Drives { drives } => {
            let row = 9.0;
            let (l, fw) = (90.0, w - 100.0);
            let fx = |yd: f32| l + fw * yd / 100.0;
            let h = row * drives.len() as f32;
            c.rect(l, 0.0, fw, h, Some(GRASS), Some(GRID));
            for yd in (10..100).step_by(10) {
                c.polyline(&[(fx(yd as f32), 0.0), (fx(yd as f32), h)], GRID, 0.4);
            }
            for (i, d) in drives.iter().enumerate() {
                let y = i as f32 * row;
                let team = if d.home { &home } else { &away };
                c.text(0.0, y + row - 2.0, 7.0, INK, Anchor::Start, &format!("{} {team}", i + 1));
                c.text(l - 4.0, y + row - 2.0, 7.0, INK, Anchor::End, &d.result);
                let (a, b) = (fx(d.start.min(d.end)), fx(d.start.max(d.end)));
                c.rect(a, y + 1.5, (b - a).max(1.5), row - 3.0, Some(side_color(d.home)), None);
            }
            c.text(l, h + 10.0, 7.0, INK, Anchor::Start, "own goal line");
            c.text(l + fw, h + 10.0, 7.0, INK, Anchor::End, "opponent's goal line");
            h + 14.0
        }
        Chart::Laps { laps, drivers } => {
            let n = drivers.iter().flat_map(|d| d.positions.iter().map(|p| p.1)).max().unwrap_or(1).max(2);
            let (l, r, row) = (24.0, 40.0, 10.0);
            let pw = w - l - r;
            let h = row * f32::from(n.saturating_sub(1));
            let px = |lap: u16| l + pw * f32::from(lap.saturating_sub(1)) / f32::from((*laps).max(2) - 1);
            let py = |pos: u8| 6.0 + row * f32::from(pos.saturating_sub(1));
            for p in 1..=n {
                c.text(l - 4.0, py(p) + 2.5, 6.5, INK, Anchor::End, &format!("P{p}"));
            }
            for (i, d) in drivers.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f32, f32)> =
                    d.positions.iter().map(|(lap, pos)| (px(*lap), py(*pos))).collect();
                c.polyline(&pts, color, 1.0);
                if let Some(&(x, y)) = pts.last() {
                    c.text(x + 3.0, y + 2.5, 6.5, color, Anchor::Start, &d.driver);
                }
            }
            c.text(l, h + 20.0, 7.0, INK, Anchor::Start, &format!("lap 1 to {laps}"));
            h + 24.0
        }
    }
}

fn legend(c: &mut dyn Canvas, y: f32, home: &str, away: &str, what: &str) {
    c.circle(4.0, y - 3.0, 3.0, Some(HOME), None, "key");
    c.text(10.0, y, 8.0, INK, Anchor::Start, home);
    c.circle(64.0, y - 3.0, 3.0, Some(AWAY), None, "key");
    c.text(70.0, y, 8.0, INK, Anchor::Start, away);
    c.text(130.0, y, 8.0, INK, Anchor::Start, what);
}

/// Points along an arc: centre, radius, from and to angles (radians).
fn arc(cx: f32, cy: f32, r: f32, from: f32, to: f32) -> Vec<(f32, f32)> {
    (0..=24)
        .map(|i| from + (to - from) * i as f32 / 24.0)
        .map(|a| (cx + r * a.cos(), cy + r * a.sin()))
        .collect()
}

fn scaled(pts: Vec<(f32, f32)>, s: f32) -> Vec<(f32, f32)> {
    pts.into_iter().map(|(x, y)| (x * s, y * s)).collect()
}

/// An NBA court (94 × 50 ft) at `s` points per foot: paint, hoops, three-point lines, centre.
fn court(c: &mut dyn Canvas, s: f32) {
    c.rect(0.0, 0.0, 94.0 * s, 50.0 * s, Some(FLOOR), Some(INK));
    c.polyline(&[(47.0 * s, 0.0), (47.0 * s, 50.0 * s)], INK, 0.6);
    c.polyline(&scaled(arc(47.0, 25.0, 6.0, 0.0, std::f32::consts::TAU), s), INK, 0.6);
    for (hoop, dir) in [(5.25f32, 1.0f32), (88.75, -1.0)] {
        let base = if dir > 0.0 { 0.0 } else { 94.0 };
        let paint_x = if dir > 0.0 { 0.0 } else { 75.0 };
        c.rect(paint_x * s, 17.0 * s, 19.0 * s, 16.0 * s, None, Some(INK));
        c.circle(hoop * s, 25.0 * s, 0.75 * s, None, Some(INK), "hoop");
        // Three-point line: straight in the corners, 3 ft in from each sideline, then the arc
        // 23.75 ft from the hoop.
        let y_top = 3.0;
        let x_break = hoop + dir * (23.75f32.powi(2) - 22.0f32.powi(2)).sqrt();
        c.polyline(&[(base * s, y_top * s), (x_break * s, y_top * s)], INK, 0.6);
        c.polyline(&[(base * s, (50.0 - y_top) * s), (x_break * s, (50.0 - y_top) * s)], INK, 0.6);
        let a0 = ((3.0f32 - 25.0) / 23.75).asin();
        let pts = arc(hoop, 25.0, 23.75, a0, -a0);
        let pts: Vec<(f32, f32)> = pts.into_iter().map(|(x, y)| (hoop + dir * (x - hoop), y)).collect();
        c.polyline(&scaled(pts, s), INK, 0.6);
    }
}

/// A soccer pitch (105 × 68 m) at `s` points per metre: halfway line, centre circle, penalty
/// and goal areas.
fn pitch(c: &mut dyn Canvas, s: f32) {
    c.rect(0.0, 0.0, 105.0 * s, 68.0 * s, Some(GRASS), Some(INK));
    c.polyline(&[(52.5 * s, 0.0), (52.5 * s, 68.0 * s)], INK, 0.6);
    c.polyline(&scaled(arc(52.5, 34.0, 9.15, 0.0, std::f32::consts::TAU), s), INK, 0.6);
    for (x0, dir) in [(0.0f32, 1.0f32), (105.0, -1.0)] {
        let box_x = if dir > 0.0 { x0 } else { x0 - 16.5 };
        c.rect(box_x * s, 13.84 * s, 16.5 * s, 40.32 * s, None, Some(INK));
        let six_x = if dir > 0.0 { x0 } else { x0 - 5.5 };
        c.rect(six_x * s, 24.84 * s, 5.5 * s, 18.32 * s, None, Some(INK));
    }
}
