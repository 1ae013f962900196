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
//! gain.
//!
//! **Points come from the structured fields, never from the text.** Each play's `players` lists
//! GSIS stat ids with the credited `clubcode`: a touchdown stat (rush, reception, return,
//! recovery: [`TOUCHDOWN_STATS`]) is 6 for that club, 70 a field goal (3), 72 an extra point
//! (1), 75/77 a two-point try (2), 89 a safety (2, to the defence). A play whose `players` has
//! stats but no scoring id scores nothing, whatever `desc` says ("TOUCHDOWN ... the play was
//! REVERSED", "TOUCHDOWN NULLIFIED by Penalty"). Only a play with no stats at all falls back on
//! `sp` (0 = not a scoring play) and then on the description. After the last play the running
//! score is checked against the feed's final (`home.score.T`, `away.score.T`): a difference is
//! published as a `score_correction` naming it, before `game_end`, so the game never ends on a
//! score the provider does not have.
//! `Timeout #n by TEAM` becomes a `timeout`; quarter changes become `period_start`/`period_end`;
//! `END GAME` ends the game; other descriptions without a down (two-minute warnings, `END
//! QUARTER`) are counted as unknown. `yardline_100` comes from `yrdln` (`"GB 25"` is 75 for GB's
//! offense, 25 for the other; `"50"` is 50).

use std::collections::BTreeMap;

use opensports_proto::football::{Event as Fb, Play, PlayResult as R, PlayType as T, Scoring};
use opensports_proto::{Body, Side, Sport};
use serde_json::Value;

use super::{Feed, FeedError, Options, ScoreCheck};
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

/// GSIS stat ids of a touchdown, one per way of scoring it (the passer's 16 is not one: the
/// receiver's 22 is the same touchdown): rush 11/13, reception 22/24, interception return 26/28,
/// punt return 34/36, kickoff return 46/48, own recovery 56/58, opponent recovery 60/62,
/// other returns 64.
const TOUCHDOWN_STATS: &[u32] = &[11, 13, 22, 24, 26, 28, 34, 36, 46, 48, 56, 58, 60, 62, 64];

/// Points a play scored, and for which club, from its GSIS stats: `None` when the play has no
/// stats to read (older or partial feeds), `Some(None)` when it has stats and scored nothing.
fn stat_score(players: &Value) -> Option<Option<(String, u8)>> {
    let stats: Vec<(u32, &str)> = players
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|s| Some((s["statId"].as_f64()? as u32, s["clubcode"].as_str()?)))
        .collect();
    if stats.is_empty() {
        return None;
    }
    let find = |ids: &[u32], points: u8| {
        stats.iter().find(|(id, _)| ids.contains(id)).map(|(_, club)| ((*club).to_string(), points))
    };
    Some(
        find(TOUCHDOWN_STATS, 6)
            .or_else(|| find(&[70], 3))
            .or_else(|| find(&[72], 1))
            .or_else(|| find(&[75, 77], 2))
            .or_else(|| find(&[89], 2)),
    )
}

/// Points from the description alone, (offense scored?, points), for plays without stats: a
/// touchdown the text later reverses or nullifies does not count.
fn desc_score(desc: &str) -> Option<(bool, u8)> {
    let has = |s: &str| desc.contains(s);
    let defense = has("INTERCEPTED") || (has("FUMBLES") && has("RECOVERED by"));
    let reversed = |word: &str| {
        desc.rfind(word).is_some_and(|at| {
            let after = &desc[at..];
            after.contains("REVERSED") || after.contains("NULLIFIED")
        })
    };
    if has("No Play") {
        None
    } else if has("TOUCHDOWN") && !reversed("TOUCHDOWN") {
        Some((!defense, 6))
    } else if has("field goal") && has("is GOOD") && !reversed("is GOOD") {
        Some((true, 3))
    } else if has("extra point") && has("is GOOD") {
        Some((true, 1))
    } else if has("TWO-POINT CONVERSION") && has("ATTEMPT SUCCEEDS") && !reversed("ATTEMPT SUCCEEDS") {
        Some((true, 2))
    } else if has("SAFETY") && !reversed("SAFETY") {
        Some((false, 2))
    } else {
        None
    }
}

