//! Per-game sequencing at ingest: which `(game, seq)` are new, which fill a gap, which are
//! retries of events already accepted. Pure and lock-per-game (a `DashMap` entry). Ingest owns
//! it; recovery feeds it the logged seqs and the pipeline's eviction hook forgets a game.

use dashmap::DashMap;

/// Missing ranges remembered per game; older ones are forgotten (and counted) beyond this.
pub const MAX_GAPS_PER_GAME: usize = 64;

/// What an incoming `(game, seq)` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seq {
    /// The next seq, or beyond the highest one seen with nothing missing in between.
    New,
    /// Beyond the highest seq, leaving `from..=to` missing.
    Gap { from: u64, to: u64 },
    /// Inside a missing range: accepted, the range shrinks.
    Fill,
    /// Already accepted (a retry): dropped, but acked once what it duplicates is durable.
    Duplicate,
}

#[derive(Debug, Default, Clone)]
pub struct GameSeq {
    /// Highest seq accepted.
    pub high: u64,
    /// Ranges below `high` never received, oldest first, inclusive.
    pub missing: Vec<(u64, u64)>,
}

impl GameSeq {
    /// Classifies `seq` and records it as accepted unless it is a duplicate.
    pub fn accept(&mut self, seq: u64) -> Seq {
        if seq > self.high {
            let prev = self.high;
            self.high = seq;
            if seq == prev + 1 {
                return Seq::New;
            }
            if self.missing.len() >= MAX_GAPS_PER_GAME {
                self.missing.remove(0);
                metrics::counter!(crate::metrics::STORE_GAPS_FORGOTTEN_TOTAL).increment(1);
            }
            self.missing.push((prev + 1, seq - 1));
            return Seq::Gap { from: prev + 1, to: seq - 1 };
        }
        let Some(i) = self.missing.iter().position(|&(a, b)| a <= seq && seq <= b) else {
            return Seq::Duplicate;
        };
        let (a, b) = self.missing[i];
        match (seq == a, seq == b) {
            (true, true) => {
                self.missing.remove(i);
            }
            (true, false) => self.missing[i].0 = seq + 1,
            (false, true) => self.missing[i].1 = seq - 1,
            (false, false) => {
                self.missing[i].1 = seq - 1;
                self.missing.insert(i + 1, (seq + 1, b));
            }
        }
        Seq::Fill
    }

    /// Events missing below `high`.
    pub fn missing_count(&self) -> u64 {
        self.missing.iter().map(|(a, b)| b - a + 1).sum()
    }
}

/// Every game's sequencing state.
#[derive(Debug, Default)]
pub struct Sequencer {
    games: DashMap<String, GameSeq>,
}

impl Sequencer {
    /// Classifies and records `seq`; also returns the events now missing for the game.
    pub fn accept(&self, game: &str, seq: u64) -> (Seq, u64) {
        match self.games.get_mut(game) {
            Some(mut g) => (g.accept(seq), g.missing_count()),
            None => {
                let mut g = GameSeq::default();
                let r = g.accept(seq);
                let missing = g.missing_count();
                self.games.insert(game.to_string(), g);
                (r, missing)
            }
        }
    }

    /// Whether any seq of `game` was accepted.
    pub fn knows(&self, game: &str) -> bool {
        self.games.contains_key(game)
    }

    /// Forgets a game (it left memory; its events stay in the log).
    pub fn forget(&self, game: &str) {
        self.games.remove(game);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_gap_fill_duplicate() {
        let mut g = GameSeq::default();
        assert_eq!(g.accept(1), Seq::New);
        assert_eq!(g.accept(2), Seq::New);
        assert_eq!(g.accept(2), Seq::Duplicate);
        assert_eq!(g.accept(6), Seq::Gap { from: 3, to: 5 });
        assert_eq!(g.missing_count(), 3);
        assert_eq!(g.accept(4), Seq::Fill);
        assert_eq!(g.missing, vec![(3, 3), (5, 5)]);
        assert_eq!(g.accept(4), Seq::Duplicate);
        assert_eq!(g.accept(3), Seq::Fill);
        assert_eq!(g.accept(5), Seq::Fill);
        assert!(g.missing.is_empty());
        assert_eq!(g.accept(1), Seq::Duplicate);
        assert_eq!(g.accept(7), Seq::New);
    }

    #[test]
    fn gaps_are_bounded() {
        let mut g = GameSeq::default();
        for i in 0..(MAX_GAPS_PER_GAME as u64 + 10) {
            g.accept(i * 2 + 2);
        }
        assert_eq!(g.missing.len(), MAX_GAPS_PER_GAME);
        // The oldest gaps were forgotten: their seqs now count as duplicates.
        assert_eq!(g.accept(1), Seq::Duplicate);
    }
}
