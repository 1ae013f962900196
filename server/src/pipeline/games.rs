//! The directory of games: which games exist and their sport (checked by ingest before an
//! event is queued), and the summaries published on the `games` topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use opensports_proto::{Sport, error_code::reason, topic};
use parking_lot::Mutex;
use serde::Serialize;

use super::state::GameSummary;
use crate::fanout::Fanout;
use crate::metrics as m;

#[derive(Debug)]
pub struct GamesIndex {
    sports: DashMap<String, Sport>,
    /// Summaries by game id; publishing happens under this lock so `games` messages are in
    /// the same order as the changes they describe.
    summaries: Mutex<BTreeMap<String, GameSummary>>,
    fanout: Arc<Fanout>,
    max_games: usize,
}

#[derive(Serialize)]
struct GamesList<'a> {
    games: Vec<&'a GameSummary>,
}

impl GamesIndex {
    pub fn new(fanout: Arc<Fanout>, max_games: usize) -> GamesIndex {
        GamesIndex { sports: DashMap::new(), summaries: Mutex::new(BTreeMap::new()), fanout, max_games }
    }

    /// Admits an event of `game` with `sport`: known games must keep their sport, new games
    /// must fit under `max_games`. Returns the reject code otherwise.
    pub fn admit(&self, game: &str, sport: Sport) -> Result<(), &'static str> {
        if let Some(known) = self.sports.get(game) {
            return if *known == sport { Ok(()) } else { Err(reason::SPORT_MISMATCH) };
        }
        if self.sports.len() >= self.max_games {
            return Err(reason::TOO_MANY_GAMES);
        }
        let known = *self.sports.entry(game.to_string()).or_insert(sport);
        metrics::gauge!(m::PIPELINE_GAMES).set(self.sports.len() as f64);
        if known == sport { Ok(()) } else { Err(reason::SPORT_MISMATCH) }
    }

    /// Records a changed summary and publishes the whole list on `games`.
    pub fn update(&self, summary: GameSummary, ts: i64) {
        let mut summaries = self.summaries.lock();
        summaries.insert(summary.game.clone(), summary);
        self.publish(&summaries, ts);
    }

    /// Forgets a game (evicted after it ended).
    pub fn remove(&self, game: &str, ts: i64) {
        self.sports.remove(game);
        metrics::gauge!(m::PIPELINE_GAMES).set(self.sports.len() as f64);
        let mut summaries = self.summaries.lock();
        if summaries.remove(game).is_some() {
            self.publish(&summaries, ts);
        }
    }

    /// The current list as JSON, for `GET /v1/games`.
    pub fn list_json(&self) -> String {
        let summaries = self.summaries.lock();
        serde_json::to_string(&GamesList { games: summaries.values().collect() })
            .unwrap_or_else(|_| r#"{"games":[]}"#.into())
    }

    fn publish(&self, summaries: &BTreeMap<String, GameSummary>, ts: i64) {
        let Some(t) = self.fanout.topic(topic::GAMES) else { return };
        match serde_json::to_vec(&GamesList { games: summaries.values().collect() }) {
            Ok(data) => {
                self.fanout.publish(&t, ts, &data);
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize the games list"),
        }
    }
}
