//! Core game state: score, clock, period and each sport's situation, folded from events.
//! Pure: no I/O, no clock; the same events give the same state, byte for byte.

use opensports_proto::{
    Body, Event, ScoreCorrection, Side, Sport, basketball as bk, f1, football as fb, soccer as sc,
};
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Where a game is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Live,
    Ended,
}

/// A pair of per-team numbers, serialized as `{"home":..,"away":..}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide {
    pub home: u32,
    pub away: u32,
}

impl PerSide {
    fn add(&mut self, side: Side, n: u32) {
        match side {
            Side::Home => self.home += n,
            Side::Away => self.away += n,
        }
    }

    fn take(&mut self, side: Side) {
        match side {
            Side::Home => self.home = self.home.saturating_sub(1),
            Side::Away => self.away = self.away.saturating_sub(1),
        }
    }

    /// The score a `score_correction` sets.
    fn corrected(c: &ScoreCorrection) -> PerSide {
        PerSide { home: u32::from(c.home), away: u32::from(c.away) }
    }
}

/// The state published on `game/{id}/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    pub game: String,
    pub sport: Sport,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    /// Absent for F1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<PerSide>,
    pub period: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<u32>,
    /// Highest seq folded in.
    pub last_seq: u64,
    /// Events missing below `last_seq` (the publisher skipped them; a resend fills them).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing: u64,
    /// Source time of the last event folded in.
    pub ts: i64,
    /// `type` of the last event folded in.
    pub last_event: Cow<'static, str>,
    #[serde(flatten)]
    pub detail: Detail,
}

