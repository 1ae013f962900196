//! Deterministic simulated games for the four sports: the embedded default data source.
//!
//! A game is generated whole from its seed ([`generate`]): the same seed gives the same
//! events, byte for byte. Each event carries its offset in wall time from kick-off, with the
//! sport's real pace (a basketball game's 48 minutes of clock take ~2 h 15 of wall time, an F1
//! lap ~90 s), so [`publish`] can replay it live, accelerated, or as fast as possible. Event
//! mixes follow the real feeds in `shared/data` (shot, rebound and free-throw rates of NBA
//! play-by-play; ~155 plays of an NFL game; ~1,700 Wyscout events of a soccer match; a lap
//! line per car per lap in F1 live timing).
//!
//! # Layout
//! - this file: the PRNG, [`SimGame`], pacing and publishing.
//! - [`basketball`], [`football`], [`soccer`], [`f1`]: one generator each.

pub mod basketball;
pub mod f1;
pub mod football;
pub mod soccer;

use std::time::Duration;

use opensports_client::{PublishError, Publisher};
use opensports_proto::{Body, Event, Side, Sport};

/// SplitMix64: tiny, fast, and stable forever (no dependency whose stream could change).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next_u64() as usize % items.len()]
    }

    /// Two different items (e.g. home and away teams).
    pub fn two<T: PartialEq + Copy>(&mut self, items: &[T]) -> (T, T) {
        let first = *self.pick(items);
        loop {
            let second = *self.pick(items);
            if second != first || items.len() < 2 {
                return (first, second);
            }
        }
    }

    /// Roughly normal (sum of uniforms), mean 0, standard deviation 1.
    pub fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.f64()).sum::<f64>() * std::f64::consts::SQRT_2
            - 6.0 * std::f64::consts::FRAC_1_SQRT_2
    }
}

/// One generated event with its wall-time offset from the start of the game.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub at_ms: u64,
    pub event: Event,
}

/// A whole simulated game.
#[derive(Debug, Clone)]
pub struct SimGame {
    pub id: String,
    pub sport: Sport,
    pub events: Vec<Timed>,
}

/// Builds events with consecutive seqs for one game.
#[derive(Debug)]
pub(crate) struct Builder {
    game: String,
    start_ts: i64,
    seq: u64,
    pub events: Vec<Timed>,
}

impl Builder {
    pub fn new(game: &str, start_ts: i64) -> Builder {
        Builder { game: game.into(), start_ts, seq: 0, events: Vec::new() }
    }

    pub fn push(&mut self, at_ms: u64, clock_ms: Option<u32>, body: Body) {
        self.seq += 1;
        let event = Event {
            v: opensports_proto::SCHEMA_VERSION,
            game: self.game.clone(),
            seq: self.seq,
            ts: self.start_ts + (at_ms as i64) * 1000,
            clock_ms,
            body,
        };
        self.events.push(Timed { at_ms, event });
    }
}

/// Simulated players' names: home's squad numbers 1..=16 are the first sixteen, away's the
/// rest. Written as a box score prints them ("J.Carter"): no spaces, so a name is a topic level.
const NAMES: [&str; 32] = [
    "J.Carter",
    "M.Okafor",
    "D.Reyes",
    "T.Brooks",
    "A.Lindqvist",
    "K.Mensah",
    "R.Alvarez",
    "S.Novak",
    "L.Fischer",
    "B.Haddad",
    "C.Moreau",
    "E.Tanaka",
    "N.Osei",
    "P.Costa",
    "G.Walsh",
    "H.Kowalski",
    "O.Bennett",
    "V.Ibrahim",
    "F.Duarte",
    "I.Petrov",
    "Y.Park",
    "Z.Adeyemi",
    "W.Holt",
    "Q.Silva",
    "U.Jensen",
    "X.Laurent",
    "D.Nakamura",
    "M.Ferreira",
    "T.Ward",
    "A.Romero",
    "K.Schulz",
    "R.Diallo",
];

/// The name of a simulated side's player by squad number (1-based).
pub(crate) fn player_name(side: Side, n: u64) -> String {
    let i = (n.max(1) - 1) as usize % 16 + if side == Side::Home { 0 } else { 16 };
    NAMES[i].to_owned()
}

/// Game id used by the simulator: `nba-7`, `nfl-7`, `soccer-7`, `f1-7`.
pub fn game_id(sport: Sport, seed: u64) -> String {
    let prefix = match sport {
        Sport::Basketball => "nba",
        Sport::Football => "nfl",
        Sport::Soccer => "soccer",
        Sport::F1 => "f1",
    };
    format!("{prefix}-{seed}")
}

