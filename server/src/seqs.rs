//! Per-game sequencing: which `(game, seq)` are new, which fill a gap, which are retries of
//! events already accepted. Pure and lock-per-game (a `DashMap` entry). Ingest owns the
//! [`Sequencer`]; recovery feeds it the logged seqs (or a snapshot's [`GameSeq`]) and the
//! pipeline's eviction hook forgets a game. The shards keep a [`GameSeq`] of the seqs they
//! folded in, which is what a state snapshot covers (`pipeline::snapshot`).
//!
//! The tracker is exact: a seq it calls [`Seq::Duplicate`] was accepted (so it is in the log
//! or queued for it), which is what lets a retry be acked. It never forgets a missing range to
//! make room: an event that would open one range too many ([`Seq::TooManyGaps`]) or jump
//! further than `max_jump` past the highest seq ([`Seq::TooFar`]) is refused instead, and
//! nothing is recorded. Only recovery of a log written before these rules may overflow; it
//! then raises a floor below which a seq is [`Seq::Unknown`] (refused, never acked).

use dashmap::DashMap;

/// Missing ranges remembered per game; an event that would open one more is refused.
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
    /// Refused, not recorded: more than `max_jump` past the highest seq (`seq_too_far`).
    TooFar,
    /// Refused, not recorded: it would leave more than [`MAX_GAPS_PER_GAME`] ranges missing
    /// (`too_many_gaps`).
    TooManyGaps,
    /// Refused, not recorded: at or below the floor of ranges forgotten when an old log was
    /// recovered; whether it was accepted is not known (`seq_unknown`).
    Unknown,
}

