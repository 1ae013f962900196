//! Core win probability (`game/{id}/winprob`) for basketball and football, from the `nba_wp` and
//! `nfl_wp` models, with the expected points of the side with the ball (`nfl_ep`) for football;
//! for F1 races each driver's chance to win (`f1_win`) and to finish on the podium
//! (`f1_podium`), normalized over the field.
//! The features mirror `models/train/features.py` term by term; pre-game strength is the
//! game's pinned Elo difference (`model::ratings`), or the league's home advantage alone while
//! the teams are unknown. `model` runs the networks and scores outcomes; what the inputs are
//! and what the topic carries is decided here, next to the state they come from.

use std::sync::Arc;

use opensports_proto::{Side, topic};
use serde::{Deserialize, Serialize};

use super::out::Out;
use super::state::{Detail, F1, GameState, Status};
use crate::fanout::Topic;
use crate::model::ModelRegistry;
use crate::model::predictions::Predictions;
use crate::model::ratings::Ratings;

/// A game's win-probability stage: its topic, pinned pre-game strength and the predictions
/// scored when the game ends.
#[derive(Debug, Default)]
pub struct WinProb {
    /// `game/{id}/winprob`, created on the first prediction.
    topic: Option<Arc<Topic>>,
    /// Win probabilities given so far, scored against the result when the game ends.
    predictions: Predictions,
    /// Pre-game Elo difference, pinned once both teams are known.
    elo_diff: Option<f64>,
}

/// What a state snapshot keeps of a game's win-probability stage (its topic is restored with
/// the game's other topics).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedWinProb {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    elo_diff: Option<f64>,
    /// `(model, version, predictions)` not yet scored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    predictions: Vec<(String, String, Vec<f32>)>,
}

impl WinProb {
    /// For a state snapshot.
    pub fn save(&self) -> SavedWinProb {
        SavedWinProb { elo_diff: self.elo_diff, predictions: self.predictions.export() }
    }

    /// The stage as [`WinProb::save`] left it; `topic` is the restored `game/{id}/winprob`.
    pub fn restore(saved: SavedWinProb, topic: Option<Arc<Topic>>, models: &ModelRegistry) -> WinProb {
        WinProb {
            topic,
            predictions: Predictions::import(saved.predictions, models),
            elo_diff: saved.elo_diff,
        }
    }

    /// After `state` changed: pins the pre-game strength once the teams are known, scores the
    /// sport's model (active and shadow), stages the `winprob` publication, and settles the
    /// predictions when the game has ended. Gives the home win probability it published.
    pub(crate) fn update(
        &mut self,
        state: &GameState,
        ts: i64,
        ratings: &Ratings,
        models: &ModelRegistry,
        out: &mut Out,
    ) -> Option<f32> {
        if let Detail::F1(d) = &state.detail {
            if state.last_event == "lap" {
                let winprob = || topic::game_winprob(&state.game);
                out.stage(&mut self.topic, winprob, ts, |buf| write_f1_payload(buf, d, models));
            }
            return None;
        }
        if self.elo_diff.is_none()
            && let (Some(h), Some(a)) = (&state.home, &state.away)
        {
            self.elo_diff = ratings.pregame(&state.game, state.sport, h, a);
        }
        let (name, inputs) = features(state, self.elo_diff)?;
        let scored = models.score(name, &inputs)?;
        let p = scored.p;
        let mut ep = [0f32; 8];
        let ep = ep_features(state).and_then(|f| models.infer("nfl_ep", &f, &mut ep).ok()).map(|_| ep[0]);
        out.stage(
            &mut self.topic,
            || topic::game_winprob(&state.game),
            ts,
            |buf| {
                let at = At { period: state.period, clock_ms: state.clock_ms, event: &state.last_event };
                write_payload(buf, scored.p, name, &scored.active.spec.version, ep, &at);
                true
            },
        );
        self.predictions.record(scored);
        if state.status == Status::Ended
            && let Some(score) = state.score
        {
            self.predictions.settle(score.home > score.away);
        }
        Some(p)
    }
}

