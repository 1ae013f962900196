//! The analyst's ledger: the numbers its notes quote that the core state does not keep (a
//! player's points per period, runs, lead changes, the largest leads, turnovers, win
//! probability before the last play, F1 positions when the safety car came out), folded from the
//! same events in the same order, and the one place a fact's value is looked up ([`Ledger::value`]):
//! templates write their facts with it, and the publisher checks them with it again.

use std::collections::BTreeMap;

use opensports_proto::f1::{self, Flag};
use opensports_proto::football::{Event as Fb, PlayResult, PlayType};
use opensports_proto::soccer::{Card, Event as Sc};
use opensports_proto::{Body, Event, Side};
use serde::{Deserialize, Serialize};

use crate::pipeline::state::{Detail, GameState};

/// Home, away.
pub const SIDES: [Side; 2] = [Side::Home, Side::Away];

pub fn side_name(s: Side) -> &'static str {
    match s {
        Side::Home => "home",
        Side::Away => "away",
    }
}

/// What one event changed, for the templates.
#[derive(Debug, Default)]
pub struct Delta {
    /// A player scored (basketball): who, how many points.
    pub scorer: Option<(String, u32)>,
    /// A made field goal (basketball): who, and how many in a row now.
    pub fg_streak: Option<(String, u32)>,
    /// The side that scored (any sport), when the score went up for one side only.
    pub scored: Option<Side>,
    /// The lead changed hands (a tie in between counts once the other side leads).
    pub lead_change: bool,
    /// A side's largest lead grew (and it is at least 1).
    pub new_max_lead: Option<Side>,
    /// The home win probability before and after this event, when both are known.
    pub wp_move: Option<(f32, f32)>,
    pub turnover: Option<Side>,
    /// A scrimmage play's side and yards, and whether it is the longest of the game.
    pub play: Option<(Side, i16, bool)>,
    /// A soccer goal (not an own goal) and the scorer.
    pub goal: Option<(Side, String)>,
    pub red_card: Option<(Side, String)>,
    /// F1: the session's fastest lap improved.
    pub fastest: bool,
    /// F1: a new leader at the line.
    pub new_leader: bool,
    /// F1: a safety car (or virtual) came out.
    pub safety_car: bool,
    /// A period ended (its number).
    pub period_end: Option<u8>,
    /// The game ended.
    pub ended: bool,
}

/// See the module docs. Kept in the game's snapshot with the rest of the analyst.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Basketball: points per player, per period (index = period - 1).
    pts: BTreeMap<String, Vec<u32>>,
    /// Basketball: field goals made in a row per player (a miss resets it).
    #[serde(default)]
    fg_streak: BTreeMap<String, u32>,
    /// Soccer: goals per player (own goals are not the scorer's).
    goals: BTreeMap<String, u32>,
    /// The score after the last event, per side.
    score: [u32; 2],
    /// The side ahead (none when level or before any score).
    leader: Option<Side>,
    /// Times the lead changed hands.
    lead_changes: u32,
    max_lead: [u32; 2],
    /// The most each side has trailed by since it last led.
    #[serde(default)]
    trailed_by: [u32; 2],
    /// The deficit each side overcame when it last took the lead.
    #[serde(default)]
    overcame: [u32; 2],
    /// Points scored by one side since the other last scored.
    run: Option<(Side, u32)>,
    turnovers: [u32; 2],
    longest_play: i16,
    /// Home win probability after the last event that had one, and the one before it.
    wp: Option<f32>,
    wp_before: Option<f32>,
    /// Soccer: expected goals from the `soccer-shots` plugin's running totals.
    xg: Option<[f64; 2]>,
    /// F1: the lap a safety car came out on and each car's position then.
    sc: Option<(u16, BTreeMap<String, u8>)>,
    /// F1: a safety car is out.
    under_sc: bool,
    /// F1: the leader at the line.
    f1_leader: Option<String>,
    /// F1: the fastest lap (driver, ms, lap).
    fastest: Option<(String, u32, u16)>,
    /// F1: the driver of the last lap line.
    last_lap_driver: Option<String>,
}

