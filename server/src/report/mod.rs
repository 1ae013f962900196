//! The post-game report: one document per game with the result, the box score or team stats,
//! the win-probability chart with its key moments, the sport's chart (shot chart, drive chart,
//! shot map, lap chart), the analyst's storylines and the feed-quality summary.
//!
//! - [`Report`] is read from what the game's topics published (their kept history): every
//!   number in it is one the server published, so it reconciles with the pages and the log.
//!   `GET /v1/games/{id}/report?format=json` gives it as JSON.
//! - [`html`] renders it as one self-contained page (inline CSS and SVG, no script, no
//!   external request; printable): `GET /v1/games/{id}/report`.
//! - [`pdf`] renders it as a PDF with `pdf-writer`, without a browser:
//!   `opensports report GAME --pdf FILE`.
//! - [`chart`] draws the charts once, for both, through a small [`chart::Canvas`].

pub mod chart;
pub mod html;
pub mod pdf;
mod read;

use opensports_proto::Sport;
use serde::{Deserialize, Serialize};

pub use read::build;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub game: String,
    pub sport: Sport,
    /// "MIL 117–123 DEN", or the session's name.
    pub title: String,
    /// "Final", or where a game still live stands ("Live · Q3 5:12").
    pub status: String,
    /// Sport, game id and date.
    pub subtitle: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<[u32; 2]>,
    /// Team names (abbreviations as the feed gives them), home first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<[String; 2]>,
    /// "Top scorer BKN: K.Durant 22 pts" and the like.
    pub leaders: Vec<String>,
    pub tables: Vec<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wp: Option<WinProbChart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    /// The analyst's notes, in order.
    pub notes: Vec<String>,
    pub quality: QualitySummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Home win probability on the game clock (minutes from the start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinProbChart {
    pub x_max: f64,
    /// Where each period starts, and its short name.
    pub periods: Vec<(f64, String)>,
    /// `(minute, home probability)` per `winprob` publication.
    pub points: Vec<(f64, f64)>,
    pub moments: Vec<Moment>,
}

/// One of the biggest swings of win probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    pub x: f64,
    pub before: f64,
    pub after: f64,
    /// "Q4 2:31 · shot".
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Chart {
    /// Basketball field-goal attempts on a 94 × 50 ft court.
    Court { shots: Vec<Mark> },
    /// Soccer shots on a 105 × 68 m pitch.
    Pitch { shots: Vec<Mark> },
    /// Football drives, each from its start to where it ended (yards from its own goal line).
    Drives { drives: Vec<Drive> },
    /// F1 position by lap, per driver.
    Laps { laps: u16, drivers: Vec<LapLine> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub x: f32,
    pub y: f32,
    pub scored: bool,
    pub home: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drive {
    pub home: bool,
    pub start: f32,
    pub end: f32,
    pub result: String,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LapLine {
    pub driver: String,
    /// `(lap, position)`.
    pub positions: Vec<(u16, u8)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// ok, degraded, failing, or unknown (no report).
    pub status: String,
    /// "gap: 2 (last: seqs 10–12 missing)".
    pub issues: Vec<String>,
}

/// Minutes from the start of the game at `period` and `clock_ms` (the dashboard's game-clock
/// axis, `pages/format.js` `gameMinute`): basketball 4 × 12 then 5 per overtime, football 4 ×
/// 15 then 10 (clocks count down); soccer's clock counts up and each half gets 55 minutes of
/// room (45 + stoppage), each extra-time period 20.
pub fn game_minute(sport: Sport, period: u8, clock_ms: Option<u32>) -> f64 {
    if period == 0 {
        return 0.0;
    }
    let min = f64::from(clock_ms.unwrap_or(0)) / 60_000.0;
    let p = f64::from(period);
    match sport {
        Sport::Basketball | Sport::Football => {
            let (len, ot) = if sport == Sport::Basketball { (12.0, 5.0) } else { (15.0, 10.0) };
            let start = if period <= 4 { (p - 1.0) * len } else { 4.0 * len + (p - 5.0) * ot };
            let plen = if period <= 4 { len } else { ot };
            start + (plen - min).clamp(0.0, plen)
        }
        Sport::Soccer => {
            const HALVES: [(f64, f64); 4] = [(0.0, 55.0), (45.0, 55.0), (90.0, 20.0), (105.0, 20.0)];
            let i = usize::from(period.clamp(1, 4) - 1);
            let start: f64 = HALVES[..i].iter().map(|h| h.1).sum();
            start + (min - HALVES[i].0).clamp(0.0, HALVES[i].1)
        }
        Sport::F1 => 0.0,
    }
}

/// A period's short name: Q1…Q4, OT1… (football OT, OT2…); soccer 1H, 2H, ET1, ET2.
pub fn period_name(sport: Sport, p: u8) -> String {
    match sport {
        Sport::Soccer => ["", "1H", "2H", "ET1", "ET2", "Pens"]
            .get(usize::from(p))
            .map_or(format!("P{p}"), |s| s.to_string()),
        _ if p <= 4 => format!("Q{p}"),
        Sport::Football if p == 5 => "OT".into(),
        _ => format!("OT{}", p - 4),
    }
}

/// The `n` biggest moves of at least `min` between consecutive values (indexes of the value
/// after each move, in order): the dashboard's key moments (`pages/format.js` `swings`).
pub fn swings(ys: &[f64], n: usize, min: f64) -> Vec<usize> {
    let mut d: Vec<(usize, f64)> =
        (1..ys.len()).map(|i| (i, ys[i] - ys[i - 1])).filter(|(_, delta)| delta.abs() >= min).collect();
    d.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    let mut out: Vec<usize> = d.into_iter().take(n).map(|x| x.0).collect();
    out.sort_unstable();
    out
}

/// "5:12" from milliseconds.
pub fn clock(ms: u32) -> String {
    let s = ms / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// "1:27.130" from milliseconds.
pub fn lap_time(ms: u64) -> String {
    format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn game_clock_axis_matches_the_dashboard() {
        assert_eq!(game_minute(Sport::Basketball, 1, Some(720_000)), 0.0);
        assert_eq!(game_minute(Sport::Basketball, 4, Some(0)), 48.0);
        assert_eq!(game_minute(Sport::Basketball, 5, Some(150_000)), 50.5);
        assert_eq!(game_minute(Sport::Football, 2, Some(450_000)), 22.5);
        // Soccer: added time stays in its half.
        assert_eq!(game_minute(Sport::Soccer, 1, Some(47 * 60_000)), 47.0);
        assert_eq!(game_minute(Sport::Soccer, 2, Some(46 * 60_000)), 56.0);
        assert_eq!(swings(&[0.5, 0.6, 0.61, 0.3, 0.35], 3, 0.08), vec![1, 3]);
        assert_eq!(period_name(Sport::Football, 5), "OT");
        assert_eq!(lap_time(87_130), "1:27.130");
    }
}