/// What the officials finally ruled: a play reversed on review is described as called, then
/// "... the play was REVERSED." and the play as it stands; that last part is the play.
fn ruling(desc: &str) -> &str {
    match desc.rfind("REVERSED.") {
        Some(at) if !desc[at + 9..].trim().is_empty() => desc[at + 9..].trim(),
        _ => desc,
    }
}

/// Type and result of a play from its description, given the points it scored
/// (`score`: scored by the offense?, points).
fn classify(
    desc: &str,
    down: Option<u8>,
    distance: Option<u8>,
    gained: i16,
    score: Option<(bool, u8)>,
) -> (T, R) {
    let has = |s: &str| desc.contains(s);
    let turnover = has("INTERCEPTED");
    let fumble_lost = has("FUMBLES") && has("RECOVERED by");
    let td = score.filter(|(_, points)| *points == 6);
    let (ty, result) = if has(" kicks ") {
        (T::Kickoff, if has("Touchback") { R::Touchback } else { R::Gain })
    } else if has(" punts ") {
        (T::Punt, R::Punt)
    } else if has("field goal") {
        (T::FieldGoal, if score.is_some() { R::FieldGoalGood } else { R::FieldGoalMissed })
    } else if has("extra point") {
        (T::ExtraPoint, if score.is_some() { R::ExtraPointGood } else { R::ExtraPointMissed })
    } else if has("TWO-POINT CONVERSION") {
        (T::TwoPoint, if score.is_some() { R::TwoPointGood } else { R::TwoPointFailed })
    } else if has("No Play") && score.is_none() {
        (T::NoPlay, R::Penalty)
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
        } else if score.is_some_and(|(offense, points)| !offense && points == 2) {
            R::Safety
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
        (ty, result)
    };
    let result = if td.is_some() && !matches!(result, R::Touchdown) && matches!(ty, T::Kickoff | T::Punt) {
        R::Touchdown
    } else {
        result
    };
    (ty, result)
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
    let mut running = ScoreCheck::default();
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
                        let gained = yards(ruling(&desc));
                        let scoring = match stat_score(&p["players"]) {
                            Some(scored) => scored.and_then(|(club, points)| {
                                side_of(&club).map(|side| Scoring { side, points })
                            }),
                            None if p["sp"].as_f64() == Some(0.0) => None,
                            None => desc_score(&desc).map(|(offense, points)| Scoring {
                                side: if offense { possession } else { possession.other() },
                                points,
                            }),
                        };
                        let score = scoring.map(|s| (s.side == possession, s.points));
                        let (play_type, result) = classify(ruling(&desc), down, distance, gained, score);
                        if let Some(s) = scoring {
                            running.add(s.side, s.points);
                        }
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
    let official = |side: &str| g[side]["score"]["T"].as_f64().map(|v| v as u16);
    if let (Some(home), Some(away)) = (official("home"), official("away"))
        && let Some(c) = running.against(home, away, || "final score".into())
    {
        b.push(at_ms, Some(0), Body::Football(Fb::ScoreCorrection(c)));
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
        let td = "A.Rodgers pass short right to J.Graham for 8 yards, TOUCHDOWN.";
        assert_eq!(desc_score(td), Some((true, 6)));
        assert_eq!(classify(td, Some(1), Some(8), 8, Some((true, 6))), (T::Pass, R::Touchdown));
        let fg = "M.Crosby 39 yard field goal is GOOD, Center-H.Bradley.";
        assert_eq!(desc_score(fg), Some((true, 3)));
        assert_eq!(classify(fg, None, None, 0, Some((true, 3))), (T::FieldGoal, R::FieldGoalGood));
        let downs =
            classify("M.Trubisky scrambles up the middle to GB 30 for 3 yards.", Some(4), Some(7), 3, None);
        assert_eq!(downs.1, R::TurnoverOnDowns);
        let reversed = "J.Allen sacked at BUF 20 for -8 yards. FUMBLES, RECOVERED by MIA-C.Wilkins at BUF 5. \
                        C.Wilkins for 5 yards, TOUCHDOWN. The Replay Official reviewed the fumble ruling, \
                        and the play was REVERSED. J.Allen sacked at BUF 20 for -8 yards.";
        assert_eq!(desc_score(reversed), None);
        assert_eq!(classify(ruling(reversed), Some(2), Some(10), -8, None).1, R::Sack);
        let nullified = "T.Brady pass to R.Gronkowski for 20 yards, TOUCHDOWN NULLIFIED by Penalty.";
        assert_eq!(desc_score(nullified), None);
    }

    /// A fumble-return touchdown reversed on review: the text says TOUCHDOWN, the structured
    /// fields (`sp` 0, no scoring stat) say no score. Then the feed's own final disagrees with
    /// the plays by a field goal: the adapter publishes a correction before `game_end`.
    #[test]
    fn a_reversed_touchdown_does_not_count_and_the_final_is_the_feeds() {
        let stat = |id: f64, club: &str| serde_json::json!([{"statId": id, "clubcode": club, "yards": 0.0}]);
        let play = |qtr: f64, desc: &str, sp: f64, players: Value| {
            serde_json::json!({"qtr": qtr, "down": 1.0, "ydstogo": 10.0, "yrdln": "BUF 25", "time": "10:00",
                               "posteam": "BUF", "desc": desc, "sp": sp, "players": players})
        };
        let doc = serde_json::json!({"2023091100": {
            "home": {"abbr": "MIA", "score": {"T": 9.0}},
            "away": {"abbr": "BUF", "score": {"T": 0.0}},
            "drives": {"1": {"plays": {
                "10": play(1.0, "J.Allen sacked at BUF 20 for -8 yards. FUMBLES, RECOVERED by MIA-C.Wilkins at \
                                 BUF 5. C.Wilkins for 5 yards, TOUCHDOWN. The Replay Official reviewed the fumble \
                                 ruling, and the play was REVERSED. J.Allen sacked at BUF 20 for -8 yards.", 0.0,
                           serde_json::json!({"00-1": stat(20.0, "BUF"), "00-2": stat(83.0, "MIA")})),
                "20": play(1.0, "J.Cook right end for 75 yards, TOUCHDOWN.", 1.0,
                           serde_json::json!({"00-3": stat(11.0, "BUF")})),
                "30": play(2.0, "J.Allen pass short middle INTERCEPTED by X.Howard, TOUCHDOWN.", 1.0,
                           serde_json::json!({"00-4": stat(26.0, "MIA"), "00-5": stat(19.0, "BUF")})),
                "40": play(4.0, "END GAME", 0.0, serde_json::json!({})),
            }}}
        }});
        let feed = gamecenter(doc.to_string().as_bytes(), &Options::default()).expect("parses");
        let plays: Vec<&Play> = feed
            .game
            .events
            .iter()
            .filter_map(|e| match &e.event.body {
                Body::Football(Fb::Play(p)) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(plays[0].scoring, None, "the reversed touchdown scores nothing");
        assert_eq!(plays[0].result, R::Sack);
        assert_eq!(plays[1].scoring, Some(Scoring { side: Side::Away, points: 6 }));
        assert_eq!(plays[2].scoring, Some(Scoring { side: Side::Home, points: 6 }), "pick six to MIA");
        let tail: Vec<&Body> = feed.game.events.iter().rev().take(2).map(|e| &e.event.body).collect();
        let Body::Football(Fb::ScoreCorrection(c)) = tail[1] else { panic!("{tail:?}") };
        assert_eq!((c.home, c.away), (9, 0));
        assert!(c.reason.contains("6-6"), "{}", c.reason);
        assert_eq!(tail[0], &Body::Football(Fb::GameEnd));
    }
}
