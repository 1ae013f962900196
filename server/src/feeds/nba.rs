//! NBA live play-by-play (`nba-live`): the cdn.nba.com JSON `{"game": {"gameId", "actions": [...]}}`.
//!
//! Mapping: `period` start/end → `period_start`/`period_end`; `game` end → `game_end`; `jumpball`
//! → `jump_ball` (the team that recovered); `2pt`/`3pt` → `shot` (+ `assist` when the action names
//! one); `freethrow` → `free_throw` (`"1 of 2"`); `rebound` (team rebounds without a player);
//! `turnover`, `steal`, `block`, `foul` (kind = subType); `substitution` out+in pairs →
//! `substitution`; `timeout`. Other kinds (`stoppage`, `violation`, ...) are counted as unknown.
//! Players are the feed's `personId`. Coordinates: the feed's `x`/`y` are percent of the court's
//! length and width; ours are feet (×0.94, ×0.50). Home and away are read off `scoreHome` /
//! `scoreAway`: the team whose points move `scoreHome` is at home. Source time is `timeActual`.

use std::collections::{BTreeMap, VecDeque};

use opensports_proto::basketball::Event as Bk;
use opensports_proto::{Body, Side};
use serde::Deserialize;

use super::{Feed, FeedError, iso_clock_ms, iso8601_us};
use crate::sim::{Builder, SimGame};

