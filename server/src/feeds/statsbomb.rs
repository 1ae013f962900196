//! StatsBomb open-data events (`statsbomb`): a JSON array of events with `type.name`, `team`,
//! `player`, `location` (yards on a 120 × 80 pitch, attacking left to right, `y` from the
//! attacker's left touchline), `period`, `minute`, `second`.
//!
//! Mapping: `Half Start`/`Half End` (one per team) → `period_start`/`period_end` once per period,
//! `game_end` after the last; `Pass` (completed when it has no `pass.outcome`); `Shot` with the
//! provider's `statsbomb_xg` kept as `provider_xg`, followed by a `goal` when it scored; `Own Goal
//! Against` → `goal` with `own_goal` for the other side; `Foul Committed` (+ its card); `Bad
//! Behaviour` cards; `Substitution`. Every other type (`Carry`, `Pressure`, `Ball Receipt*`, ...)
//! is counted as unknown. Coordinates become metres on 105 × 68 in our frame. Players are the
//! feed's player ids. The events do not say which team is at home: pass `--home NAME`; without
//! it the team of the first `Starting XI` event is taken as home.

use std::collections::{BTreeMap, BTreeSet};

use opensports_proto::soccer::{BodyPart, Card, Event as Sc, ShotOutcome};
use opensports_proto::{Body, Side, Sport};
use serde_json::Value;

use super::{Feed, FeedError, Options};
use crate::sim::{Builder, SimGame};

fn name(v: &Value) -> &str {
    v["name"].as_str().unwrap_or("")
}

/// Metres in our frame from a StatsBomb `[x, y]` location.
fn metres(loc: &Value) -> (f32, f32) {
    let x = loc[0].as_f64().unwrap_or(60.0) as f32;
    let y = loc[1].as_f64().unwrap_or(40.0) as f32;
    (x * 105.0 / 120.0, (80.0 - y) * 68.0 / 80.0)
}

fn card(s: &str) -> Option<Card> {
    match s {
        "Yellow Card" => Some(Card::Yellow),
        "Second Yellow" => Some(Card::SecondYellow),
        "Red Card" => Some(Card::Red),
        _ => None,
    }
}

/// The match id in a StatsBomb file name: its longest run of digits (`15986.json`,
/// `statsbomb_15986_events.json`).
fn match_id(stem: &str) -> Option<&str> {
    stem.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).max_by_key(|s| s.len())
}

