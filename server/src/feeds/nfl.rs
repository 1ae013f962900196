//! Legacy NFL GameCenter JSON (`nfl-gamecenter`): `{"<gameid>": {"home": {"abbr", ...}, "away":
//! {...}, "drives": {"1": {"plays": {"<playid>": {qtr, down, ydstogo, yrdln, time, posteam,
//! desc, sp}}}}}}`.
//!
//! One `play` per snap or kick, in drive then play order. The play type and result are read
//! from `desc` (the feed has no structured type): kickoff (`kicks`), punt, field goal, extra
//! point, two-point try, kneel, spike, pass (`pass`, `sacked`), penalty without a play
//! (`No Play`), else a run; results: touchdown, field goal good/missed, extra point good/missed,
//! two-point good/failed, punt, touchback, sack, interception, fumble lost (recovered by the
//! other team), incomplete, turnover on downs (a fourth-down snap short of the line), first down,
//! gain. Scoring credits the offense, or the defense on an interception or fumble return.
//! `Timeout #n by TEAM` becomes a `timeout`; quarter changes become `period_start`/`period_end`;
//! `END GAME` ends the game; other descriptions without a down (two-minute warnings, `END
//! QUARTER`) are counted as unknown. `yardline_100` comes from `yrdln` (`"GB 25"` is 75 for GB's
//! offense, 25 for the other; `"50"` is 50).

use std::collections::BTreeMap;

use opensports_proto::football::{Event as Fb, Play, PlayResult as R, PlayType as T, Scoring};
use opensports_proto::{Body, Side, Sport};
use serde_json::Value;

use super::{Feed, FeedError, Options};
use crate::sim::{Builder, SimGame};

fn yardline_100(yrdln: &str, posteam: &str) -> Option<u8> {
    let yrdln = yrdln.trim();
    if yrdln == "50" {
        return Some(50);
    }
    let (team, n) = yrdln.rsplit_once(' ')?;
    let n: u8 = n.parse().ok()?;
    Some(if team == posteam { 100 - n } else { n })
}

/// Yards from "for 8 yards", "for -10 yards", "for no gain"; 0 when absent.
fn yards(desc: &str) -> i16 {
    if desc.contains("for no gain") {
        return 0;
    }
    desc.split("for ")
        .skip(1)
        .find_map(|rest| {
            let mut w = rest.split_whitespace();
            let n = w.next()?.parse::<i16>().ok()?;
            w.next().filter(|u| u.starts_with("yard")).map(|_| n)
        })
        .unwrap_or(0)
}

fn clock_ms(t: &str) -> Option<u32> {
    let (m, s) = t.split_once(':')?;
    let m: u32 = if m.is_empty() { 0 } else { m.parse().ok()? };
    Some((m * 60 + s.parse::<u32>().ok()?) * 1000)
}

/// Type, result and who scored how much, from the description.
fn classify(desc: &str, down: Option<u8>, distance: Option<u8>, gained: i16) -> (T, R, Option<(bool, u8)>) {
    let has = |s: &str| desc.contains(s);
    let turnover = has("INTERCEPTED");
    let fumble_lost = has("FUMBLES") && has("RECOVERED by");
    // (offense scored?, points)
    let td = has("TOUCHDOWN").then_some((!(turnover || fumble_lost), 6));
    let (ty, result, score) = if has(" kicks ") {
        (T::Kickoff, if has("Touchback") { R::Touchback } else { R::Gain }, td)
    } else if has(" punts ") {
        (T::Punt, R::Punt, td)
    } else if has("field goal") {
        match has("is GOOD") {
            true => (T::FieldGoal, R::FieldGoalGood, Some((true, 3))),
            false => (T::FieldGoal, R::FieldGoalMissed, None),
        }
    } else if has("extra point") {
        match has("is GOOD") {
            true => (T::ExtraPoint, R::ExtraPointGood, Some((true, 1))),
            false => (T::ExtraPoint, R::ExtraPointMissed, None),
        }
    } else if has("TWO-POINT CONVERSION") {
        match has("ATTEMPT SUCCEEDS") {
            true => (T::TwoPoint, R::TwoPointGood, Some((true, 2))),
            false => (T::TwoPoint, R::TwoPointFailed, None),
        }
    } else if has("No Play") {
        (T::NoPlay, R::Penalty, None)
    } else {
        let ty = if has("kneels") {
            T::Kneel
        } else if has("spiked") {
            T::Spike
        } else if has(" pass ") || has("sacked") {
            T::Pass
        } else {
            T::Run
        };
        let short = distance.is_some_and(|d| gained < i16::from(d));
        let result = if td.is_some() {
            R::Touchdown
        } else if turnover {
            R::Interception
        } else if fumble_lost {
            R::FumbleLost
        } else if down == Some(4) && short {
            R::TurnoverOnDowns
        } else if has("sacked") {
            R::Sack
        } else if has("incomplete") {
            R::Incomplete
        } else if distance.is_some() && !short {
            R::FirstDown
        } else {
            R::Gain
        };
        (ty, result, td)
    };
    let result = if td.is_some() && !matches!(result, R::Touchdown) && matches!(ty, T::Kickoff | T::Punt) {
        R::Touchdown
    } else {
        result
    };
    (ty, result, score)
}

