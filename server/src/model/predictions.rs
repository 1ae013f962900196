//! Outcome scoring of win-probability models: every version's predictions for a game, kept
//! until the result is known, then scored (Brier, log loss) per version.

use std::sync::Arc;

use super::Model;
use super::registry::Scored;

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

    /// The predictions kept, by model name and version (a game's state snapshot).
    pub fn export(&self) -> Vec<(String, String, Vec<f32>)> {
        self.by_version
            .iter()
            .map(|(m, ps)| (m.spec.name.clone(), m.spec.version.clone(), ps.clone()))
            .collect()
    }

    /// Predictions from [`Predictions::export`]; those of a version no longer loaded are
    /// dropped (they cannot be scored).
    pub fn import(saved: Vec<(String, String, Vec<f32>)>, models: &super::ModelRegistry) -> Predictions {
        let by_version = saved
            .into_iter()
            .filter_map(|(name, version, ps)| Some((models.version_of(&name, &version)?, ps)))
            .collect();
        Predictions { by_version }
    }

    /// The game ended: score every version's predictions (Brier, log loss) and forget them.
    pub fn settle(&mut self, home_won: bool) {
        for (model, ps) in self.by_version.drain(..) {
            model.record_outcome(&ps, home_won);
        }
    }
}
