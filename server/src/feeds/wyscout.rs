//! Wyscout v2 events (`wyscout`): `{"events": [...], "teams": {id: {"team": {"name"}}}, "players"}`
//! with numeric `eventName`/`subEventName` ids (as in the public dataset) and tag ids.
//!
//! Mapping: `8` pass (completed with tag 1801); `10` shot, and `3` free kick with sub-event `33`
//! (free-kick shot) or `35` (penalty) → `shot` (tags 401 left foot, 402 right, 403 head/body;
//! 101 goal → outcome `goal` and a `goal` event; 2101 blocked; 1801 on target → `saved`;
//! otherwise off target); tag 102 on any event → an own `goal` for the other side; `2` foul
//! (cards from tags 1701 red, 1702 yellow, 1703 second yellow); `matchPeriod` changes →
//! `period_start`/`period_end`, `game_end` at the end. Everything else (duels, save attempts,
//! interruptions, ...) is counted as unknown by its event id. Positions are percent of the pitch
//! from the acting team's view (`y` from its left); ours are metres on 105 × 68 with `y` from its
//! right touchline. Players by the file's `players` short names as a box score prints them
//! (`R.Firmino`, `feeds::Names`), the Wyscout id where it has none usable. The file does not
//! say which team is at home: `--home NAME`, else the first team listed.

use std::collections::BTreeMap;

use opensports_proto::soccer::{BodyPart, Card, Event as Sc, ShotOutcome};
use opensports_proto::{Body, Side, Sport};
use serde_json::Value;

use super::{Feed, FeedError, Names, Options};
use crate::sim::{Builder, SimGame};

fn tags(e: &Value) -> Vec<i64> {
    e["tags"].as_array().map(|t| t.iter().filter_map(|t| t["id"].as_i64()).collect()).unwrap_or_default()
}

fn metres(p: &Value) -> (f32, f32) {
    // Wyscout's 0..100 coordinates are numbers, but some files give a team's as strings
    // ("92"): both are read (a missing one is the pitch's centre).
    let num = |v: &Value| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()).unwrap_or(50.0) as f32;
    (num(&p["x"]) * 1.05, (100.0 - num(&p["y"])) * 0.68)
}

