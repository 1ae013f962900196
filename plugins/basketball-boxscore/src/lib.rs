//! `basketball-boxscore`: the live box score.
//!
//! Outputs (topic suffix → JSON), each emitted when it changes:
//! - `player/{id}`: `{player, side, pts, fgm, fga, fg3m, fg3a, ftm, fta, oreb, dreb, ast, stl,
//!   blk, tov, pf, plus_minus, game_score}`. Plus-minus counts points while the player is on
//!   the court, as far as the feed shows it (a player is on court from the first event naming
//!   them until substituted out).
//! - `team/{home|away}`: the same counting stats summed for the team; its `plus_minus` is the
//!   team's margin, and `plus_minus_unattributed` the points × on-court slots the feed has not
//!   named (before the first five are known, or after a substitution naming a player the feed
//!   never put on, and a score correction's points): so at every event the players'
//!   `plus_minus` plus it is exactly 5 × the margin, and `lineup_known` says whether five
//!   players are known on court.
//! - `shot`: `{player, side, x, y, points, made, period}` per field-goal attempt (court feet,
//!   as in the event), for shot charts.
//! - `alert`: `{kind, ...}` with kind `foul_trouble` (a player's 2nd foul in the first half),
//!   `lead_change` (`{leader, score}`), `run` (`{side, points}` when one side scores 10+ in a row).
//!
//! Triggers (on `game/{id}/triggers`, through `Ctx::trigger`): `basketball-boxscore:run` when
//! a side reaches 10 unanswered points, `basketball-boxscore:foul_trouble` on a player's 2nd
//! foul in the first half; `facts` as in the alert.

use std::collections::{BTreeMap, BTreeSet};

use opensports_plugin_sdk::proto::basketball::ArchivedEvent as Bk;
use opensports_plugin_sdk::proto::event::{ArchivedBody, ArchivedEvent, ArchivedSide};
use opensports_plugin_sdk::{Ctx, Plugin, export_plugin};
use serde::ser::{Serialize, SerializeMap, Serializer};

#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub pts: u32,
    pub fgm: u32,
    pub fga: u32,
    pub fg3m: u32,
    pub fg3a: u32,
    pub ftm: u32,
    pub fta: u32,
    pub oreb: u32,
    pub dreb: u32,
    pub ast: u32,
    pub stl: u32,
    pub blk: u32,
    pub tov: u32,
    pub pf: u32,
    pub plus_minus: i32,
}

impl Line {
    /// Hollinger's Game Score.
    pub fn game_score(&self) -> f64 {
        let f = |x: u32| f64::from(x);
        f(self.pts) + 0.4 * f(self.fgm) - 0.7 * f(self.fga) - 0.4 * (f(self.fta) - f(self.ftm))
            + 0.7 * f(self.oreb)
            + 0.3 * f(self.dreb)
            + f(self.stl)
            + 0.7 * f(self.ast)
            + 0.7 * f(self.blk)
            - 0.4 * f(self.pf)
            - f(self.tov)
    }
}

impl Line {
    /// The counting stats as JSON object entries (`pts` .. `plus_minus`). Written by hand:
    /// `#[serde(flatten)]` buffers every field through a generic map first, and this runs for
    /// ten players on every basket.
    fn entries<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        for (k, v) in [
            ("pts", self.pts),
            ("fgm", self.fgm),
            ("fga", self.fga),
            ("fg3m", self.fg3m),
            ("fg3a", self.fg3a),
            ("ftm", self.ftm),
            ("fta", self.fta),
            ("oreb", self.oreb),
            ("dreb", self.dreb),
            ("ast", self.ast),
            ("stl", self.stl),
            ("blk", self.blk),
            ("tov", self.tov),
            ("pf", self.pf),
        ] {
            map.serialize_entry(k, &v)?;
        }
        map.serialize_entry("plus_minus", &self.plus_minus)
    }
}

/// `player/{id}`: who, their side, their line and Game Score.
struct PlayerOut<'a> {
    player: &'a str,
    side: &'static str,
    line: &'a Line,
}

impl Serialize for PlayerOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(18))?;
        map.serialize_entry("player", self.player)?;
        map.serialize_entry("side", self.side)?;
        self.line.entries(&mut map)?;
        map.serialize_entry("game_score", &round1(self.line.game_score()))?;
        map.end()
    }
}

