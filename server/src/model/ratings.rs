//! Team strength for win probability: Elo ratings, seeded from `models/ratings.json` (computed
//! by `models/train/ratings.py` from the training tables) and kept current as games end, in
//! the durable log's `ratings` table.
//!
//! A game's pre-game difference is pinned when its teams are first known and stored with the
//! game, and a result is applied once per game (also stored): replaying a game after a restart
//! reproduces the same win probabilities and does not count its result twice.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use dashmap::DashMap;
use opensports_proto::Sport;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// A rating before any result.
pub const INITIAL: f64 = 1500.0;

/// Elo parameters of one sport, as in training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub k: f64,
    pub home_advantage: f64,
}

impl Params {
    pub fn of(sport: Sport) -> Option<Params> {
        match sport {
            Sport::Basketball => Some(Params { k: 20.0, home_advantage: 100.0 }),
            Sport::Football => Some(Params { k: 20.0, home_advantage: 55.0 }),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct SeedSport {
    teams: HashMap<String, f64>,
}

#[derive(Debug, Deserialize)]
struct SeedFile {
    basketball: Option<SeedSport>,
    football: Option<SeedSport>,
}

/// Every team's rating and each game's pinned pre-game difference.
#[derive(Debug)]
pub struct Ratings {
    teams: RwLock<HashMap<String, f64>>,
    pinned: DashMap<String, f64>,
    settled: DashMap<String, ()>,
    store: Option<Arc<Store>>,
}

/// Key of a team in the map and the `ratings` table: `basketball/GSW`.
fn key(sport: Sport, team: &str) -> String {
    format!("{sport}/{team}")
}

impl Ratings {
    /// Seeds from `models_dir/ratings.json` (absent: every team starts at 1500), then applies
    /// what the log holds (ratings kept current by this server).
    pub fn load(models_dir: &Path, store: Option<Arc<Store>>) -> Ratings {
        let mut teams = HashMap::new();
        let path = models_dir.join("ratings.json");
        match std::fs::read(&path).map(|b| serde_json::from_slice::<SeedFile>(&b)) {
            Ok(Ok(seed)) => {
                for (sport, s) in [(Sport::Basketball, seed.basketball), (Sport::Football, seed.football)] {
                    for (team, r) in s.map(|s| s.teams).unwrap_or_default() {
                        teams.insert(key(sport, &team), r);
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "bad ratings seed; all teams start at 1500")
            }
            Err(_) => tracing::info!(path = %path.display(), "no ratings seed; all teams start at 1500"),
        }
        if let Some(s) = &store {
            match s.ratings() {
                Ok(kept) => teams.extend(kept),
                Err(e) => tracing::error!(error = %e, "cannot read ratings from the log; using the seed"),
            }
        }
        Ratings { teams: RwLock::new(teams), pinned: DashMap::new(), settled: DashMap::new(), store }
    }

    /// The game's pre-game Elo difference, home minus away, home advantage included, in rating
    /// points: pinned on first call (and stored with the game).
    pub fn pregame(&self, game: &str, sport: Sport, home: &str, away: &str) -> Option<f64> {
        if let Some(d) = self.pinned.get(game) {
            return Some(*d);
        }
        let p = Params::of(sport)?;
        let diff = {
            let t = self.teams.read();
            t.get(&key(sport, home)).copied().unwrap_or(INITIAL) + p.home_advantage
                - t.get(&key(sport, away)).copied().unwrap_or(INITIAL)
        };
        self.pinned.insert(game.to_string(), diff);
        if let Some(s) = &self.store {
            s.pregame(game, diff);
        }
        Some(diff)
    }

    /// Applies a result once per game: `home_score` is 1 (home won), 0.5 (tie) or 0.
    pub fn settle(&self, game: &str, sport: Sport, home: &str, away: &str, home_score: f64) {
        let Some(p) = Params::of(sport) else { return };
        if self.settled.insert(game.to_string(), ()).is_some() {
            return;
        }
        let (kh, ka) = (key(sport, home), key(sport, away));
        let updated = {
            let mut t = self.teams.write();
            let (rh, ra) = (t.get(&kh).copied().unwrap_or(INITIAL), t.get(&ka).copied().unwrap_or(INITIAL));
            let expected = 1.0 / (1.0 + 10f64.powf(-(rh + p.home_advantage - ra) / 400.0));
            let delta = p.k * (home_score - expected);
            t.insert(kh.clone(), rh + delta);
            t.insert(ka.clone(), ra - delta);
            vec![(kh, rh + delta), (ka, ra - delta)]
        };
        if let Some(s) = &self.store {
            s.rated(game, updated);
        }
    }

    /// Recovery: the game's stored pre-game difference and whether its result was applied.
    pub fn restore_game(&self, game: &str, elo_diff: Option<f64>, rated: bool) {
        if let Some(d) = elo_diff {
            self.pinned.insert(game.to_string(), d);
        }
        if rated {
            self.settled.insert(game.to_string(), ());
        }
    }

    /// Forgets a game's pin (it left memory).
    pub fn forget(&self, game: &str) {
        self.pinned.remove(game);
        self.settled.remove(game);
    }

    /// A team's current rating.
    pub fn get(&self, sport: Sport, team: &str) -> f64 {
        self.teams.read().get(&key(sport, team)).copied().unwrap_or(INITIAL)
    }

    /// `{"basketball": {"GSW": 1583.9, ...}, "football": {...}}`, for `GET /v1/ratings`.
    pub fn report(&self) -> serde_json::Value {
        let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>> =
            Default::default();
        for (k, r) in self.teams.read().iter() {
            if let Some((sport, team)) = k.split_once('/') {
                out.entry(sport.to_string()).or_default().insert(team.to_string(), (r * 10.0).round() / 10.0);
            }
        }
        serde_json::json!(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_apply_once_and_pregame_is_pinned() {
        let r = Ratings::load(Path::new("/nonexistent"), None);
        let before = r.pregame("g1", Sport::Basketball, "GSW", "BKN");
        assert_eq!(before, Some(100.0), "equal teams: home advantage only");
        r.settle("g1", Sport::Basketball, "GSW", "BKN", 0.0);
        // Away win against expectation 1/(1+10^(-0.25)) = 0.640: home loses 20 * 0.640.
        let loss = 20.0 / (1.0 + 10f64.powf(-0.25));
        assert!((r.get(Sport::Basketball, "GSW") - (INITIAL - loss)).abs() < 1e-9);
        assert!((r.get(Sport::Basketball, "BKN") - (INITIAL + loss)).abs() < 1e-9);
        r.settle("g1", Sport::Basketball, "GSW", "BKN", 0.0);
        assert!((r.get(Sport::Basketball, "BKN") - (INITIAL + loss)).abs() < 1e-9, "once per game");
        assert_eq!(r.pregame("g1", Sport::Basketball, "GSW", "BKN"), before, "pinned");
        let after = r.pregame("g2", Sport::Basketball, "GSW", "BKN").unwrap_or(0.0);
        assert!((after - (100.0 - 2.0 * loss)).abs() < 1e-9);
        assert_eq!(r.pregame("g3", Sport::Soccer, "A", "B"), None);
    }

    #[test]
    fn the_shipped_seed_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let r = Ratings::load(&dir, None);
        let gsw = r.get(Sport::Basketball, "GSW");
        assert!(gsw != INITIAL && (1200.0..1800.0).contains(&gsw), "{gsw}");
        assert!(r.get(Sport::Football, "NE") != INITIAL);
    }
}