/// Generates one game. `start_ts` is the source time of kick-off (µs since the epoch).
pub fn generate(sport: Sport, seed: u64, start_ts: i64) -> SimGame {
    let id = game_id(sport, seed);
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(sport as u64));
    let events = match sport {
        Sport::Basketball => basketball::generate(&id, &mut rng, start_ts),
        Sport::Football => football::generate(&id, &mut rng, start_ts),
        Sport::Soccer => soccer::generate(&id, &mut rng, start_ts),
        Sport::F1 => f1::generate(&id, &mut rng, start_ts),
    };
    SimGame { id, sport, events }
}

/// Pace of publishing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Wall time divided by this factor (1.0 = real time).
    Factor(f64),
    /// As fast as the server accepts.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches('x').parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Factor(f)),
            _ => Err(format!("speed must be a positive number or `max`, got {s:?}")),
        }
    }
}

/// Publishes several games interleaved by their wall-time offsets, at `speed`. `progress` is
/// called after each event with (sent, total).
pub async fn publish(
    publisher: &mut Publisher,
    games: &[SimGame],
    speed: Speed,
    mut progress: impl FnMut(usize, usize),
) -> Result<(), PublishError> {
    let mut all: Vec<&Timed> = games.iter().flat_map(|g| g.events.iter()).collect();
    all.sort_by_key(|t| t.at_ms);
    let total = all.len();
    let start = tokio::time::Instant::now();
    for (i, t) in all.into_iter().enumerate() {
        if let Speed::Factor(f) = speed {
            let due = start + Duration::from_secs_f64(t.at_ms as f64 / 1000.0 / f);
            tokio::time::sleep_until(due).await;
        }
        publisher.send(&t.event).await?;
        progress(i + 1, total);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::state::GameState;

    fn final_state(g: &SimGame) -> GameState {
        let mut s = GameState::new(&g.id, g.sport);
        for t in &g.events {
            s.apply(&t.event);
        }
        s
    }

    #[test]
    fn same_seed_same_game_and_seqs_are_dense() {
        for sport in Sport::ALL {
            let a = generate(sport, 7, 0);
            let b = generate(sport, 7, 0);
            assert_eq!(a.events, b.events, "{sport}");
            assert_ne!(a.events, generate(sport, 8, 0).events, "{sport}");
            for (i, t) in a.events.iter().enumerate() {
                assert_eq!(t.event.seq, i as u64 + 1);
                assert_eq!(t.event.sport(), sport);
                t.event.validate().unwrap();
            }
            assert!(a.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{sport}: time goes forward");
            assert_eq!(final_state(&a).status, crate::pipeline::state::Status::Ended, "{sport}");
        }
    }

    #[test]
    fn games_look_like_real_ones() {
        // Averages over many seeds land where real games do.
        let n = 40;
        let (mut nba, mut nfl, mut soc, mut nba_events) = (0u32, 0u32, 0u32, 0usize);
        for seed in 0..n {
            let g = generate(Sport::Basketball, seed, 0);
            nba_events += g.events.len();
            let s = final_state(&g).score.unwrap();
            nba += s.home + s.away;
            let s = final_state(&generate(Sport::Football, seed, 0)).score.unwrap();
            nfl += s.home + s.away;
            let s = final_state(&generate(Sport::Soccer, seed, 0)).score.unwrap();
            soc += s.home + s.away;
        }
        let per = |x: u32| f64::from(x) / n as f64;
        assert!((180.0..250.0).contains(&per(nba)), "NBA points per game {}", per(nba));
        assert!((30.0..60.0).contains(&per(nfl)), "NFL points per game {}", per(nfl));
        assert!((1.5..4.0).contains(&per(soc)), "soccer goals per game {}", per(soc));
        // Soccer shots from in front of goal (attacking towards x = 105), inside the pitch.
        for seed in 0..n {
            for t in &generate(Sport::Soccer, seed, 0).events {
                if let opensports_proto::Body::Soccer(opensports_proto::soccer::Event::Shot {
                    x, y, ..
                }) = &t.event.body
                {
                    assert!((75.0..=103.0).contains(x) && (10.0..=58.0).contains(y), "shot at ({x}, {y})");
                }
            }
        }
        let ev = nba_events as f64 / n as f64;
        assert!((350.0..700.0).contains(&ev), "NBA events per game {ev}");
        let f1 = generate(Sport::F1, 1, 0);
        let crate::pipeline::state::Detail::F1(d) = final_state(&f1).detail else { panic!() };
        assert_eq!(d.cars.len(), 20);
        assert!(d.cars.iter().all(|c| c.pit_stops >= 1), "every car stops at least once");
    }
}
