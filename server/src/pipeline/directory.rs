//! The directory of games in memory: which games exist and their sport. Ingest asks it before
//! an event is queued (a known game keeps its sport; a new one needs a free slot); the shards
//! remove a game when it is evicted.

use dashmap::DashMap;
use opensports_proto::{Sport, error_code::reason};

use crate::metrics as m;

#[derive(Debug)]
pub struct GameDirectory {
    sports: DashMap<String, Sport>,
    max_games: usize,
}

impl GameDirectory {
    pub fn new(max_games: usize) -> GameDirectory {
        GameDirectory { sports: DashMap::new(), max_games }
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

    /// Forgets a game (evicted after it ended).
    pub fn remove(&self, game: &str) {
        self.sports.remove(game);
        metrics::gauge!(m::PIPELINE_GAMES).set(self.sports.len() as f64);
    }

    /// Whether `game` is in memory.
    pub fn contains(&self, game: &str) -> bool {
        self.sports.contains_key(game)
    }

    pub fn len(&self) -> usize {
        self.sports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sports.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_keeps_its_sport_and_slots_are_bounded() {
        let d = GameDirectory::new(2);
        assert_eq!(d.admit("a", Sport::Basketball), Ok(()));
        assert_eq!(d.admit("a", Sport::Basketball), Ok(()));
        assert_eq!(d.admit("a", Sport::Soccer), Err(reason::SPORT_MISMATCH));
        assert_eq!(d.admit("b", Sport::F1), Ok(()));
        assert_eq!(d.admit("c", Sport::F1), Err(reason::TOO_MANY_GAMES));
        d.remove("a");
        assert_eq!(d.admit("c", Sport::F1), Ok(()));
        assert_eq!(d.len(), 2);
    }
}