/// `team/{side}`: the side and its summed line.
struct TeamOut<'a> {
    side: &'static str,
    line: &'a Line,
    unattributed: i32,
    lineup_known: bool,
}

impl Serialize for TeamOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(18))?;
        map.serialize_entry("side", self.side)?;
        self.line.entries(&mut map)?;
        map.serialize_entry("plus_minus_unattributed", &self.unattributed)?;
        map.serialize_entry("lineup_known", &self.lineup_known)?;
        map.end()
    }
}

fn idx(side: &ArchivedSide) -> usize {
    match side {
        ArchivedSide::Home => 0,
        ArchivedSide::Away => 1,
    }
}

const SIDES: [&str; 2] = ["home", "away"];

/// One game's box score; its snapshot is this value as JSON.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Boxscore {
    players: [BTreeMap<String, Line>; 2],
    on_court: [BTreeSet<String>; 2],
    score: [u32; 2],
    period: u8,
    leader: Option<usize>,
    run: (Option<usize>, u32),
    run_alerted: bool,
    /// Per side: points × on-court slots not known when they were scored (signed as
    /// plus-minus).
    #[serde(default)]
    unattributed: [i32; 2],
    changed: BTreeSet<(usize, String)>,
    /// The score moved this event: both teams' lines are out of date.
    #[serde(skip)]
    scored: bool,
}

impl Boxscore {
    fn line(&mut self, side: usize, player: &str) -> &mut Line {
        if !self.on_court[side].contains(player) && self.on_court[side].len() < 5 {
            self.on_court[side].insert(player.to_string());
        }
        self.changed.insert((side, player.to_string()));
        self.players[side].entry(player.to_string()).or_default()
    }

    fn scored(&mut self, ctx: &mut Ctx<'_>, side: usize, pts: u32) {
        self.score[side] += pts;
        self.scored = true;
        for (s, sign) in [(side, 1i32), (1 - side, -1)] {
            for p in self.on_court[s].clone() {
                self.players[s].entry(p.clone()).or_default().plus_minus += sign * pts as i32;
                self.changed.insert((s, p));
            }
            let missing = 5 - self.on_court[s].len().min(5) as i32;
            self.unattributed[s] += sign * pts as i32 * missing;
        }
        let leader = match self.score[0].cmp(&self.score[1]) {
            std::cmp::Ordering::Greater => Some(0),
            std::cmp::Ordering::Less => Some(1),
            std::cmp::Ordering::Equal => None,
        };
        if let Some(l) = leader
            && self.leader.is_some_and(|prev| prev != l)
        {
            let _ = ctx.emit(
                "alert",
                &serde_json::json!({"kind": "lead_change", "leader": SIDES[l], "score": self.score}),
            );
        }
        if leader.is_some() {
            self.leader = leader;
        }
        if self.run.0 == Some(side) {
            self.run.1 += pts;
        } else {
            self.run = (Some(side), pts);
            self.run_alerted = false;
        }
        if self.run.1 >= 10 && !self.run_alerted {
            self.run_alerted = true;
            let facts = serde_json::json!({"side": SIDES[side], "points": self.run.1, "score": self.score});
            let _ = ctx.emit(
                "alert",
                &serde_json::json!({"kind": "run", "side": SIDES[side], "points": self.run.1}),
            );
            let _ = ctx.trigger("run", &format!("{} on a {}-0 run", SIDES[side], self.run.1), &facts);
        }
    }
}

use opensports_plugin_sdk::serde_json;

impl Plugin for Boxscore {
    const SPORTS: &'static [opensports_plugin_sdk::proto::Sport] =
        &[opensports_plugin_sdk::proto::Sport::Basketball];