pub fn gamecenter(bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    let bad = |detail: String| FeedError::Malformed { what: "nfl-gamecenter", detail };
    let file: Value = serde_json::from_slice(bytes)
        .map_err(|e| FeedError::Malformed { what: "nfl-gamecenter JSON", detail: e.to_string() })?;
    let (feed_id, g) =
        file.as_object().and_then(|o| o.iter().next()).ok_or_else(|| bad("no game object".into()))?;
    let abbr = |side: &str| {
        g[side]["abbr"].as_str().map(str::to_string).ok_or_else(|| bad(format!("no {side}.abbr")))
    };
    let (home, away) = (abbr("home")?, abbr("away")?);
    let drives = g["drives"].as_object().ok_or_else(|| bad("no drives".into()))?;
    let mut drive_ids: Vec<u32> = drives.keys().filter_map(|k| k.parse().ok()).collect();
    drive_ids.sort_unstable();
    let id = opts.game_id.map_or_else(|| format!("nfl-{feed_id}"), str::to_string);
    let mut b = Builder::new(&id, 0);
    b.push(0, Some(900_000), Body::Football(Fb::GameStart { home: home.clone(), away: away.clone() }));
    let (mut unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let (mut quarter, mut at_ms, mut ended) = (0u8, 0u64, false);
    let side_of = |team: &str| {
        if team == home {
            Some(Side::Home)
        } else if team == away {
            Some(Side::Away)
        } else {
            None
        }
    };
    for d in drive_ids {
        let plays = &drives[&d.to_string()]["plays"];
        let mut play_ids: Vec<u64> =
            plays.as_object().map(|o| o.keys().filter_map(|k| k.parse().ok()).collect()).unwrap_or_default();
        play_ids.sort_unstable();
        for pid in play_ids {
            let p = &plays[&pid.to_string()];
            let desc = p["desc"].as_str().unwrap_or("").trim().to_string();
            let qtr = p["qtr"].as_f64().unwrap_or(0.0) as u8;
            let clock = p["time"].as_str().and_then(clock_ms);
            // Replay pacing: ~40 s of wall time per play, as in a real game.
            at_ms += 40_000;
            let mut bodies = Vec::new();
            if qtr > quarter && qtr > 0 {
                if quarter > 0 {
                    bodies.push(Fb::PeriodEnd { period: quarter });
                }
                quarter = qtr;
                bodies.push(Fb::PeriodStart { period: quarter });
            }
            if let Some(rest) = desc.strip_prefix("Timeout #") {
                let team = rest.split(" by ").nth(1).and_then(|t| t.split_whitespace().next()).unwrap_or("");
                match side_of(team) {
                    Some(side) => bodies.push(Fb::Timeout { side }),
                    None => {
                        skipped.push((pid as usize, format!("play {pid}: timeout by unknown team {team:?}")))
                    }
                }
            } else if desc.starts_with("END GAME") {
                ended = true;
            } else {
                let posteam = p["posteam"].as_str().unwrap_or("");
                let down = p["down"].as_f64().map(|v| v as u8).filter(|v| *v > 0);
                let distance = p["ydstogo"].as_f64().map(|v| v as u8).filter(|_| down.is_some());
                match (side_of(posteam), desc.is_empty()) {
                    (Some(possession), false)
                        if down.is_some()
                            || desc.contains(" kicks ")
                            || desc.contains("extra point")
                            || desc.contains("TWO-POINT")
                            || desc.contains("field goal")
                            || desc.contains(" punts ") =>
                    {
                        let gained = yards(&desc);
                        let (play_type, result, score) = classify(&desc, down, distance, gained);
                        let scoring = score.map(|(offense, points)| Scoring {
                            side: if offense { possession } else { possession.other() },
                            points,
                        });
                        let yardline_100 = p["yrdln"].as_str().and_then(|y| yardline_100(y, posteam));
                        bodies.push(Fb::Play(Play {
                            quarter: qtr,
                            possession,
                            down,
                            distance,
                            yardline_100,
                            play_type,
                            yards: gained,
                            result,
                            scoring,
                            desc: Some(opensports_proto::limits::clip(
                                &desc,
                                opensports_proto::limits::MAX_TEXT,
                            )),
                        }));
                    }
                    _ => {
                        let kind = desc.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
                        *unknown.entry(if kind.is_empty() { "(empty)".into() } else { kind }).or_insert(0) +=
                            1;
                    }
                }
            }
            for body in bodies {
                b.push(at_ms, clock, Body::Football(body));
            }
        }
    }
    if quarter > 0 {
        b.push(at_ms, Some(0), Body::Football(Fb::PeriodEnd { period: quarter }));
    }
    if ended || quarter >= 4 {
        b.push(at_ms, Some(0), Body::Football(Fb::GameEnd));
    }
    Ok(Feed { game: SimGame { id, sport: Sport::Football, events: b.events }, unknown, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yards_lines_and_results_from_descriptions() {
        assert_eq!(yards("(13:45) A.Rodgers sacked at GB 15 for -10 yards (R.Robertson)."), -10);
        assert_eq!(yards("A.Jones left tackle to GB 25 for no gain (R.Smith)."), 0);
        assert_eq!(yards("pass short right to J.Graham for 8 yards, TOUCHDOWN."), 8);
        assert_eq!(yardline_100("GB 25", "GB"), Some(75));
        assert_eq!(yardline_100("CHI 35", "GB"), Some(35));
        assert_eq!(yardline_100("50", "GB"), Some(50));
        let td =
            classify("A.Rodgers pass short right to J.Graham for 8 yards, TOUCHDOWN.", Some(1), Some(8), 8);
        assert_eq!(td, (T::Pass, R::Touchdown, Some((true, 6))));
        let fg = classify("M.Crosby 39 yard field goal is GOOD, Center-H.Bradley.", None, None, 0);
        assert_eq!(fg, (T::FieldGoal, R::FieldGoalGood, Some((true, 3))));
        let downs = classify("M.Trubisky scrambles up the middle to GB 30 for 3 yards.", Some(4), Some(7), 3);
        assert_eq!(downs.1, R::TurnoverOnDowns);
    }
}
