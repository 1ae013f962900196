//! The directory of games in memory: which games exist, their sport and their shard. Ingest
//! asks it before an event is queued (a known game keeps its sport and shard; a new one needs a
//! free slot and goes to the shard holding the fewest games); the shards remove a game when it
//! is evicted.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use opensports_proto::{Sport, error_code::reason};

use crate::metrics as m;

#[derive(Debug)]
pub struct GameDirectory {
    games: DashMap<String, (Sport, usize)>,
    /// Games per shard.
    per_shard: Vec<AtomicUsize>,
    max_games: usize,
}

impl GameDirectory {
    pub fn new(max_games: usize, shards: usize) -> GameDirectory {
        let per_shard = (0..shards.max(1)).map(|_| AtomicUsize::new(0)).collect();
        GameDirectory { games: DashMap::new(), per_shard, max_games }
    }

    /// A known game's sport and shard.
    pub fn get(&self, game: &str) -> Option<(Sport, usize)> {
        self.games.get(game).map(|e| *e)
    }

    /// Admits an event of `game` with `sport` and returns the game's shard: a known game must
    /// keep its sport; a new one must fit under `max_games` and goes to the shard with the
    /// fewest games (so a handful of games spreads evenly, which hashing does not promise).
    /// Returns the reject code otherwise.
    pub fn admit(&self, game: &str, sport: Sport) -> Result<usize, &'static str> {
        let (known, shard) = match self.get(game) {
            Some(known) => known,
            None => {
                if self.games.len() >= self.max_games {
                    return Err(reason::TOO_MANY_GAMES);
                }
                match self.games.entry(game.to_string()) {
                    Entry::Occupied(e) => *e.get(),
                    Entry::Vacant(e) => {
                        let shard = self.emptiest_shard();
                        self.per_shard[shard].fetch_add(1, Ordering::Relaxed);
                        e.insert((sport, shard));
                        metrics::gauge!(m::PIPELINE_GAMES).set(self.games.len() as f64);
                        (sport, shard)
                    }
                }
            }
        };
        if known == sport { Ok(shard) } else { Err(reason::SPORT_MISMATCH) }
    }

    fn emptiest_shard(&self) -> usize {
        let counts = self.per_shard.iter().map(|n| n.load(Ordering::Relaxed));
        counts.enumerate().min_by_key(|&(_, n)| n).map_or(0, |(i, _)| i)
    }

    /// Forgets a game (evicted after it ended).
    pub fn remove(&self, game: &str) {
        if let Some((_, (_, shard))) = self.games.remove(game) {
            self.per_shard[shard].fetch_sub(1, Ordering::Relaxed);
        }
        metrics::gauge!(m::PIPELINE_GAMES).set(self.games.len() as f64);
    }

    /// Whether `game` is in memory.
    pub fn contains(&self, game: &str) -> bool {
        self.games.contains_key(game)
    }

    pub fn len(&self) -> usize {
        self.games.len()
    }

    /// Every game in memory with its sport.
    pub fn list(&self) -> Vec<(String, Sport)> {
        self.games.iter().map(|e| (e.key().clone(), e.value().0)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_game_keeps_its_sport_and_shard_and_slots_are_bounded() {
        let d = GameDirectory::new(2, 2);
        let a = d.admit("a", Sport::Basketball).unwrap();
        assert_eq!(d.admit("a", Sport::Basketball), Ok(a));
        assert_eq!(d.admit("a", Sport::Soccer), Err(reason::SPORT_MISMATCH));
        assert_eq!(d.admit("b", Sport::F1), Ok(1 - a), "the other shard is emptier");
        assert_eq!(d.admit("c", Sport::F1), Err(reason::TOO_MANY_GAMES));
        d.remove("a");
        assert_eq!(d.admit("c", Sport::F1), Ok(a), "a's shard is free again");
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("c"), Some((Sport::F1, a)));
    }

    #[test]
    fn games_spread_evenly_over_shards() {
        let d = GameDirectory::new(100, 4);
        let mut per = [0; 4];
        for g in 0..12 {
            per[d.admit(&format!("lt-{g}"), Sport::Basketball).unwrap()] += 1;
        }
        assert_eq!(per, [3, 3, 3, 3]);
    }
}