impl Ledger {
    /// Folds `ev` in (after the core state applied it: `state` is the state after it). `wp`:
    /// the home win probability the event gave, `xg`: the running xG totals it published.
    pub fn apply(&mut self, ev: &Event, state: &GameState, wp: Option<f32>, xg: Option<[f64; 2]>) -> Delta {
        let mut d = Delta::default();
        if let Some(p) = wp {
            if let Some(before) = self.wp {
                d.wp_move = Some((before, p));
            }
            self.wp_before = self.wp.replace(p);
        }
        if xg.is_some() {
            self.xg = xg;
        }
        self.fold_score(state, &mut d);
        if ev.body.kind() == "period_end" {
            d.period_end = Some(state.period);
        }
        d.ended = matches!(ev.body.kind(), "game_end" | "session_end");
        match &ev.body {
            Body::Basketball(b) => {
                if let opensports_proto::basketball::Event::Shot { player, made, .. } = b {
                    let streak = self.fg_streak.entry(player.clone()).or_default();
                    *streak = if *made { *streak + 1 } else { 0 };
                    d.fg_streak = made.then(|| (player.clone(), *streak));
                }
                if let (Some((_, n)), [Some(player), _]) = (b.points(), b.people()) {
                    let per = self.pts.entry(player.to_string()).or_default();
                    let i = usize::from(state.period.max(1) - 1);
                    if per.len() <= i {
                        per.resize(i + 1, 0);
                    }
                    per[i] += u32::from(n);
                    d.scorer = Some((player.to_string(), u32::from(n)));
                }
            }
            Body::Football(Fb::Play(p)) => {
                if matches!(p.result, PlayResult::Interception | PlayResult::FumbleLost) {
                    self.turnovers[p.possession.index()] += 1;
                    d.turnover = Some(p.possession);
                }
                if matches!(p.play_type, PlayType::Run | PlayType::Pass) {
                    let longest = p.yards > self.longest_play;
                    self.longest_play = self.longest_play.max(p.yards);
                    d.play = Some((p.possession, p.yards, longest));
                }
            }
            Body::Soccer(Sc::Goal { side, player, own_goal }) if !own_goal => {
                *self.goals.entry(player.clone()).or_default() += 1;
                d.goal = Some((*side, player.clone()));
            }
            Body::Soccer(Sc::Card { side, player, card: Card::SecondYellow | Card::Red }) => {
                d.red_card = Some((*side, player.clone()));
            }
            Body::F1(e) => self.fold_f1(e, state, &mut d),
            _ => {}
        }
        d
    }

    fn fold_score(&mut self, state: &GameState, d: &mut Delta) {
        let Some(s) = state.score else { return };
        let now = [s.home, s.away];
        let up = [now[0].saturating_sub(self.score[0]), now[1].saturating_sub(self.score[1])];
        let down = now[0] < self.score[0] || now[1] < self.score[1];
        self.score = now;
        if down || (up[0] > 0 && up[1] > 0) {
            // A correction: nobody's run goes on through it.
            self.run = None;
        } else if let Some(side) = SIDES.into_iter().find(|s| up[s.index()] > 0) {
            let n = up[side.index()];
            self.run = match self.run {
                Some((s, r)) if s == side => Some((side, r + n)),
                _ => Some((side, n)),
            };
            d.scored = Some(side);
        }
        let leader = match now[0].cmp(&now[1]) {
            std::cmp::Ordering::Greater => Some(Side::Home),
            std::cmp::Ordering::Less => Some(Side::Away),
            std::cmp::Ordering::Equal => None,
        };
        if let Some(l) = leader {
            let (lead, trail) = (l.index(), l.other().index());
            if self.leader != Some(l) {
                self.overcame[lead] = self.trailed_by[lead];
            }
            self.trailed_by[lead] = 0;
            self.trailed_by[trail] = self.trailed_by[trail].max(now[lead] - now[trail]);
            if self.leader.is_some_and(|old| old != l) {
                self.lead_changes += 1;
                d.lead_change = true;
            }
            self.leader = Some(l);
            let margin = now[l.index()] - now[l.other().index()];
            if margin > self.max_lead[l.index()] {
                self.max_lead[l.index()] = margin;
                d.new_max_lead = Some(l);
            }
        }
    }