/// Elo home advantage (points) used for `elo_diff` when team ratings are unknown.
const NFL_HOME_ELO: f32 = 55.0;
const NBA_HOME_ELO: f32 = 100.0;

/// The model to use and its inputs for this state, or `None` for sports without one.
/// `elo_diff`: pre-game home minus away Elo in rating points, home advantage included.
pub fn features(state: &GameState, elo_diff: Option<f64>) -> Option<(&'static str, Vec<f32>)> {
    let score = state.score?;
    let diff = score.home as f32 - score.away as f32;
    let clock = state.clock_ms.unwrap_or(0) as f32 / 1000.0;
    match &state.detail {
        Detail::Football(d) => {
            let t = time_left(state, clock, 900.0, 600.0);
            let poss = match d.possession {
                Some(Side::Home) => 1.0,
                Some(Side::Away) => -1.0,
                None => 0.0,
            };
            let e = elo_diff.map_or(NFL_HOME_ELO, |d| d as f32) / 400.0;
            Some((
                "nfl_wp",
                vec![
                    t,
                    diff / 14.0,
                    diff / (t * 60.0 + 1.0).sqrt(),
                    poss,
                    poss * (50.0 - f32::from(d.yardline_100.unwrap_or(75))) / 50.0,
                    poss * f32::from(d.down.unwrap_or(1)) / 4.0,
                    poss * f32::from(d.distance.unwrap_or(10)).min(30.0) / 10.0,
                    e,
                    e * t,
                ],
            ))
        }
        Detail::Basketball(_) => {
            let t = time_left(state, clock, 720.0, 300.0);
            let e = elo_diff.map_or(NBA_HOME_ELO, |d| d as f32) / 400.0;
            Some(("nba_wp", vec![t, diff / 10.0, diff / (t * 48.0 + 0.5).sqrt(), e, e * t]))
        }
        _ => None,
    }
}

/// `nfl_ep` inputs (`EP_INPUTS` in features.py) for a football state in regulation with the
/// ball, down and yardline known; `None` otherwise.
pub fn ep_features(state: &GameState) -> Option<[f32; 9]> {
    let Detail::Football(d) = &state.detail else { return None };
    let (side, down, yardline) = (d.possession?, d.down?, d.yardline_100?);
    if state.status == Status::Ended || !(1..=4).contains(&state.period) || !(1..=4).contains(&down) {
        return None;
    }
    let clock = state.clock_ms.unwrap_or(0) as f32 / 1000.0;
    let quarters_left_in_half = if state.period <= 2 { 2 - state.period } else { 4 - state.period };
    let half_secs = (f32::from(quarters_left_in_half) * 900.0 + clock).clamp(0.0, 1800.0);
    let distance = f32::from(d.distance.unwrap_or(10));
    let is = |n: u8| if down == n { 1.0 } else { 0.0 };
    Some([
        half_secs / 1800.0,
        f32::from(yardline) / 100.0,
        is(1),
        is(2),
        is(3),
        is(4),
        distance.min(30.0) / 10.0,
        if distance >= f32::from(yardline) { 1.0 } else { 0.0 },
        if side == Side::Home { 1.0 } else { 0.0 },
    ])
}

/// Where in the game a `winprob` publication stands: charts place it on the game clock and
/// name the play behind a swing from the publication alone (a page opened mid-game draws the
/// history it replays exactly as a page that saw it live).
#[derive(Debug)]
pub struct At<'a> {
    pub period: u8,
    pub clock_ms: Option<u32>,
    /// The event type that moved the probability (`shot`, `touchdown`, ...).
    pub event: &'a str,
}