pub fn events(bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    let bad = |detail: String| FeedError::Malformed { what: "wyscout", detail };
    let file: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::Malformed { what: "wyscout JSON", detail: e.to_string() })?;
    let teams: Vec<(i64, String)> = file["teams"]
        .as_object()
        .ok_or_else(|| bad("no teams object".into()))?
        .iter()
        .filter_map(|(id, t)| Some((id.parse().ok()?, t["team"]["name"].as_str()?.to_string())))
        .collect();
    let [(a_id, a_name), (b_id, b_name)] =
        <[(i64, String); 2]>::try_from(teams).map_err(|t| bad(format!("{} teams, want 2", t.len())))?;
    let (home, away) = match opts.home {
        None => ((a_id, a_name), (b_id, b_name)),
        Some(h) if h == a_name => ((a_id, a_name), (b_id, b_name)),
        Some(h) if h == b_name => ((b_id, b_name), (a_id, a_name)),
        Some(h) => {
            return Err(bad(format!("--home {h:?} is not a team of this match ({a_name:?}, {b_name:?})")));
        }
    };
    let events = file["events"].as_array().ok_or_else(|| bad("no events array".into()))?;
    // `players`: {teamId: [{player: {wyId, shortName}}]}.
    let squads = file["players"].as_object().into_iter().flat_map(|m| m.values());
    let names = Names::new(
        squads
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(|p| Some((p["player"]["wyId"].as_i64()?, p["player"]["shortName"].as_str()?))),
    );
    let id = opts.game_id.map_or_else(
        || format!("soccer-wyscout-{}", events.first().and_then(|e| e["matchId"].as_i64()).unwrap_or(0)),
        str::to_string,
    );
    let mut b = Builder::new(&id, 0);
    b.push(0, Some(0), Body::Soccer(Sc::GameStart { home: home.1.clone(), away: away.1.clone() }));
    let (mut unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let (mut period, mut last_at) = (0u8, 0u64);
    for (i, e) in events.iter().enumerate() {
        let side = match e["teamId"].as_i64() {
            Some(t) if t == home.0 => Side::Home,
            Some(t) if t == away.0 => Side::Away,
            _ => {
                skipped.push((i, format!("event {i}: unknown teamId {}", e["teamId"])));
                continue;
            }
        };
        let p: u8 = match e["matchPeriod"].as_str() {
            Some("1H") => 1,
            Some("2H") => 2,
            Some("E1") => 3,
            Some("E2") => 4,
            Some("P") => 5,
            _ => period.max(1),
        };
        let offset = [0u64, 0, 45, 90, 105, 120][usize::from(p)] * 60_000;
        let clock = offset + (e["eventSec"].as_f64().unwrap_or(0.0) * 1000.0) as u64;
        last_at = last_at.max(clock);
        let mut bodies = Vec::new();
        while period < p {
            if period > 0 {
                bodies.push(Sc::PeriodEnd { period });
            }
            period += 1;
            bodies.push(Sc::PeriodStart { period });
        }
        let t = tags(e);
        let player = names.of(e["playerId"].as_i64().unwrap_or(0));
        let pos = &e["positions"];
        let (kind, sub) = (e["eventName"].as_i64().unwrap_or(-1), e["subEventName"].as_i64().unwrap_or(-1));
        match (kind, sub) {
            (8, _) => {
                let ((x, y), (end_x, end_y)) = (metres(&pos[0]), metres(&pos[1]));
                bodies.push(Sc::Pass {
                    side,
                    player: player.clone(),
                    x,
                    y,
                    end_x,
                    end_y,
                    completed: t.contains(&1801),
                });
            }
            (10, _) | (3, 33 | 35) => {
                let (x, y) = metres(&pos[0]);
                let body_part = if t.contains(&403) {
                    BodyPart::Head
                } else if t.contains(&401) {
                    BodyPart::LeftFoot
                } else if t.contains(&402) {
                    BodyPart::RightFoot
                } else {
                    BodyPart::Other
                };
                let outcome = if t.contains(&101) {
                    ShotOutcome::Goal
                } else if t.contains(&2101) {
                    ShotOutcome::Blocked
                } else if t.contains(&1801) {
                    ShotOutcome::Saved
                } else {
                    ShotOutcome::OffTarget
                };
                bodies.push(Sc::Shot {
                    side,
                    player: player.clone(),
                    x,
                    y,
                    body_part,
                    outcome,
                    provider_xg: None,
                });
                if outcome == ShotOutcome::Goal {
                    bodies.push(Sc::Goal { side, player: player.clone(), own_goal: false });
                }
            }
            (2, _) => {
                bodies.push(Sc::Foul { side, player: player.clone() });
                let card = [(1703, Card::SecondYellow), (1701, Card::Red), (1702, Card::Yellow)]
                    .into_iter()
                    .find(|(tag, _)| t.contains(tag));
                if let Some((_, card)) = card {
                    bodies.push(Sc::Card { side, player: player.clone(), card });
                }
            }
            (k, _) if !t.contains(&102) => *unknown.entry(format!("eventName/{k}")).or_insert(0) += 1,
            _ => {}
        }
        if t.contains(&102) {
            bodies.push(Sc::Goal { side: side.other(), player, own_goal: true });
        }
        for body in bodies {
            b.push(last_at, Some(last_at as u32), Body::Soccer(body));
        }
    }
    if period > 0 {
        b.push(last_at, Some(last_at as u32), Body::Soccer(Sc::PeriodEnd { period }));
        b.push(last_at, Some(last_at as u32), Body::Soccer(Sc::GameEnd));
    }
    Ok(Feed { game: SimGame { id, sport: Sport::Soccer, events: b.events }, unknown, skipped })
}
