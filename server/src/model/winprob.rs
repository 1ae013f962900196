//! Core win probability (`game/{id}/winprob`) for basketball and football, from the `nba_wp` and
//! `nfl_wp` models. The features mirror `models/train/features.py` term by term; pre-game
//! strength is the game's pinned Elo difference (`model::ratings`), or the league's home
//! advantage alone while the teams are unknown.

use std::sync::Arc;

use opensports_proto::Side;

use super::Model;
use super::registry::Scored;
use crate::pipeline::state::{Detail, GameState, Status};

/// Most predictions kept per game for outcome scoring.
const MAX_PREDICTIONS: usize = 20_000;

/// A game's win probabilities per model version, until the result is known.
#[derive(Debug, Default)]
pub struct Predictions {
    by_version: Vec<(Arc<Model>, Vec<f32>)>,
}

impl Predictions {
    pub fn record(&mut self, s: Scored) {
        self.push(s.active, s.p);
        if let Some((m, q)) = s.shadow {
            self.push(m, q);
        }
    }

    fn push(&mut self, model: Arc<Model>, p: f32) {
        match self.by_version.iter_mut().find(|(m, _)| Arc::ptr_eq(m, &model)) {
            Some((_, ps)) if ps.len() < MAX_PREDICTIONS => ps.push(p),
            Some(_) => {}
            None => self.by_version.push((model, vec![p])),
        }
    }

    /// The game ended: score every version's predictions (Brier, log loss) and forget them.
    pub fn settle(&mut self, home_won: bool) {
        for (model, ps) in self.by_version.drain(..) {
            model.record_outcome(&ps, home_won);
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
