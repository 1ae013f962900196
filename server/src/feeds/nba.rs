//! NBA live play-by-play (`nba-live`): the cdn.nba.com JSON `{"game": {"gameId", "actions": [...]}}`.
//!
//! Mapping: `period` start/end → `period_start`/`period_end`; `game` end → `game_end`; `jumpball`
//! → `jump_ball` (the team that recovered); `2pt`/`3pt` → `shot` (+ `assist` when the action names
//! one); `freethrow` → `free_throw` (`"1 of 2"`); `rebound` (team rebounds without a player);
//! `turnover`, `steal`, `block`, `foul` (kind = subType); `substitution` out+in pairs →
//! `substitution`; `timeout`. Other kinds (`stoppage`, `violation`, ...) are counted as unknown.
//! Players are named as a box score prints them, `S.Curry` (`feeds::Names`). Coordinates:
//! the feed's `x`/`y` are percent of the court's length and width; ours are feet (×0.94,
//! ×0.50). Home and away are read off `scoreHome` / `scoreAway`: the team whose points move
//! `scoreHome` is at home. Source time is `timeActual`.

use std::collections::{BTreeMap, VecDeque};

use opensports_proto::basketball::Event as Bk;
use opensports_proto::{Body, Side};
use serde::Deserialize;

use super::{Feed, FeedError, Names, ScoreCheck, iso_clock_ms, iso8601_us};
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
    player_name_i: Option<String>,
    assist_player_name_initial: Option<String>,
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
    let names = Names::new(actions.iter().flat_map(|a| {
        let assist = a.assist_person_id.zip(a.assist_player_name_initial.as_deref());
        [(a.person_id, a.player_name_i.as_deref().unwrap_or("")), assist.unwrap_or((0, ""))]
    }));
    let (mut last_at, mut running) = (0u64, ScoreCheck::default());
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
        let player = (act.person_id != 0).then(|| names.of(act.person_id));
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
                    bodies.push(Bk::Assist { side, player: names.of(a) });
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
        for body in &bodies {
            running.basketball(body);
        }
        if let (Some(h), Some(a)) = (act.score_home.as_deref(), act.score_away.as_deref())
            && let (Ok(h), Ok(a)) = (h.parse(), a.parse())
            && let Some(c) = running.against(h, a, || format!("action {i} ({})", act.action_type))
        {
            bodies.push(Bk::ScoreCorrection(c));
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

/// stats.nba.com `playbyplayv2` (`nba-stats`): `{"resultSets": [{"name": "PlayByPlay",
/// "headers": [...], "rowSet": [[...], ...]}]}`.
///
/// Mapping by `EVENTMSGTYPE`: 1 made and 2 missed field goal → `shot` (3 points when the
/// description says `3PT`; `PLAYER2` of a make is the `assist`, `PLAYER3` of a miss the `block`),
/// 3 → `free_throw` (`MISS` in the description), 4 → `rebound` (offensive when the rebounding side
/// missed last; team rebounds have no player), 5 → `turnover` (`PLAYER2` is the `steal`), 6 →
/// `foul`, 8 → `substitution` (`PLAYER1` out, `PLAYER2` in), 9 → `timeout`, 10 → `jump_ball` (to
/// the side of `PLAYER3`), 12/13 → `period_start`/`period_end`, and `game_end` after the last
/// period. Others (7 violation, 18 replay, ...) are counted as unknown. Sides come from
/// `PERSONnTYPE` (4/2 home player/team, 5/3 visitor). The feed's time is a local wall clock to the
/// minute (`WCTIMESTRING`) without a date: replay pacing follows it; `ts` counts from the Unix epoch.
/// The feed has no shot coordinates: shots are placed at centre court (47, 25), so shot maps
/// from this format are meaningless (the live format has them).
pub fn stats(bytes: &[u8], game_id: Option<&str>) -> Result<Feed, FeedError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct File {
        result_sets: Vec<Set>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Set {
        name: String,
        headers: Vec<String>,
        row_set: Vec<Vec<serde_json::Value>>,
    }
    let bad = |detail: String| FeedError::Malformed { what: "nba-stats JSON", detail };
    let file: File = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let set = file
        .result_sets
        .into_iter()
        .find(|s| s.name == "PlayByPlay")
        .ok_or_else(|| bad("no PlayByPlay result set".into()))?;
    let col = |name: &str| {
        set.headers.iter().position(|h| h == name).ok_or_else(|| bad(format!("no {name} column")))
    };
    let c = StatsCols {
        game: col("GAME_ID")?,
        event: col("EVENTNUM")?,
        score: col("SCORE")?,
        kind: col("EVENTMSGTYPE")?,
        action: col("EVENTMSGACTIONTYPE")?,
        period: col("PERIOD")?,
        wall: col("WCTIMESTRING")?,
        clock: col("PCTIMESTRING")?,
        home_desc: col("HOMEDESCRIPTION")?,
        away_desc: col("VISITORDESCRIPTION")?,
        types: [col("PERSON1TYPE")?, col("PERSON2TYPE")?, col("PERSON3TYPE")?],
        ids: [col("PLAYER1_ID")?, col("PLAYER2_ID")?, col("PLAYER3_ID")?],
        names: [col("PLAYER1_NAME")?, col("PLAYER2_NAME")?, col("PLAYER3_NAME")?],
        teams: col("PLAYER1_TEAM_ABBREVIATION")?,
    };
    let rows = &set.row_set;
    let int = |r: &[serde_json::Value], i: usize| r.get(i).and_then(serde_json::Value::as_i64).unwrap_or(0);
    let text = |r: &[serde_json::Value], i: usize| {
        r.get(i).and_then(serde_json::Value::as_str).unwrap_or("").to_string()
    };
    let team_of = |person_type: i64| {
        rows.iter()
            .find(|r| int(r, c.types[0]) == person_type)
            .map(|r| text(r, c.teams))
            .filter(|t| !t.is_empty())
    };
    let (home, away) = (
        team_of(4).ok_or_else(|| bad("no home player in the feed".into()))?,
        team_of(5).ok_or_else(|| bad("no visiting player in the feed".into()))?,
    );
    let feed_id = rows.first().map(|r| text(r, c.game)).unwrap_or_default();
    let id = game_id.map_or_else(|| format!("nba-{feed_id}"), str::to_string);
    let mut b = Builder::new(&id, 0);
    let (mut unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let side_of = |t: i64| match t {
        2 | 4 => Some(Side::Home),
        3 | 5 => Some(Side::Away),
        _ => None,
    };
    let wall_min = |s: &str| -> Option<u64> {
        let (hm, ampm) = s.trim().split_once(' ')?;
        let (h, m) = hm.split_once(':')?;
        let h: u64 = h.parse().ok()?;
        let h = if ampm.eq_ignore_ascii_case("PM") && h != 12 {
            h + 12
        } else if ampm.eq_ignore_ascii_case("AM") && h == 12 {
            0
        } else {
            h
        };
        Some(h * 60 + m.parse::<u64>().ok()?)
    };
    let first_min = rows.iter().find_map(|r| wall_min(&text(r, c.wall))).unwrap_or(0);
    let names = Names::new(rows.iter().flat_map(|r| {
        (0..3).map(move |k| {
            (int(r, c.ids[k]), r.get(c.names[k]).and_then(serde_json::Value::as_str).unwrap_or(""))
        })
    }));
    b.push(0, Some(720_000), Body::Basketball(Bk::GameStart { home, away }));
    let (mut last_at, mut last_miss, mut last_period) = (0u64, None, 0u8);
    let mut running = ScoreCheck::default();
    for (i, r) in rows.iter().enumerate() {
        let at = wall_min(&text(r, c.wall)).map_or(last_at, |m| m.saturating_sub(first_min) * 60_000);
        last_at = last_at.max(at);
        let clock = {
            let t = text(r, c.clock);
            t.split_once(':')
                .and_then(|(m, s)| Some((m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?) * 1000))
        };
        let period = u8::try_from(int(r, c.period)).unwrap_or(0);
        let desc = format!("{} {}", text(r, c.home_desc), text(r, c.away_desc));
        let person = |k: usize| {
            let id = int(r, c.ids[k]);
            (
                side_of(int(r, c.types[k])),
                (id != 0 && matches!(int(r, c.types[k]), 4 | 5)).then(|| names.of(id)),
            )
        };
        let (side, player) = person(0);
        let mut bodies = Vec::new();
        match (int(r, c.kind), side, player) {
            (12, _, _) => bodies.push(Bk::PeriodStart { period }),
            (13, _, _) => {
                bodies.push(Bk::PeriodEnd { period });
                last_period = period;
            }
            (10, _, _) => match person(2).0 {
                Some(side) => bodies.push(Bk::JumpBall { side }),
                None => *unknown.entry("jump_ball_without_winner".to_string()).or_insert(0) += 1,
            },
            (k @ (1 | 2), Some(side), Some(player)) => {
                let made = k == 1;
                let points = if desc.contains("3PT") { 3 } else { 2 };
                bodies.push(Bk::Shot { side, player, x: 47.0, y: 25.0, points, made });
                if made && let (Some(s), Some(p)) = person(1) {
                    bodies.push(Bk::Assist { side: s, player: p });
                }
                if !made {
                    last_miss = Some(side);
                    if let (Some(s), Some(p)) = person(2) {
                        bodies.push(Bk::Block { side: s, player: p });
                    }
                }
            }
            (3, Some(side), Some(player)) => {
                let made = !desc.contains("MISS");
                let (attempt, of) = free_throw_of(&desc);
                if !made {
                    last_miss = Some(side);
                }
                bodies.push(Bk::FreeThrow { side, player, made, attempt, of });
            }
            (4, Some(side), player) => {
                bodies.push(Bk::Rebound { side, player, offensive: last_miss == Some(side) })
            }
            (5, Some(side), player) => {
                bodies.push(Bk::Turnover { side, player });
                if let (Some(s), Some(p)) = person(1)
                    && s != side
                {
                    bodies.push(Bk::Steal { side: s, player: p });
                }
            }
            (6, Some(side), player) => {
                bodies.push(Bk::Foul { side, player, kind: foul_kind(int(r, c.action)).into() })
            }
            (8, Some(side), Some(player_out)) => match person(1).1 {
                Some(player_in) => bodies.push(Bk::Substitution { side, player_in, player_out }),
                None => skipped.push((i, format!("row {i}: substitution without an incoming player"))),
            },
            (9, side, _) => bodies.push(Bk::Timeout { side }),
            (k, _, _) => *unknown.entry(format!("eventmsgtype/{k}")).or_insert(0) += 1,
        }
        for body in &bodies {
            running.basketball(body);
        }
        // `SCORE` is "visitor - home", on scoring rows only.
        if let Some((a, h)) = text(r, c.score).split_once(" - ")
            && let (Ok(h), Ok(a)) = (h.trim().parse(), a.trim().parse())
            && let Some(fix) = running.against(h, a, || format!("row {i} (EVENTNUM {})", int(r, c.event)))
        {
            bodies.push(Bk::ScoreCorrection(fix));
        }
        for body in bodies {
            b.push(last_at, clock, Body::Basketball(body));
        }
    }
    if last_period >= 4 {
        b.push(last_at, Some(0), Body::Basketball(Bk::GameEnd));
    }
    let game = SimGame { id, sport: opensports_proto::Sport::Basketball, events: b.events };
    Ok(Feed { game, unknown, skipped })
}

struct StatsCols {
    game: usize,
    event: usize,
    score: usize,
    kind: usize,
    action: usize,
    period: usize,
    wall: usize,
    clock: usize,
    home_desc: usize,
    away_desc: usize,
    types: [usize; 3],
    ids: [usize; 3],
    names: [usize; 3],
    teams: usize,
}

/// `(attempt, of)` from "Free Throw 1 of 2"; technicals and others without it are 1 of 1.
fn free_throw_of(desc: &str) -> (u8, u8) {
    let words: Vec<&str> = desc.split_whitespace().collect();
    words
        .windows(3)
        .find_map(|w| (w[1] == "of").then(|| Some((w[0].parse().ok()?, w[2].parse().ok()?))).flatten())
        .unwrap_or((1, 1))
}

fn foul_kind(action: i64) -> &'static str {
    match action {
        1 => "personal",
        2 => "shooting",
        3 => "loose_ball",
        4 | 26 => "offensive",
        5 => "inbound",
        6 => "away_from_play",
        9 => "clear_path",
        11..=13 | 16..=19 => "technical",
        14 => "flagrant_1",
        15 => "flagrant_2",
        28 => "personal_take",
        _ => "other",
    }
}