#[derive(Debug, Deserialize)]
struct File {
    game: Game,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Game {
    game_id: String,
    actions: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Action {
    action_type: String,
    sub_type: Option<String>,
    clock: Option<String>,
    time_actual: Option<String>,
    period: u8,
    team_tricode: Option<String>,
    person_id: i64,
    x: Option<f32>,
    y: Option<f32>,
    shot_result: Option<String>,
    score_home: Option<String>,
    score_away: Option<String>,
    assist_person_id: Option<i64>,
}

fn score(s: &Option<String>) -> u32 {
    s.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Home and away tricodes from the first actions that move each side's score.
fn teams(actions: &[Action]) -> Option<(String, String)> {
    let (mut home, mut away) = (None, None);
    let (mut h, mut a) = (0, 0);
    for act in actions {
        let (nh, na) = (score(&act.score_home), score(&act.score_away));
        if let Some(t) = &act.team_tricode {
            if nh > h && home.is_none() {
                home = Some(t.clone());
            }
            if na > a && away.is_none() {
                away = Some(t.clone());
            }
        }
        (h, a) = (nh.max(h), na.max(a));
        if home.is_some() && away.is_some() {
            break;
        }
    }
    Some((home?, away?))
}

pub fn live(bytes: &[u8], game_id: Option<&str>) -> Result<Feed, FeedError> {
    let file: File = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::Malformed { what: "nba-live JSON", detail: e.to_string() })?;
    let mut skipped = Vec::new();
    let actions: Vec<Action> = file
        .game
        .actions
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| match serde_json::from_value(v) {
            Ok(a) => Some(a),
            Err(e) => {
                skipped.push((i, format!("action {i}: {e}")));
                None
            }
        })
        .collect();
    let (home, away) = teams(&actions).ok_or(FeedError::Malformed {
        what: "nba-live",
        detail: "cannot tell home from away (no scoring actions)".into(),
    })?;
    let id = game_id.map_or_else(|| format!("nba-{}", file.game.game_id), str::to_string);
    let t0 = actions.iter().find_map(|a| a.time_actual.as_deref().and_then(iso8601_us)).unwrap_or(0);
    let mut b = Builder::new(&id, t0);
    let mut unknown = BTreeMap::new();
    b.push(0, Some(720_000), Body::Basketball(Bk::GameStart { home: home.clone(), away: away.clone() }));
    // Substitutions come as `out` and `in` actions, several at a dead ball in any order; pair
    // them per side, first out with first in.
    let mut subs: [(VecDeque<String>, VecDeque<String>); 2] = Default::default();
    let mut last_at = 0u64;
    for (i, act) in actions.iter().enumerate() {
        let at_ms = act
            .time_actual
            .as_deref()
            .and_then(iso8601_us)
            .map_or(last_at, |t| ((t - t0).max(0) / 1000) as u64);
        // Source times can step back a little between actions; keep replay time monotonic.
        last_at = last_at.max(at_ms);
        let clock = act.clock.as_deref().and_then(iso_clock_ms);
        let side = match act.team_tricode.as_deref() {
            Some(t) if t == home => Some(Side::Home),
            Some(t) if t == away => Some(Side::Away),
            _ => None,
        };
        let player = (act.person_id != 0).then(|| act.person_id.to_string());
        let sub = act.sub_type.as_deref().unwrap_or("");
        let mut bodies: Vec<Bk> = Vec::new();
        match (act.action_type.as_str(), side, player.clone()) {
            ("period", _, _) if sub == "start" => bodies.push(Bk::PeriodStart { period: act.period }),
            ("period", _, _) if sub == "end" => bodies.push(Bk::PeriodEnd { period: act.period }),
            ("game", _, _) if sub == "end" => bodies.push(Bk::GameEnd),
            ("jumpball", Some(side), _) => bodies.push(Bk::JumpBall { side }),
            ("2pt" | "3pt", Some(side), Some(player)) => {
                let made = act.shot_result.as_deref() == Some("Made");
                let points = if act.action_type == "3pt" { 3 } else { 2 };
                let (x, y) = (act.x.unwrap_or(50.0) * 0.94, act.y.unwrap_or(50.0) * 0.5);
                bodies.push(Bk::Shot { side, player, x, y, points, made });
                if let (true, Some(a)) = (made, act.assist_person_id.filter(|a| *a != 0)) {
                    bodies.push(Bk::Assist { side, player: a.to_string() });
                }
            }
            ("freethrow", Some(side), Some(player)) => {
                let mut parts = sub.split(" of ").map(|p| p.trim().parse::<u8>().ok());
                let (attempt, of) = match (parts.next().flatten(), parts.next().flatten()) {
                    (Some(a), Some(o)) => (a, o),
                    _ => (1, 1),
                };
                bodies.push(Bk::FreeThrow {
                    side,
                    player,
                    made: act.shot_result.as_deref() == Some("Made"),
                    attempt,
                    of,
                });
            }
            ("rebound", Some(side), player) => {
                bodies.push(Bk::Rebound { side, player, offensive: sub == "offensive" })
            }
            ("turnover", Some(side), player) => bodies.push(Bk::Turnover { side, player }),
            ("steal", Some(side), Some(player)) => bodies.push(Bk::Steal { side, player }),
            ("block", Some(side), Some(player)) => bodies.push(Bk::Block { side, player }),
            ("foul", Some(side), player) => bodies.push(Bk::Foul { side, player, kind: sub.to_string() }),
            ("timeout", side, _) => bodies.push(Bk::Timeout { side }),
            ("substitution", Some(side), Some(player)) => {
                let (outs, ins) = &mut subs[if side == Side::Home { 0 } else { 1 }];
                match sub {
                    "out" => outs.push_back(player),
                    "in" => ins.push_back(player),
                    _ => skipped.push((i, format!("action {i}: substitution {sub:?}"))),
                }
                while let (Some(_), Some(_)) = (outs.front(), ins.front()) {
                    if let (Some(player_out), Some(player_in)) = (outs.pop_front(), ins.pop_front()) {
                        bodies.push(Bk::Substitution { side, player_in, player_out });
                    }
                }
            }
            (kind, _, _) => {
                *unknown.entry(format!("{kind}/{sub}").trim_end_matches('/').to_string()).or_insert(0) += 1
            }
        }
        for body in bodies {
            b.push(last_at, clock, Body::Basketball(body));
        }
    }
    for (outs, ins) in &subs {
        for p in outs.iter().chain(ins) {
            skipped.push((actions.len(), format!("substitution of {p} without its counterpart")));
        }
    }
    let game = SimGame { id, sport: opensports_proto::Sport::Basketball, events: b.events };
    Ok(Feed { game, unknown, skipped })
}