    fn snapshot(&self) -> Vec<u8> {
        opensports_plugin_sdk::snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        opensports_plugin_sdk::restore_json(self, bytes)
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &ArchivedEvent) {
        let ArchivedBody::Basketball(ev) = &event.body else { return };
        match ev {
            Bk::PeriodStart { period } => self.period = *period,
            Bk::Shot { side, player, points, made, x, y } => {
                let (s, three) = (idx(side), *points == 3);
                let shot = serde_json::json!({"player": player.as_str(), "side": SIDES[s], "x": x.to_native(),
                    "y": y.to_native(), "points": points, "made": made, "period": self.period});
                let _ = ctx.emit("shot", &shot);
                let l = self.line(s, player.as_str());
                l.fga += 1;
                l.fg3a += u32::from(three);
                if *made {
                    l.fgm += 1;
                    l.fg3m += u32::from(three);
                    l.pts += u32::from(*points);
                    self.scored(ctx, s, u32::from(*points));
                }
            }
            Bk::FreeThrow { side, player, made, .. } => {
                let s = idx(side);
                let l = self.line(s, player.as_str());
                l.fta += 1;
                if *made {
                    l.ftm += 1;
                    l.pts += 1;
                    self.scored(ctx, s, 1);
                }
            }
            Bk::Rebound { side, player, offensive } => {
                if let Some(p) = player.as_ref() {
                    let l = self.line(idx(side), p.as_str());
                    if *offensive { l.oreb += 1 } else { l.dreb += 1 }
                }
            }
            Bk::Assist { side, player } => self.line(idx(side), player.as_str()).ast += 1,
            Bk::Steal { side, player } => self.line(idx(side), player.as_str()).stl += 1,
            Bk::Block { side, player } => self.line(idx(side), player.as_str()).blk += 1,
            Bk::Turnover { side, player } => {
                if let Some(p) = player.as_ref() {
                    self.line(idx(side), p.as_str()).tov += 1;
                }
            }
            Bk::Foul { side, player, .. } => {
                if let Some(p) = player.as_ref() {
                    let first_half = self.period <= 2;
                    let l = self.line(idx(side), p.as_str());
                    l.pf += 1;
                    if l.pf == 2 && first_half {
                        let alert = serde_json::json!({"kind": "foul_trouble", "side": SIDES[idx(side)], "player": p.as_str(), "fouls": 2});
                        let _ = ctx.emit("alert", &alert);
                        let text = format!("{}: 2 fouls in the first half", p.as_str());
                        let facts =
                            serde_json::json!({"side": SIDES[idx(side)], "player": p.as_str(), "fouls": 2});
                        let _ = ctx.trigger("foul_trouble", &text, &facts);
                    }
                }
            }
            Bk::ScoreCorrection(c) => {
                // Points taken back (or given) after the fact: who was on court when they were
                // scored is not known here, so the change goes to the unattributed share.
                let new = [u32::from(c.home.to_native()), u32::from(c.away.to_native())];
                let delta = (new[0] as i32 - self.score[0] as i32) - (new[1] as i32 - self.score[1] as i32);
                self.unattributed[0] += 5 * delta;
                self.unattributed[1] -= 5 * delta;
                self.score = new;
                self.scored = true;
            }
            Bk::Substitution { side, player_in, player_out } => {
                let s = idx(side);
                self.on_court[s].remove(player_out.as_str());
                // Never more than five: a player coming on for one the feed never put on
                // takes a free slot, or none (then that slot's points are unattributed, not
                // given to a guess).
                if self.on_court[s].len() < 5 {
                    self.on_court[s].insert(player_in.as_str().to_string());
                }
                self.players[s].entry(player_in.as_str().to_string()).or_default();
            }
            _ => {}
        }
        let changed = std::mem::take(&mut self.changed);
        let mut teams = [std::mem::take(&mut self.scored); 2];
        let mut name = String::new();
        for (s, p) in &changed {
            if let Some(line) = self.players[*s].get(p) {
                name.clear();
                name.push_str("player/");
                name.push_str(p);
                let _ = ctx.emit(&name, &PlayerOut { player: p, side: SIDES[*s], line });
                teams[*s] = true;
            }
        }
        for s in 0..2 {
            if teams[s] {
                let total = self.players[s].values().fold(Line::default(), |mut t, l| {
                    t.pts += l.pts;
                    t.fgm += l.fgm;
                    t.fga += l.fga;
                    t.fg3m += l.fg3m;
                    t.fg3a += l.fg3a;
                    t.ftm += l.ftm;
                    t.fta += l.fta;
                    t.oreb += l.oreb;
                    t.dreb += l.dreb;
                    t.ast += l.ast;
                    t.stl += l.stl;
                    t.blk += l.blk;
                    t.tov += l.tov;
                    t.pf += l.pf;
                    t
                });
                let total = Line { plus_minus: self.score[s] as i32 - self.score[1 - s] as i32, ..total };
                let team = TeamOut {
                    side: SIDES[s],
                    line: &total,
                    unattributed: self.unattributed[s],
                    lineup_known: self.on_court[s].len() == 5,
                };
                let _ = ctx.emit(&format!("team/{}", SIDES[s]), &team);
            }
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

export_plugin!(Boxscore);

#[cfg(test)]
mod tests {
    use super::*;
    use opensports_plugin_sdk::proto::{Body, Event, Side, basketball as bk};
    use opensports_plugin_sdk::testing::run;

    fn ev(seq: u64, e: bk::Event) -> Event {
        Event { v: 1, game: "g".into(), seq, ts: 0, clock_ms: None, body: Body::Basketball(e) }
    }

    #[test]
    fn counts_points_shots_and_alerts() {
        let shot = |side, p: &str, points, made| bk::Event::Shot {
            side,
            player: p.into(),
            x: 0.0,
            y: 0.0,
            points,
            made,
        };
        let mut events = vec![ev(1, bk::Event::PeriodStart { period: 1 })];
        events.push(ev(2, shot(Side::Away, "A1", 2, true)));
        for i in 0..4 {
            events.push(ev(3 + i, shot(Side::Home, "H1", 3, true)));
        }
        events.push(ev(
            10,
            bk::Event::Foul { side: Side::Home, player: Some("H1".into()), kind: "personal".into() },
        ));
        events.push(ev(
            11,
            bk::Event::Foul { side: Side::Home, player: Some("H1".into()), kind: "personal".into() },
        ));
        let out = run::<Boxscore>(&serde_json::json!({}), &events);
        let last_h1: serde_json::Value =
            serde_json::from_str(&out.iter().rev().find(|o| o.name == "player/H1").unwrap().json).unwrap();
        assert_eq!(last_h1["pts"], 12);
        assert_eq!(last_h1["fg3m"], 4);
        assert_eq!(last_h1["pf"], 2);
        assert_eq!(last_h1["plus_minus"], 12);
        let keys: Vec<&str> = last_h1.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "player",
            "side",
            "pts",
            "fgm",
            "fga",
            "fg3m",
            "fg3a",
            "ftm",
            "fta",
            "oreb",
            "dreb",
            "ast",
            "stl",
            "blk",
            "tov",
            "pf",
            "plus_minus",
            "game_score",
        ];
        want.sort_unstable();
        assert_eq!(keys, want, "serde_json's map sorts keys");
        assert_eq!(last_h1["game_score"], 12.0 + 0.4 * 4.0 - 0.7 * 4.0 - 0.4 * 2.0);
        let alerts: Vec<serde_json::Value> = out
            .iter()
            .filter(|o| o.name == "alert")
            .map(|o| serde_json::from_str(&o.json).unwrap())
            .collect();
        assert!(alerts.iter().any(|a| a["kind"] == "lead_change"));
        assert!(alerts.iter().any(|a| a["kind"] == "run" && a["points"] == 12));
        assert!(alerts.iter().any(|a| a["kind"] == "foul_trouble"));
        // Each run and foul-trouble alert is also a trigger, with the same facts.
        let triggers: Vec<(&str, serde_json::Value)> = out
            .iter()
            .filter_map(|o| Some((o.name.strip_prefix("trigger/")?, serde_json::from_str(&o.json).ok()?)))
            .collect();
        let runs = alerts.iter().filter(|a| a["kind"] == "run").count();
        assert_eq!(triggers.iter().filter(|(n, _)| *n == "run").count(), runs);
        assert!(triggers.iter().any(|(n, t)| *n == "run" && t["facts"]["points"] == 12 && t["text"] != ""));
        assert_eq!(
            triggers.iter().filter(|(n, _)| *n == "foul_trouble").count(),
            alerts.iter().filter(|a| a["kind"] == "foul_trouble").count()
        );
        let team: serde_json::Value =
            serde_json::from_str(&out.iter().rev().find(|o| o.name == "team/home").unwrap().json).unwrap();
        assert_eq!(team["pts"], 12);
    }
}
