//! Core win probability (`game/{id}/winprob`) for basketball and football, from the `nba_wp` and
//! `nfl_wp` models, with the expected points of the side with the ball (`nfl_ep`) for football.
//! The features mirror `models/train/features.py` term by term; pre-game strength is the
//! game's pinned Elo difference (`model::ratings`), or the league's home advantage alone while
//! the teams are unknown. `model` runs the networks and scores outcomes; what the inputs are
//! and what the topic carries is decided here, next to the state they come from.

use std::sync::Arc;

use opensports_proto::{Side, topic};

use super::shard::Out;
use super::state::{Detail, GameState, Status};
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

impl WinProb {
    /// After `state` changed: pins the pre-game strength once the teams are known, scores the
    /// sport's model (active and shadow), stages the `winprob` publication, and settles the
    /// predictions when the game has ended.
    pub(crate) fn update(
        &mut self,
        state: &GameState,
        ts: i64,
        ratings: &Ratings,
        models: &ModelRegistry,
        out: &mut Out,
    ) {
        if self.elo_diff.is_none()
            && let (Some(h), Some(a)) = (&state.home, &state.away)
        {
            self.elo_diff = ratings.pregame(&state.game, state.sport, h, a);
        }
        let Some((name, inputs)) = features(state, self.elo_diff) else { return };
        let Some(scored) = models.score(name, &inputs) else { return };
        if self.topic.is_none() {
            self.topic = out.fanout.topic(&topic::game_winprob(&state.game));
        }
        if let Some(t) = &self.topic {
            let mut ep = [0f32; 8];
            let ep = ep_features(state).and_then(|f| models.infer("nfl_ep", &f, &mut ep).ok()).map(|_| ep[0]);
            write_payload(&mut out.buf, scored.p, name, &scored.active.spec.version, ep);
            out.batch.push(t, ts, &out.buf);
        }
        self.predictions.record(scored);
        if state.status == Status::Ended
            && let Some(score) = state.score
        {
            self.predictions.settle(score.home > score.away);
        }
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

/// Writes the `game/{id}/winprob` payload into `buf` (cleared first) without allocating:
/// `{"home":p,"away":1-p,"model":name,"version":v}` plus `"ep"` (expected points of the side
/// with the ball) when known. Probabilities are rounded to 4 decimals, points to 3.
pub fn write_payload(buf: &mut Vec<u8>, p: f32, model: &str, version: &str, ep: Option<f32>) {
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
    buf.push(b'}');
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
        write_payload(&mut buf, 0.600_34, "nfl_wp", "1", Some(1.30049));
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"home": 0.6003, "away": 0.3997, "model": "nfl_wp", "version": "1", "ep": 1.3})
        );
        write_payload(&mut buf, 1.0, "nba\"wp", "2", None);
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("json");
        assert_eq!(v, serde_json::json!({"home": 1.0, "away": 0.0, "model": "nba\"wp", "version": "2"}));
    }
}