pub fn events(bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    let events: Vec<Value> = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::Malformed { what: "statsbomb JSON", detail: e.to_string() })?;
    let teams: Vec<String> = events
        .iter()
        .filter(|e| name(&e["type"]) == "Starting XI")
        .map(|e| name(&e["team"]).to_string())
        .collect();
    let home = opts.home.map(str::to_string).or_else(|| teams.first().cloned());
    let away = teams.iter().find(|t| Some(*t) != home.as_ref()).cloned();
    let (Some(home), Some(away)) = (home, away) else {
        return Err(FeedError::Malformed {
            what: "statsbomb",
            detail: "need two Starting XI events (or --home)".into(),
        });
    };
    if !teams.contains(&home) {
        return Err(FeedError::Malformed {
            what: "statsbomb",
            detail: format!("--home {home:?} is not a team of this match ({teams:?})"),
        });
    }
    let id = match (opts.game_id, opts.file_stem.and_then(match_id)) {
        (Some(id), _) => id.to_string(),
        (None, Some(m)) => format!("statsbomb-{m}"),
        (None, None) => {
            return Err(FeedError::Malformed {
                what: "statsbomb",
                detail: format!(
                    "the events carry no match id and the file name {:?} has none (StatsBomb names \
                     them events/<match_id>.json); pass --game-id",
                    opts.file_stem.unwrap_or("")
                ),
            });
        }
    };
    let mut b = Builder::new(&id, 0);
    b.push(0, Some(0), Body::Soccer(Sc::GameStart { home: home.clone(), away: away.clone() }));
    let (mut unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let (mut started, mut ended) = (BTreeSet::new(), BTreeSet::new());
    let mut last_at = 0u64;
    for (i, e) in events.iter().enumerate() {
        let kind = name(&e["type"]);
        let side = match name(&e["team"]) {
            t if t == home => Side::Home,
            t if t == away => Side::Away,
            _ => {
                skipped.push((i, format!("event {i}: team {:?} is not in this match", name(&e["team"]))));
                continue;
            }
        };
        let period = e["period"].as_u64().unwrap_or(1) as u8;
        let clock = (e["minute"].as_u64().unwrap_or(0) * 60 + e["second"].as_u64().unwrap_or(0)) * 1000;
        last_at = last_at.max(clock);
        let player = e["player"]["id"].as_i64().map(|p| p.to_string());
        let mut bodies = Vec::new();
        match (kind, player) {
            ("Starting XI", _) => {}
            ("Half Start", _) => {
                if started.insert(period) {
                    bodies.push(Sc::PeriodStart { period });
                }
            }
            ("Half End", _) => {
                if ended.insert(period) {
                    bodies.push(Sc::PeriodEnd { period });
                }
            }
            ("Pass", Some(player)) => {
                let ((x, y), (end_x, end_y)) = (metres(&e["location"]), metres(&e["pass"]["end_location"]));
                let completed = e["pass"].get("outcome").is_none();
                bodies.push(Sc::Pass { side, player, x, y, end_x, end_y, completed });
            }
            ("Shot", Some(player)) => {
                let (x, y) = metres(&e["location"]);
                let shot = &e["shot"];
                let body_part = match name(&shot["body_part"]) {
                    "Right Foot" => BodyPart::RightFoot,
                    "Left Foot" => BodyPart::LeftFoot,
                    "Head" => BodyPart::Head,
                    _ => BodyPart::Other,
                };
                let outcome = match name(&shot["outcome"]) {
                    "Goal" => ShotOutcome::Goal,
                    "Saved" | "Saved Off Target" => ShotOutcome::Saved,
                    "Blocked" => ShotOutcome::Blocked,
                    "Post" | "Saved to Post" => ShotOutcome::Post,
                    _ => ShotOutcome::OffTarget,
                };
                let provider_xg = shot["statsbomb_xg"].as_f64().map(|v| v as f32);
                bodies.push(Sc::Shot { side, player: player.clone(), x, y, body_part, outcome, provider_xg });
                if outcome == ShotOutcome::Goal {
                    bodies.push(Sc::Goal { side, player, own_goal: false });
                }
            }
            ("Own Goal Against", Some(player)) => {
                bodies.push(Sc::Goal { side: side.other(), player, own_goal: true });
            }
            ("Foul Committed", Some(player)) => {
                bodies.push(Sc::Foul { side, player: player.clone() });
                if let Some(card) = card(name(&e["foul_committed"]["card"])) {
                    bodies.push(Sc::Card { side, player, card });
                }
            }
            ("Bad Behaviour", Some(player)) => match card(name(&e["bad_behaviour"]["card"])) {
                Some(card) => bodies.push(Sc::Card { side, player, card }),
                None => *unknown.entry("Bad Behaviour without card".to_string()).or_insert(0) += 1,
            },
            ("Substitution", Some(player_out)) => match e["substitution"]["replacement"]["id"].as_i64() {
                Some(p) => bodies.push(Sc::Substitution { side, player_in: p.to_string(), player_out }),
                None => skipped.push((i, format!("event {i}: substitution without a replacement"))),
            },
            (kind, _) => *unknown.entry(kind.to_string()).or_insert(0) += 1,
        }
        for body in bodies {
            b.push(last_at, Some(clock as u32), Body::Soccer(body));
        }
    }
    if ended.len() >= 2 {
        b.push(last_at, Some(last_at as u32), Body::Soccer(Sc::GameEnd));
    }
    Ok(Feed { game: SimGame { id, sport: Sport::Soccer, events: b.events }, unknown, skipped })
}