/// Writes the `game/{id}/winprob` payload into `buf` (cleared first) without allocating:
/// `{"home":p,"away":1-p,"model":name,"version":v}` plus `"ep"` (expected points of the side
/// with the ball) when known, then `"period"`, `"clock_ms"` (when known) and `"event"` from
/// `at`. Probabilities are rounded to 4 decimals, points to 3.
pub fn write_payload(buf: &mut Vec<u8>, p: f32, model: &str, version: &str, ep: Option<f32>, at: &At<'_>) {
    let round = |v: f64, scale: f64| (v * scale).round() / scale;
    let p = f64::from(p);
    buf.clear();
    // Writing to a Vec cannot fail; names and versions come from the manifest, so are escaped.
    buf.extend_from_slice(br#"{"home":"#);
    let _ = serde_json::to_writer(&mut *buf, &round(p, 1e4));
    buf.extend_from_slice(br#","away":"#);
    let _ = serde_json::to_writer(&mut *buf, &round(1.0 - p, 1e4));
    buf.extend_from_slice(br#","model":"#);
    let _ = serde_json::to_writer(&mut *buf, model);
    buf.extend_from_slice(br#","version":"#);
    let _ = serde_json::to_writer(&mut *buf, version);
    if let Some(ep) = ep {
        buf.extend_from_slice(br#","ep":"#);
        let _ = serde_json::to_writer(&mut *buf, &round(f64::from(ep), 1e3));
    }
    buf.extend_from_slice(br#","period":"#);
    let _ = serde_json::to_writer(&mut *buf, &at.period);
    if let Some(clock) = at.clock_ms {
        buf.extend_from_slice(br#","clock_ms":"#);
        let _ = serde_json::to_writer(&mut *buf, &clock);
    }
    buf.extend_from_slice(br#","event":"#);
    let _ = serde_json::to_writer(&mut *buf, at.event);
    buf.push(b'}');
}

/// Caps of the F1 time features, in seconds (`F1_GAP_CAP_S`, `F1_MARGIN_CAP_S`,
/// `F1_PACE_CAP_S` in features.py).
const F1_GAP_CAP_S: f32 = 120.0;
const F1_MARGIN_CAP_S: f32 = 60.0;
const F1_PACE_CAP_S: f32 = 5.0;

/// How many inputs the F1 models take (`F1_INPUTS` in features.py).
pub const F1_INPUTS: usize = 14;

/// What the F1 inputs read off the whole field, once per lap line: the median over the cars
/// still running (within a lap of the leader) of their last lap over their best (minus 1: about
/// 0.4 under a safety car), and the median of those cars' pace (the median of each car's recent
/// lap times).
#[derive(Debug, Clone, Copy, Default)]
pub struct F1Field {
    slow: f32,
    pace_ms: f32,
}

impl F1Field {
    pub fn of(d: &F1) -> F1Field {
        let running = || d.cars.iter().filter(|c| f1_running(d, c));
        let mut slow: Vec<f32> = running()
            .filter_map(|c| match (c.last_lap_ms, c.best_lap_ms) {
                (Some(t), Some(b)) if b > 0 => Some((t as f32 / b as f32 - 1.0).clamp(0.0, 1.0)),
                _ => None,
            })
            .collect();
        let mut pace: Vec<f32> = running().filter_map(recent_ms).collect();
        F1Field { slow: median(&mut slow).unwrap_or(0.0), pace_ms: median(&mut pace).unwrap_or(0.0) }
    }
}

/// Whether the car is still in the race as the inputs see it: within a lap of the leader (a
/// retired car's timing stops; it keeps its last place in the list).
pub fn f1_running(d: &F1, car: &crate::pipeline::state::Car) -> bool {
    car.lap + 1 >= d.lap
}

/// The median of the car's recent lap times, if it has one.
fn recent_ms(car: &crate::pipeline::state::Car) -> Option<f32> {
    let mut laps = [0f32; crate::pipeline::state::RECENT_LAPS];
    let mut n = 0;
    for (slot, t) in laps.iter_mut().zip(car.recent_laps_ms.iter().filter(|t| **t > 0)) {
        *slot = *t as f32;
        n += 1;
    }
    median(&mut laps[..n])
}

/// The median (the mean of the middle two for an even count), as pandas takes it.
fn median(v: &mut [f32]) -> Option<f32> {
    v.sort_by(f32::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// `f1_win`/`f1_podium` inputs (`F1_INPUTS` in features.py) for the car at `idx` of a race's
/// cars (ordered by position), or `None` outside a race of known distance or before the car has
/// a lap. The leader's margin is minus its lead over second place; everyone else's is the gap
/// to the car ahead; the gap to the car behind is the next running car's interval (the last
/// car's is the cap). A car without a gap (not yet timed) counts as the cap behind.
pub fn f1_features(d: &F1, field: &F1Field, idx: usize) -> Option<[f32; F1_INPUTS]> {
    use opensports_proto::f1::SessionKind;
    if !matches!(d.session_kind, Some(SessionKind::Race | SessionKind::Sprint)) {
        return None;
    }
    let total = f32::from(d.total_laps?.max(1));
    let car = d.cars.get(idx)?;
    if car.lap == 0 {
        return None;
    }
    let secs = |ms: Option<u32>| ms.map(|v| v as f32 / 1000.0);
    let leader = idx == 0;
    let gap = if leader { 0.0 } else { secs(car.gap_ms).unwrap_or(F1_GAP_CAP_S) }.clamp(0.0, F1_GAP_CAP_S);
    let margin = if leader {
        -d.cars.get(1).and_then(|c| secs(c.gap_ms)).unwrap_or(0.0)
    } else {
        secs(car.interval_ms).unwrap_or(0.0)
    }
    .clamp(-F1_MARGIN_CAP_S, F1_MARGIN_CAP_S);
    let behind = d.cars[idx + 1..]
        .iter()
        .find(|c| f1_running(d, c))
        .and_then(|c| secs(c.interval_ms))
        .unwrap_or(F1_MARGIN_CAP_S);
    let pace = recent_ms(car).map_or(0.0, |ms| (ms - field.pace_ms) / 1000.0);
    let left = (total - f32::from(car.lap)).max(0.0);
    let position = f32::from(car.position.clamp(1, 24));
    Some([
        position / 20.0,
        1.0 / position,
        gap / 60.0,
        (gap / (left + 1.0)).min(30.0),
        margin / 10.0,
        left / total,
        left / 50.0,
        f32::from(car.pit_stops.min(6)),
        f32::from(car.grid.clamp(1, 21)) / 20.0,
        f32::from(car.lap.saturating_sub(car.stint_lap).min(60)) / 30.0,
        if car.pit_stops == 0 { 1.0 } else { 0.0 },
        behind.clamp(0.0, F1_MARGIN_CAP_S) / 10.0,
        field.slow,
        pace.clamp(-F1_PACE_CAP_S, F1_PACE_CAP_S) / F1_PACE_CAP_S,
    ])
}

/// Writes an F1 race's `game/{id}/winprob` payload into `buf`: `{"lap":n,"drivers":[{"driver",
/// "win","podium"}...],"model":"f1_win","version":v}` in running order, win probabilities
/// summing to 1 and podium ones to 3 (each at most 1). A car that has completed the race
/// distance has its result: the first is the winner (1, everyone else 0), a finisher in the top
/// three has its podium (1) and one outside it has none (0); the models share out the rest.
/// False (nothing written) when the models are not loaded or the session is not a race with laps.
fn write_f1_payload(buf: &mut Vec<u8>, d: &F1, models: &ModelRegistry) -> bool {
    let mut win = Vec::with_capacity(d.cars.len());
    let mut podium = Vec::with_capacity(d.cars.len());
    let mut version = None;
    let field = F1Field::of(d);
    for idx in 0..d.cars.len() {
        let Some(f) = f1_features(d, &field, idx) else { return false };
        let (Some(w), Some(p)) = (models.score("f1_win", &f), models.score("f1_podium", &f)) else {
            return false;
        };
        version.get_or_insert_with(|| w.active.spec.version.clone());
        win.push(w.p);
        podium.push(p.p);
    }
    let Some(version) = version else { return false };
    let finished: Vec<bool> = d.cars.iter().map(|c| d.total_laps.is_some_and(|t| c.lap >= t)).collect();
    share(&mut win, 1.0, |i| finished[0].then_some(if i == 0 { 1.0 } else { 0.0 }));
    let places = (d.cars.len() as f32).min(3.0);
    share(&mut podium, places, |i| finished[i].then_some(if i < 3 { 1.0 } else { 0.0 }));
    let rows: Vec<(f32, f32)> = win.into_iter().zip(podium).collect();
    let round = |v: f32| (f64::from(v) * 1e4).round() / 1e4;
    buf.clear();
    buf.extend_from_slice(br#"{"lap":"#);
    let _ = serde_json::to_writer(&mut *buf, &d.lap);
    buf.extend_from_slice(br#","drivers":["#);
    for (i, (car, (win, podium))) in d.cars.iter().zip(&rows).enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"driver":"#);
        let _ = serde_json::to_writer(&mut *buf, &car.driver);
        buf.extend_from_slice(br#","win":"#);
        let _ = serde_json::to_writer(&mut *buf, &round(*win));
        buf.extend_from_slice(br#","podium":"#);
        let _ = serde_json::to_writer(&mut *buf, &round(*podium));
        buf.push(b'}');
    }
    buf.extend_from_slice(br#"],"model":"f1_win","version":"#);
    let _ = serde_json::to_writer(&mut *buf, &version);
    buf.push(b'}');
    true
}

/// Turns raw per-car probabilities into shares of `places`: cars whose outcome is `decided`
/// keep it, the others split what is left in proportion to their raw value, each at most 1.
fn share(p: &mut [f32], places: f32, decided: impl Fn(usize) -> Option<f32>) {
    let fixed: f32 = (0..p.len()).filter_map(&decided).sum();
    let open: f32 =
        p.iter().enumerate().filter(|(i, _)| decided(*i).is_none()).map(|(_, v)| v.max(1e-6)).sum();
    let scale = if open > 0.0 { (places - fixed).max(0.0) / open } else { 0.0 };
    for (i, v) in p.iter_mut().enumerate() {
        *v = decided(i).unwrap_or_else(|| (v.max(1e-6) * scale).min(1.0));
    }
}

/// Share of regulation time left (0..=1): four periods of `period_secs`, overtime counted as its
/// clock (capped at `ot_secs`), 0 once the game ended.
fn time_left(state: &GameState, clock_secs: f32, period_secs: f32, ot_secs: f32) -> f32 {
    let remaining = if state.status == Status::Ended {
        0.0
    } else if state.period <= 4 {
        f32::from(4 - state.period.max(1)) * period_secs + clock_secs
    } else {
        clock_secs.min(ot_secs)
    };
    (remaining / (4.0 * period_secs)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::state::Football;
    use opensports_proto::Sport;

    /// Expected points of a football state with the shipped `nfl_ep`.
    fn ep(period: u8, clock_s: u32, side: Side, down: u8, distance: u8, yardline: u8) -> f32 {
        let (models, errors) = crate::model::ModelRegistry::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let mut s = GameState::new("g", Sport::Football);
        s.status = Status::Live;
        s.period = period;
        s.clock_ms = Some(clock_s * 1000);
        s.detail = Detail::Football(Football {
            possession: Some(side),
            down: Some(down),
            distance: Some(distance),
            yardline_100: Some(yardline),
            ..Football::default()
        });
        let f = ep_features(&s).expect("features");
        let mut out = [0f32; 8];
        assert_eq!(models.infer("nfl_ep", &f, &mut out), Ok(8));
        let classes: f32 = out[1..].iter().sum();
        assert!((classes - 1.0).abs() < 1e-4, "class probabilities sum to {classes}");
        out[0]
    }

    #[test]
    fn expected_points_follow_field_position() {
        // nflfastR gives 1.47 for 1st & 10 at the own 25 at the start of a half.
        let start = ep(1, 900, Side::Home, 1, 10, 75);
        assert!((0.8..2.2).contains(&start), "{start}");
        // The half restarts the clock: the start of the third quarter is worth the same.
        let third = ep(3, 900, Side::Home, 1, 10, 75);
        assert!((start - third).abs() < 0.3, "{start} vs {third}");
        // Home sides score next more often in the data (+0.5 points on average).
        assert!(ep(1, 900, Side::Away, 1, 10, 75) < start);
        // First and goal at the 3 is worth most of a touchdown; backed up at the own 2, less than 0.
        let goal = ep(2, 600, Side::Home, 1, 3, 3);
        assert!(goal > 4.5, "{goal}");
        let backed_up = ep(2, 600, Side::Home, 1, 10, 98);
        assert!(backed_up < 0.5, "{backed_up}");
        // Fourth and long is worth less than first and ten at the same spot.
        assert!(ep(1, 600, Side::Home, 4, 15, 50) < ep(1, 600, Side::Home, 1, 10, 50));
    }

    #[test]
    fn payload_is_the_documented_json() {
        let mut buf = b"stale".to_vec();
        let at = At { period: 3, clock_ms: Some(431_000), event: "play" };
        write_payload(&mut buf, 0.600_34, "nfl_wp", "1", Some(1.30049), &at);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"home": 0.6003, "away": 0.3997, "model": "nfl_wp", "version": "1", "ep": 1.3,
                "period": 3, "clock_ms": 431_000, "event": "play"})
        );
        let at = At { period: 1, clock_ms: None, event: "game_start" };
        write_payload(&mut buf, 1.0, "nba\"wp", "2", None, &at);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"home": 1.0, "away": 0.0, "model": "nba\"wp", "version": "2", "period": 1,
                "event": "game_start"})
        );
    }

    #[test]
    fn f1_inputs_read_tyres_the_car_behind_and_the_field_without_retired_cars() {
        use crate::pipeline::state::{Car, F1, RECENT_LAPS};
        use opensports_proto::f1::SessionKind;
        let car = |driver: &str, position: u8, lap: u16, interval_ms: u32, recent: [u32; RECENT_LAPS]| Car {
            driver: driver.into(),
            position,
            lap,
            gap_ms: Some(u32::from(position - 1) * 2_000),
            interval_ms: Some(interval_ms),
            last_lap_ms: Some(recent[0]),
            best_lap_ms: recent.iter().copied().filter(|t| *t > 0).min(),
            compound: None,
            in_pit: false,
            pit_stops: u16::from(position == 2),
            grid: position,
            stint_lap: if position == 2 { 6 } else { 0 },
            recent_laps_ms: recent,
        };
        let d = F1 {
            session_kind: Some(SessionKind::Race),
            lap: 10,
            total_laps: Some(50),
            cars: vec![
                car("A", 1, 10, 0, [90_000, 91_000, 92_000]),
                car("B", 2, 10, 2_000, [91_000, 90_000, 0]),
                // Retired on lap 4: out of the field's medians, and not the car behind B.
                car("C", 3, 4, 1_000, [200_000, 200_000, 200_000]),
                car("D", 4, 9, 4_000, [126_000, 90_000, 90_000]),
            ],
            ..F1::default()
        };
        let field = F1Field::of(&d);
        // Slowness: A 90/90-1 = 0, B 91/90-1 = 0.011, D 126/90-1 = 0.4; median 0.011.
        assert!((field.slow - (91.0 / 90.0 - 1.0)).abs() < 1e-5, "{field:?}");
        // Recent medians: A 91 s, B 90.5 s (mean of two), D 90 s; the field's median 90.5 s.
        assert!((field.pace_ms - 90_500.0).abs() < 1e-3, "{field:?}");
        let a = f1_features(&d, &field, 0).expect("a race lap");
        let b = f1_features(&d, &field, 1).expect("a race lap");
        assert_eq!(a.len(), F1_INPUTS);
        assert!((a[13] - 0.5 / F1_PACE_CAP_S).abs() < 1e-5, "A is 0.5 s slower than the field: {a:?}");
        assert!((b[9] - 4.0 / 30.0).abs() < 1e-6 && b[10] == 0.0, "B's tyres are 4 laps old: {b:?}");
        assert!(a[9] > b[9] && a[10] == 1.0, "A has not stopped: {a:?}");
        assert!((b[11] - 0.4).abs() < 1e-6, "behind B is D (4 s), not the retired C: {b:?}");
        assert!((a[11] - 0.2).abs() < 1e-6, "behind A is B (2 s): {a:?}");
    }
}