impl Seq {
    /// The reject code of a refused seq.
    pub fn refused(self) -> Option<&'static str> {
        use opensports_proto::error_code::reason;
        match self {
            Seq::TooFar => Some(reason::SEQ_TOO_FAR),
            Seq::TooManyGaps => Some(reason::TOO_MANY_GAPS),
            Seq::Unknown => Some(reason::SEQ_UNKNOWN),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct GameSeq {
    /// Highest seq accepted.
    pub high: u64,
    /// Ranges below `high` never received, oldest first, inclusive.
    pub missing: Vec<(u64, u64)>,
    /// Seqs at or below this are of unknown status (see [`Seq::Unknown`]); 0 normally.
    pub floor: u64,
    /// `(seq, fingerprint of its frame)` of the last [`RECENT`] events accepted this run, to
    /// tell a retry from a different event sent under a seq already taken. Not snapshotted.
    #[serde(skip)]
    pub(crate) recent: std::collections::VecDeque<(u64, u64)>,
}

/// Equal when they cover the same seqs (the fingerprints are a cache of this run).
impl PartialEq for GameSeq {
    fn eq(&self, other: &Self) -> bool {
        (self.high, &self.missing, self.floor) == (other.high, &other.missing, other.floor)
    }
}

impl Eq for GameSeq {}

/// Accepted events whose fingerprints a game keeps (16 bytes each).
pub const RECENT: usize = 256;

impl GameSeq {
    /// Classifies `seq` and records it as accepted unless it is a duplicate or refused.
    pub fn accept(&mut self, seq: u64, max_jump: u64) -> Seq {
        if seq > self.high {
            let prev = self.high;
            if seq == prev + 1 {
                self.high = seq;
                return Seq::New;
            }
            if seq - prev > max_jump {
                return Seq::TooFar;
            }
            if self.missing.len() >= MAX_GAPS_PER_GAME {
                return Seq::TooManyGaps;
            }
            self.high = seq;
            self.missing.push((prev + 1, seq - 1));
            return Seq::Gap { from: prev + 1, to: seq - 1 };
        }
        if seq <= self.floor {
            return Seq::Unknown;
        }
        self.fill(seq)
    }

    /// Records a seq read back from the log (recovery): always recorded. A log written before
    /// the gap rule may leave more ranges missing than are remembered: the oldest is then
    /// dropped and the floor raised over it (counted), never turned into "accepted".
    pub fn restore(&mut self, seq: u64) {
        if seq > self.high {
            let prev = self.high;
            self.high = seq;
            if seq == prev + 1 {
                return;
            }
            if self.missing.len() >= MAX_GAPS_PER_GAME {
                let (_, to) = self.missing.remove(0);
                self.floor = self.floor.max(to);
                metrics::counter!(crate::metrics::STORE_GAPS_FORGOTTEN_TOTAL).increment(1);
            }
            self.missing.push((prev + 1, seq - 1));
        } else if seq > self.floor {
            self.fill(seq);
        }
    }

    fn fill(&mut self, seq: u64) -> Seq {
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
#[derive(Debug)]
pub struct Sequencer {
    games: DashMap<String, GameSeq>,
    /// `ingest.max_seq_jump`.
    max_jump: u64,
}

impl Default for Sequencer {
    fn default() -> Self {
        Sequencer::new(crate::config::DEFAULT_MAX_SEQ_JUMP)
    }
}

impl Sequencer {
    pub fn new(max_jump: u64) -> Sequencer {
        Sequencer { games: DashMap::new(), max_jump: max_jump.max(1) }
    }

    /// `ingest.max_seq_jump`.
    pub fn max_jump(&self) -> u64 {
        self.max_jump
    }

    /// Classifies and records `seq`; also returns the events now missing for the game.
    pub fn accept(&self, game: &str, seq: u64) -> (Seq, u64) {
        self.with(game, |g, max_jump| g.accept(seq, max_jump))
    }

    /// [`Sequencer::accept`] for a publisher's frame; also says, for a duplicate, whether its
    /// frame differs from the accepted one's (`fingerprint`: a hash of the frame; known for the
    /// game's last [`RECENT`] frames accepted this run).
    pub fn accept_frame(&self, game: &str, seq: u64, fingerprint: u64) -> ((Seq, bool), u64) {
        self.with(game, |g, max_jump| {
            let verdict = g.accept(seq, max_jump);
            let mut differs = false;
            match verdict {
                Seq::New | Seq::Gap { .. } | Seq::Fill => {
                    if g.recent.len() == RECENT {
                        g.recent.pop_front();
                    }
                    g.recent.push_back((seq, fingerprint));
                }
                Seq::Duplicate => {
                    differs = g.recent.iter().any(|&(s, f)| s == seq && f != fingerprint);
                }
                _ => {}
            }
            (verdict, differs)
        })
    }

    /// Sets a game's sequencing from a state snapshot (recovery, before the events after it
    /// are replayed with [`Sequencer::restore`]).
    pub fn seed(&self, game: &str, seqs: GameSeq) {
        self.games.insert(game.to_string(), seqs);
    }

    /// Records a seq read back from the log (see [`GameSeq::restore`]); returns the events now
    /// missing for the game.
    pub fn restore(&self, game: &str, seq: u64) -> u64 {
        self.with(game, |g, _| g.restore(seq)).1
    }

    fn with<T>(&self, game: &str, f: impl FnOnce(&mut GameSeq, u64) -> T) -> (T, u64) {
        match self.games.get_mut(game) {
            Some(mut g) => (f(&mut g, self.max_jump), g.missing_count()),
            None => {
                let mut g = GameSeq::default();
                let r = f(&mut g, self.max_jump);
                let missing = g.missing_count();
                // A refused first seq leaves nothing behind (no entry for a game never admitted).
                if g.high > 0 {
                    self.games.insert(game.to_string(), g);
                }
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

    const JUMP: u64 = 1_000;

    #[test]
    fn new_gap_fill_duplicate() {
        let mut g = GameSeq::default();
        assert_eq!(g.accept(1, JUMP), Seq::New);
        assert_eq!(g.accept(2, JUMP), Seq::New);
        assert_eq!(g.accept(2, JUMP), Seq::Duplicate);
        assert_eq!(g.accept(6, JUMP), Seq::Gap { from: 3, to: 5 });
        assert_eq!(g.missing_count(), 3);
        assert_eq!(g.accept(4, JUMP), Seq::Fill);
        assert_eq!(g.missing, vec![(3, 3), (5, 5)]);
        assert_eq!(g.accept(4, JUMP), Seq::Duplicate);
        assert_eq!(g.accept(3, JUMP), Seq::Fill);
        assert_eq!(g.accept(5, JUMP), Seq::Fill);
        assert!(g.missing.is_empty());
        assert_eq!(g.accept(1, JUMP), Seq::Duplicate);
        assert_eq!(g.accept(7, JUMP), Seq::New);
    }

    #[test]
    fn a_gap_too_many_is_refused_and_no_missing_seq_ever_becomes_a_duplicate() {
        let mut g = GameSeq::default();
        assert_eq!(g.accept(10, JUMP), Seq::Gap { from: 1, to: 9 });
        // Widely spaced seqs (the attack of issue 27 finding 1): each opens a range.
        let mut s = 10;
        for _ in 1..MAX_GAPS_PER_GAME {
            s += 2;
            assert!(matches!(g.accept(s, JUMP), Seq::Gap { .. }));
        }
        assert_eq!(g.missing.len(), MAX_GAPS_PER_GAME);
        assert_eq!(g.accept(s + 2, JUMP), Seq::TooManyGaps, "one range too many is refused");
        assert_eq!(g.high, s, "a refused seq is not recorded");
        // Every seq of the first range is still missing: each is a fill, never a duplicate.
        for seq in 1..=9 {
            assert_eq!(g.accept(seq, JUMP), Seq::Fill, "seq {seq}");
        }
        assert_eq!(g.accept(s + 1, JUMP), Seq::New, "the next seq is still welcome");
    }

    #[test]
    fn a_jump_past_max_is_refused() {
        let mut g = GameSeq::default();
        assert_eq!(g.accept(JUMP + 1, JUMP), Seq::TooFar, "a first seq counts from 0");
        assert_eq!(g.accept(JUMP, JUMP), Seq::Gap { from: 1, to: JUMP - 1 });
        assert_eq!(g.accept(2 * JUMP + 1, JUMP), Seq::TooFar);
        assert_eq!(g.accept(2 * JUMP, JUMP), Seq::Gap { from: JUMP + 1, to: 2 * JUMP - 1 });
        let s = Sequencer::new(JUMP);
        assert_eq!(s.accept("g", JUMP + 5), (Seq::TooFar, 0));
        assert!(!s.knows("g"), "a refused first seq leaves no game behind");
    }

    #[test]
    fn recovery_of_an_overflowing_log_raises_a_floor_instead_of_calling_seqs_duplicates() {
        let mut g = GameSeq::default();
        let mut s = 0;
        for _ in 0..MAX_GAPS_PER_GAME + 3 {
            s += 2;
            g.restore(s);
        }
        assert_eq!(g.missing.len(), MAX_GAPS_PER_GAME);
        assert_eq!(g.floor, 5, "ranges 1, 3 and 5 were dropped");
        for seq in [1, 3, 5, 2, 4] {
            assert_eq!(g.accept(seq, JUMP), Seq::Unknown, "seq {seq}");
        }
        assert_eq!(g.accept(7, JUMP), Seq::Fill);
        assert_eq!(g.accept(8, JUMP), Seq::Duplicate);
    }

    /// A retry with the same frame is a plain duplicate; another frame under a taken seq is a
    /// conflict, while its fingerprint is still kept (the last `RECENT` accepted).
    #[test]
    fn a_different_frame_under_a_taken_seq_is_a_conflict() {
        let s = Sequencer::new(JUMP);
        for seq in 1..=300 {
            assert_eq!(s.accept_frame("g", seq, seq * 10).0, (Seq::New, false));
        }
        assert_eq!(s.accept_frame("g", 299, 2990).0, (Seq::Duplicate, false));
        assert_eq!(s.accept_frame("g", 299, 7).0, (Seq::Duplicate, true));
        // Older than the kept fingerprints: a duplicate, nothing to compare with.
        assert_eq!(s.accept_frame("g", 3, 7).0, (Seq::Duplicate, false));
        assert_eq!(s.accept("g", 301), (Seq::New, 0));
    }
}