    fn fold_f1(&mut self, e: &f1::Event, state: &GameState, d: &mut Delta) {
        let Detail::F1(f) = &state.detail else { return };
        match e {
            f1::Event::Lap(l) => {
                self.last_lap_driver = Some(l.driver.clone());
                if let Some(ms) = l.lap_ms
                    && self.fastest.as_ref().is_none_or(|(_, best, _)| ms < *best)
                {
                    self.fastest = Some((l.driver.clone(), ms, l.lap));
                    d.fastest = true;
                }
                if l.position == 1 && self.f1_leader.as_deref() != Some(&l.driver) {
                    d.new_leader = self.f1_leader.is_some();
                    self.f1_leader = Some(l.driver.clone());
                }
            }
            f1::Event::RaceControl { flag: Flag::SafetyCar | Flag::VirtualSafetyCar, .. } => {
                if !self.under_sc {
                    let at = f.cars.iter().map(|c| (c.driver.clone(), c.position)).collect();
                    self.sc = Some((f.lap, at));
                    d.safety_car = true;
                }
                self.under_sc = true;
            }
            f1::Event::RaceControl { flag: Flag::Green | Flag::Clear, .. } => self.under_sc = false,
            _ => {}
        }
    }

    /// The value of `stat` (for `subject`, in `period` where it applies) now, or `None` when the
    /// game has no such number. Every fact a note quotes is one of these:
    ///
    /// | stat | subject | value |
    /// |---|---|---|
    /// | `score`, `max_lead`, `overcame`, `run`, `turnovers`, `xg`, `wp`, `wp_before`, `shots`, `shots_on_target`, `red_cards` | `home`/`away` | the side's number (`run`: unanswered points, 0 when the other side scored last; `overcame`: how far it trailed before it last took the lead) |
    /// | `lead_changes`, `longest_play`, `period`, `lap`, `fastest_lap_ms`, `fastest_lap_lap`, `sc_lap`, `max_period_pts`, `max_pts` | none | the game's number (`sc_lap`: the lap the last safety car came out) |
    /// | `pts` | player | points (in `period` when given) |
    /// | `fg_streak` | player | field goals made in a row (a missed field goal resets it; free throws do not count) |
    /// | `goals` | player | goals |
    /// | `pos`, `grid`, `sc_pos`, `best_lap_ms` | driver | place now, first place the feed gave, place when the safety car came out, best lap |
    pub fn value(
        &self,
        state: &GameState,
        stat: &str,
        subject: Option<&str>,
        period: Option<u8>,
    ) -> Option<f64> {
        let side = || match subject? {
            "home" => Some(Side::Home),
            "away" => Some(Side::Away),
            _ => None,
        };
        let f1 = || match &state.detail {
            Detail::F1(f) => Some(f),
            _ => None,
        };
        let car = || f1()?.cars.iter().find(|c| Some(c.driver.as_str()) == subject);
        let soccer = |pick: fn(&crate::pipeline::state::Soccer) -> crate::pipeline::state::PerSide| {
            match &state.detail {
                Detail::Soccer(s) => {
                    side().map(|sd| f64::from(if sd == Side::Home { pick(s).home } else { pick(s).away }))
                }
                _ => None,
            }
        };
        let v = match stat {
            "score" => {
                let s = state.score?;
                f64::from(if side()? == Side::Home { s.home } else { s.away })
            }
            "max_lead" => f64::from(self.max_lead[side()?.index()]),
            "overcame" => f64::from(self.overcame[side()?.index()]),
            "run" => {
                let sd = side()?;
                f64::from(self.run.filter(|(s, _)| *s == sd).map_or(0, |(_, n)| n))
            }
            "turnovers" => f64::from(self.turnovers[side()?.index()]),
            "xg" => self.xg?[side()?.index()],
            "wp" | "wp_before" => {
                // As `game/{id}/winprob` publishes it: rounded to 4 decimals.
                let p = f64::from(if stat == "wp" { self.wp? } else { self.wp_before? });
                let p = if side()? == Side::Home { p } else { 1.0 - p };
                (p * 1e4).round() / 1e4
            }
            "shots" => soccer(|s| s.shots)?,
            "shots_on_target" => soccer(|s| s.shots_on_target)?,
            "red_cards" => soccer(|s| s.red_cards)?,
            "lead_changes" => f64::from(self.lead_changes),
            "longest_play" => f64::from(self.longest_play),
            "period" => f64::from(state.period),
            "lap" => f64::from(f1()?.lap),
            "fastest_lap_ms" => f64::from(self.fastest.as_ref()?.1),
            "fastest_lap_lap" => f64::from(self.fastest.as_ref()?.2),
            "sc_lap" => f64::from(self.sc.as_ref()?.0),
            "max_period_pts" => f64::from(self.pts.values().flatten().copied().max()?),
            "max_pts" => f64::from(self.pts.values().map(|p| p.iter().sum::<u32>()).max()?),
            "pts" => {
                let per = self.pts.get(subject?)?;
                f64::from(match period {
                    Some(p) => per.get(usize::from(p.max(1) - 1)).copied().unwrap_or(0),
                    None => per.iter().sum(),
                })
            }
            "goals" => f64::from(*self.goals.get(subject?)?),
            "fg_streak" => f64::from(*self.fg_streak.get(subject?)?),
            "pos" => f64::from(car()?.position),
            "grid" => f64::from(car()?.grid),
            "sc_pos" => f64::from(*self.sc.as_ref()?.1.get(subject?)?),
            "best_lap_ms" => f64::from(car()?.best_lap_ms?),
            _ => return None,
        };
        Some(v)
    }