/// Sport-specific part, serialized under the sport's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    Basketball(Basketball),
    Football(Football),
    Soccer(Soccer),
    F1(F1),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Basketball {
    /// Team fouls in the current period.
    pub team_fouls: PerSide,
    pub timeouts: PerSide,
    pub possession: Option<Side>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Football {
    pub possession: Option<Side>,
    pub down: Option<u8>,
    pub distance: Option<u8>,
    pub yardline_100: Option<u8>,
    pub last_play: Option<LastPlay>,
    /// Timeouts each side has left: 3 per half, 2 in overtime (NFL rules), reset when the
    /// 1st, 3rd and each overtime period starts.
    pub timeouts_remaining: PerSide,
}

/// NFL timeouts per half, and per overtime period.
const FOOTBALL_TIMEOUTS_HALF: u32 = 3;
const FOOTBALL_TIMEOUTS_OT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastPlay {
    pub play_type: fb::PlayType,
    pub result: fb::PlayResult,
    pub yards: i16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Soccer {
    pub shots: PerSide,
    pub shots_on_target: PerSide,
    pub passes: PerSide,
    pub yellow_cards: PerSide,
    pub red_cards: PerSide,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct F1 {
    pub session: Option<String>,
    pub session_kind: Option<f1::SessionKind>,
    /// Leader's completed laps.
    pub lap: u16,
    pub total_laps: Option<u16>,
    pub flag: Option<f1::Flag>,
    /// Cars ordered by position.
    pub cars: Vec<Car>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Car {
    pub driver: String,
    pub position: u8,
    pub lap: u16,
    pub gap_ms: Option<u32>,
    pub interval_ms: Option<u32>,
    pub last_lap_ms: Option<u32>,
    pub best_lap_ms: Option<u32>,
    pub compound: Option<f1::Compound>,
    pub in_pit: bool,
    pub pit_stops: u16,
    /// The first position the feed gave this car: its grid slot when the feed starts before the
    /// race, else its place after the first lap it reports.
    pub grid: u8,
    /// The lap of the car's last pit stop (`pit_out`'s lap), 0 before its first: its tyres
    /// have done `lap - stint_lap` laps.
    #[serde(default)]
    pub stint_lap: u16,
    /// The car's last [`RECENT_LAPS`] lap times, newest first (0: none yet).
    #[serde(default)]
    pub recent_laps_ms: [u32; RECENT_LAPS],
}

/// How many of a car's lap times [`Car::recent_laps_ms`] keeps (the win models' pace).
pub const RECENT_LAPS: usize = 3;

impl GameState {
    pub fn new(game: &str, sport: Sport) -> GameState {
        let detail = match sport {
            Sport::Basketball => Detail::Basketball(Basketball::default()),
            Sport::Football => Detail::Football(Football {
                timeouts_remaining: PerSide { home: FOOTBALL_TIMEOUTS_HALF, away: FOOTBALL_TIMEOUTS_HALF },
                ..Football::default()
            }),
            Sport::Soccer => Detail::Soccer(Soccer::default()),
            Sport::F1 => Detail::F1(F1::default()),
        };
        GameState {
            game: game.into(),
            sport,
            status: Status::Live,
            home: None,
            away: None,
            score: (sport != Sport::F1).then(PerSide::default),
            period: 0,
            clock_ms: None,
            last_seq: 0,
            missing: 0,
            ts: 0,
            last_event: Cow::Borrowed(""),
            detail,
        }
    }

    /// Folds one event in. The caller has checked game, sport and seq order.
    pub fn apply(&mut self, ev: &Event) {
        self.last_seq = self.last_seq.max(ev.seq);
        self.ts = ev.ts;
        self.last_event = Cow::Borrowed(ev.body.kind());
        if ev.clock_ms.is_some() {
            self.clock_ms = ev.clock_ms;
        }
        match (&ev.body, &mut self.detail) {
            (Body::Basketball(e), Detail::Basketball(d)) => apply_basketball(
                e,
                d,
                &mut self.score,
                &mut self.period,
                &mut self.status,
                &mut self.home,
                &mut self.away,
            ),
            (Body::Football(e), Detail::Football(d)) => apply_football(
                e,
                d,
                &mut self.score,
                &mut self.period,
                &mut self.status,
                &mut self.home,
                &mut self.away,
            ),
            (Body::Soccer(e), Detail::Soccer(d)) => apply_soccer(
                e,
                d,
                &mut self.score,
                &mut self.period,
                &mut self.status,
                &mut self.home,
                &mut self.away,
            ),
            (Body::F1(e), Detail::F1(d)) => apply_f1(e, d, &mut self.status),
            // A sport mismatch is refused before it gets here.
            _ => {}
        }
    }

    /// True when `s` still describes this state (so the `games` list need not change).
    pub fn summary_matches(&self, s: &GameSummary) -> bool {
        let (lap, leader) = match &self.detail {
            Detail::F1(d) => (Some(d.lap), d.cars.first().map(|c| c.driver.as_str())),
            _ => (None, None),
        };
        s.status == self.status
            && s.score == self.score
            && s.period == self.period
            && s.lap == lap
            && s.leader.as_deref() == leader
            && s.home == self.home
            && s.away == self.away
    }

    /// The one-line summary listed on the `games` topic.
    pub fn summary(&self) -> GameSummary {
        let (lap, leader) = match &self.detail {
            Detail::F1(d) => (Some(d.lap), d.cars.first().map(|c| c.driver.clone())),
            _ => (None, None),
        };
        GameSummary {
            game: self.game.clone(),
            sport: self.sport,
            status: self.status,
            home: self.home.clone(),
            away: self.away.clone(),
            score: self.score,
            period: self.period,
            lap,
            leader,
        }
    }
}

/// An entry of the `games` topic and `GET /v1/games`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameSummary {
    pub game: String,
    pub sport: Sport,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<PerSide>,
    pub period: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lap: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

fn set_teams(home: &mut Option<String>, away: &mut Option<String>, h: &str, a: &str) {
    *home = Some(h.into());
    *away = Some(a.into());
}

fn apply_basketball(
    e: &bk::Event,
    d: &mut Basketball,
    score: &mut Option<PerSide>,
    period: &mut u8,
    status: &mut Status,
    home: &mut Option<String>,
    away: &mut Option<String>,
) {
    let score = score.get_or_insert_with(PerSide::default);
    match e {
        bk::Event::GameStart { home: h, away: a } => set_teams(home, away, h, a),
        bk::Event::PeriodStart { period: p } => {
            *period = *p;
            d.team_fouls = PerSide::default();
        }
        bk::Event::PeriodEnd { period: p } => *period = *p,
        bk::Event::GameEnd => *status = Status::Ended,
        bk::Event::JumpBall { side } => d.possession = Some(*side),
        bk::Event::Shot { side, made, .. } => {
            if let Some((by, points)) = e.points() {
                score.add(by, u32::from(points));
            }
            if *made {
                d.possession = Some((*side).other());
            }
        }
        bk::Event::FreeThrow { side, made, attempt, of, .. } => {
            if let Some((by, points)) = e.points() {
                score.add(by, u32::from(points));
            }
            if *made && attempt >= of {
                d.possession = Some((*side).other());
            }
        }
        bk::Event::Rebound { side, .. } | bk::Event::Steal { side, .. } => d.possession = Some(*side),
        bk::Event::Turnover { side, .. } => d.possession = Some((*side).other()),
        bk::Event::Foul { side, .. } => d.team_fouls.add(*side, 1),
        bk::Event::Timeout { side: Some(side) } => d.timeouts.add(*side, 1),
        bk::Event::ScoreCorrection(c) => *score = PerSide::corrected(c),
        bk::Event::Timeout { side: None }
        | bk::Event::Assist { .. }
        | bk::Event::Block { .. }
        | bk::Event::Substitution { .. } => {}
    }
}

fn apply_football(
    e: &fb::Event,
    d: &mut Football,
    score: &mut Option<PerSide>,
    period: &mut u8,
    status: &mut Status,
    home: &mut Option<String>,
    away: &mut Option<String>,
) {
    let score = score.get_or_insert_with(PerSide::default);
    match e {
        fb::Event::GameStart { home: h, away: a } => set_teams(home, away, h, a),
        fb::Event::PeriodStart { period: p } => {
            *period = *p;
            let full = match p {
                1 | 3 => FOOTBALL_TIMEOUTS_HALF,
                5.. => FOOTBALL_TIMEOUTS_OT,
                _ => return,
            };
            d.timeouts_remaining = PerSide { home: full, away: full };
        }
        fb::Event::PeriodEnd { period: p } => *period = *p,
        fb::Event::GameEnd => *status = Status::Ended,
        fb::Event::Timeout { side } => d.timeouts_remaining.take(*side),
        fb::Event::ScoreCorrection(c) => *score = PerSide::corrected(c),
        fb::Event::Play(p) => {
            *period = p.quarter;
            d.possession = Some(p.possession);
            d.down = p.down;
            d.distance = p.distance;
            d.yardline_100 = p.yardline_100;
            if let Some(s) = p.scoring {
                score.add(s.side, u32::from(s.points));
            }
            d.last_play = Some(LastPlay {
                play_type: p.play_type,
                result: p.result,
                yards: p.yards,
                desc: p.desc.clone(),
            });
        }
    }
}

fn apply_soccer(
    e: &sc::Event,
    d: &mut Soccer,
    score: &mut Option<PerSide>,
    period: &mut u8,
    status: &mut Status,
    home: &mut Option<String>,
    away: &mut Option<String>,
) {
    let score = score.get_or_insert_with(PerSide::default);
    match e {
        sc::Event::GameStart { home: h, away: a } => set_teams(home, away, h, a),
        sc::Event::PeriodStart { period: p } | sc::Event::PeriodEnd { period: p } => *period = *p,
        sc::Event::GameEnd => *status = Status::Ended,
        sc::Event::Pass { side, .. } => d.passes.add(*side, 1),
        sc::Event::Shot { side, outcome, .. } => {
            d.shots.add(*side, 1);
            if matches!(outcome, sc::ShotOutcome::Goal | sc::ShotOutcome::Saved) {
                d.shots_on_target.add(*side, 1);
            }
        }
        sc::Event::Goal { side, .. } => score.add(*side, 1),
        sc::Event::Card { side, card, .. } => match card {
            sc::Card::Yellow => d.yellow_cards.add(*side, 1),
            sc::Card::SecondYellow | sc::Card::Red => d.red_cards.add(*side, 1),
        },
        sc::Event::ScoreCorrection(c) => *score = PerSide::corrected(c),
        sc::Event::Foul { .. } | sc::Event::Substitution { .. } => {}
    }
}

/// The driver's car, added (at `seen_at`, else last) when the feed first names it.
fn car<'a>(cars: &'a mut Vec<Car>, driver: &str, seen_at: Option<u8>) -> &'a mut Car {
    let idx = match cars.iter().position(|c| c.driver == driver) {
        Some(i) => i,
        None => {
            let position = seen_at.unwrap_or_else(|| u8::try_from(cars.len() + 1).unwrap_or(u8::MAX));
            cars.push(Car {
                driver: driver.into(),
                position,
                lap: 0,
                gap_ms: None,
                interval_ms: None,
                last_lap_ms: None,
                best_lap_ms: None,
                compound: None,
                in_pit: false,
                grid: position,
                pit_stops: 0,
                stint_lap: 0,
                recent_laps_ms: [0; RECENT_LAPS],
            });
            cars.len() - 1
        }
    };
    &mut cars[idx]
}

fn apply_f1(e: &f1::Event, d: &mut F1, status: &mut Status) {
    match e {
        f1::Event::SessionStart { name, session, laps } => {
            d.session = Some(name.clone());
            d.session_kind = Some(*session);
            d.total_laps = *laps;
            d.flag = Some(f1::Flag::Green);
        }
        f1::Event::Lap(l) => {
            let c = car(&mut d.cars, &l.driver, Some(l.position));
            c.lap = l.lap;
            c.position = l.position;
            c.gap_ms = l.gap_ms;
            c.interval_ms = l.interval_ms;
            if let Some(t) = l.lap_ms {
                c.last_lap_ms = Some(t);
                c.best_lap_ms = Some(c.best_lap_ms.map_or(t, |b| b.min(t)));
                c.recent_laps_ms.rotate_right(1);
                c.recent_laps_ms[0] = t;
            }
            d.lap = d.lap.max(l.lap);
            sort_cars(&mut d.cars);
        }
        f1::Event::Position { driver, position, gap_ms } => {
            let c = car(&mut d.cars, driver, Some(*position));
            c.position = *position;
            if gap_ms.is_some() {
                c.gap_ms = *gap_ms;
            }
            sort_cars(&mut d.cars);
        }
        f1::Event::PitIn { driver, .. } => car(&mut d.cars, driver, None).in_pit = true,
        f1::Event::PitOut { driver, compound, lap } => {
            let c = car(&mut d.cars, driver, None);
            if c.in_pit {
                c.pit_stops += 1;
                c.stint_lap = *lap;
            }
            c.in_pit = false;
            c.compound = Some(*compound);
        }
        f1::Event::RaceControl { flag, .. } => {
            if !matches!(flag, f1::Flag::Blue) {
                d.flag = Some(*flag);
            }
        }
        f1::Event::SessionEnd => *status = Status::Ended,
    }
}

/// Stable sort by position; a car that reports a taken position pushes the other down by the
/// order of arrival, which the next lap line corrects.
fn sort_cars(cars: &mut [Car]) {
    cars.sort_by_key(|c| c.position);
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, body: Body) -> Event {
        Event { v: 1, game: "g".into(), seq, ts: seq as i64, clock_ms: Some(1000), body }
    }

    #[test]
    fn football_timeouts_remaining_reset_each_half_and_a_correction_sets_the_score() {
        let mut s = GameState::new("g", Sport::Football);
        let fb = |e| Body::Football(e);
        let remaining = |s: &GameState| match &s.detail {
            Detail::Football(d) => (d.timeouts_remaining.home, d.timeouts_remaining.away),
            _ => unreachable!(),
        };
        assert_eq!(remaining(&s), (3, 3));
        s.apply(&ev(1, fb(fb::Event::PeriodStart { period: 2 })));
        for seq in 2..6 {
            s.apply(&ev(seq, fb(fb::Event::Timeout { side: Side::Home })));
        }
        s.apply(&ev(6, fb(fb::Event::Timeout { side: Side::Away })));
        assert_eq!(remaining(&s), (0, 2), "never below zero");
        s.apply(&ev(7, fb(fb::Event::PeriodStart { period: 3 })));
        assert_eq!(remaining(&s), (3, 3), "a new half");
        s.apply(&ev(8, fb(fb::Event::PeriodStart { period: 5 })));
        assert_eq!(remaining(&s), (2, 2), "overtime");
        let fix = ScoreCorrection { home: 3, away: 0, reason: "touchdown reversed".into() };
        s.score = Some(PerSide { home: 9, away: 0 });
        s.apply(&ev(9, fb(fb::Event::ScoreCorrection(fix))));
        assert_eq!(s.score, Some(PerSide { home: 3, away: 0 }));
        assert_eq!(s.last_event, "score_correction");
    }

    #[test]
    fn basketball_scores_and_possession() {
        let mut s = GameState::new("g", Sport::Basketball);
        let events = [
            Body::Basketball(bk::Event::GameStart { home: "BKN".into(), away: "GSW".into() }),
            Body::Basketball(bk::Event::Shot {
                side: Side::Away,
                player: "30".into(),
                x: 1.0,
                y: 2.0,
                points: 3,
                made: true,
            }),
            Body::Basketball(bk::Event::Shot {
                side: Side::Home,
                player: "7".into(),
                x: 1.0,
                y: 2.0,
                points: 2,
                made: false,
            }),
            Body::Basketball(bk::Event::Rebound { side: Side::Home, player: None, offensive: true }),
            Body::Basketball(bk::Event::FreeThrow {
                side: Side::Home,
                player: "7".into(),
                made: true,
                attempt: 2,
                of: 2,
            }),
            Body::Basketball(bk::Event::Foul { side: Side::Away, player: None, kind: "personal".into() }),
        ];
        for (i, b) in events.into_iter().enumerate() {
            s.apply(&ev(i as u64 + 1, b));
        }
        assert_eq!(s.score, Some(PerSide { home: 1, away: 3 }));
        assert_eq!(s.home.as_deref(), Some("BKN"));
        let Detail::Basketball(d) = &s.detail else { panic!() };
        assert_eq!(d.possession, Some(Side::Away));
        assert_eq!(d.team_fouls.away, 1);
        assert_eq!(s.last_seq, 6);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["basketball"]["team_fouls"]["away"], 1);
        assert_eq!(json["score"]["away"], 3);
    }

    #[test]
    fn f1_orders_cars_and_counts_stops() {
        let mut s = GameState::new("race", Sport::F1);
        let lap = |d: &str, pos, t| {
            Body::F1(f1::Event::Lap(f1::Lap {
                driver: d.into(),
                lap: 1,
                position: pos,
                lap_ms: Some(t),
                s1_ms: None,
                s2_ms: None,
                s3_ms: None,
                gap_ms: None,
                interval_ms: None,
            }))
        };
        s.apply(&ev(1, lap("VER", 2, 91_000)));
        s.apply(&ev(2, lap("HAM", 1, 90_500)));
        s.apply(&ev(3, Body::F1(f1::Event::PitIn { driver: "VER".into(), lap: 1 })));
        s.apply(&ev(
            4,
            Body::F1(f1::Event::PitOut { driver: "VER".into(), lap: 1, compound: f1::Compound::Hard }),
        ));
        let Detail::F1(d) = &s.detail else { panic!() };
        assert_eq!(d.cars.iter().map(|c| c.driver.as_str()).collect::<Vec<_>>(), ["HAM", "VER"]);
        assert_eq!(d.cars[1].pit_stops, 1);
        assert_eq!(d.cars[1].compound, Some(f1::Compound::Hard));
        assert_eq!((d.cars[1].stint_lap, d.cars[0].stint_lap), (1, 0));
        assert_eq!(d.cars[1].recent_laps_ms, [91_000, 0, 0]);
        assert_eq!(s.summary().leader.as_deref(), Some("HAM"));
        assert!(s.score.is_none());
    }
}