    /// The top scorer (basketball) and their points; the first by name on a tie.
    pub fn top_scorer(&self) -> Option<(&str, u32)> {
        let mut best: Option<(&str, u32)> = None;
        for (p, per) in &self.pts {
            let n = per.iter().sum();
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((p, n));
            }
        }
        best
    }

    /// `player`'s points in `period` are more than any player's in any other period, and more
    /// than anyone else's in it.
    pub fn only_best_period(&self, player: &str, period: u8) -> bool {
        let i = usize::from(period.max(1) - 1);
        let Some(&mine) = self.pts.get(player).and_then(|p| p.get(i)) else { return false };
        self.pts
            .iter()
            .all(|(p, per)| per.iter().enumerate().all(|(j, &v)| (p == player && j == i) || v < mine))
    }

    pub fn last_lap_driver(&self) -> Option<&str> {
        self.last_lap_driver.as_deref()
    }

    pub fn run(&self) -> Option<(Side, u32)> {
        self.run
    }

    pub fn lead_changes(&self) -> u32 {
        self.lead_changes
    }

    pub fn overcame(&self, side: Side) -> u32 {
        self.overcame[side.index()]
    }

    pub fn max_lead(&self, side: Side) -> u32 {
        self.max_lead[side.index()]
    }

    pub fn xg(&self) -> Option<[f64; 2]> {
        self.xg
    }

    pub fn fastest(&self) -> Option<&(String, u32, u16)> {
        self.fastest.as_ref()
    }

    pub fn safety_car(&self) -> Option<&(u16, BTreeMap<String, u8>)> {
        self.sc.as_ref()
    }
}
