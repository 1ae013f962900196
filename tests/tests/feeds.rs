//! Golden tests: real provider feeds from `OPENSPORTS_DATA` (CI sets it to ../shared/data)
//! replayed through the real server must reproduce the official facts in the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use opensports_server::config::PluginEntry;
use opensports_server::feeds::{self, Format};
use opensports_server::sim::{self, Speed};
use opensports_tests::{TestServer, WAIT, plugin_wasm};

/// The data dir, or `None` (and a line saying why) when it is not there.
fn data(file: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("OPENSPORTS_DATA") else {
        eprintln!("skipped: OPENSPORTS_DATA is not set (CI sets it to ../shared/data, see .ci/run)");
        return None;
    };
    let path = PathBuf::from(dir).join(file);
    assert!(path.exists(), "OPENSPORTS_DATA is set but {} is missing", path.display());
    Some(path)
}

/// The file from `OPENSPORTS_DATA`, its detected format checked, parsed with `opts`, with no
/// unreadable record. `None` (and a line saying why) without the data.
fn load(file: &str, format: Format, opts: &feeds::Options<'_>) -> Option<(Vec<u8>, feeds::Feed)> {
    let path = data(file)?;
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(feeds::detect(&bytes).unwrap(), format);
    let feed = feeds::parse(format, &bytes, opts).unwrap();
    assert!(feed.skipped.is_empty(), "{:?}", feed.skipped);
    Some((bytes, feed))
}

/// A server with `plugin` loaded and the whole feed replayed into it (as fast as possible).
async fn replayed(feed: &feeds::Feed, plugin: &str) -> TestServer {
    let wasm = plugin_wasm(plugin);
    let server = TestServer::start_with(|c| c.plugins.load = vec![PluginEntry::new(wasm.clone())]).await;
    let mut publisher = server.publisher().await;
    sim::publish(&mut publisher, std::slice::from_ref(&feed.game), Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&feed.game.id, feed.game.events.len() as u64).await;
    server
}

/// The game's state and its `(home, away)` score.
async fn final_state(server: &TestServer, id: &str) -> (serde_json::Value, (u64, u64)) {
    let (_, body) = server.get(&format!("/v1/games/{id}")).await;
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let score = (state["score"]["home"].as_u64().unwrap(), state["score"]["away"].as_u64().unwrap());
    (state, score)
}

/// Waits (plugins run right after the state update) until `key` of the topic's latest data is
/// `want`, then asserts it.
async fn assert_latest(server: &TestServer, topic: &str, key: &str, want: &serde_json::Value) {
    let mut got = serde_json::Value::Null;
    for _ in 0..100 {
        got = server
            .running()
            .fanout
            .latest(topic)
            .map(|p| serde_json::from_str::<serde_json::Value>(p.data()).unwrap()[key].clone())
            .unwrap_or_default();
        if got == *want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got, *want, "{topic} {key}");
}

/// Points, rebounds and assists per player, computed from the raw feed alone; players by the
/// feed's own short name (`playerNameI`, "S. Curry") as box scores print it, `S.Curry`.
fn expected_lines(raw: &serde_json::Value) -> BTreeMap<String, (u64, u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let actions = raw["game"]["actions"].as_array().unwrap();
    let names: BTreeMap<i64, String> = actions
        .iter()
        .filter_map(|a| Some((a["personId"].as_i64()?, a["playerNameI"].as_str()?.replace(' ', ""))))
        .filter(|(id, n)| *id != 0 && !n.is_empty())
        .collect();
    for a in actions {
        let pid = &names.get(&a["personId"].as_i64().unwrap_or(0)).cloned().unwrap_or_default();
        let made = a["shotResult"] == "Made";
        let kind = a["actionType"].as_str().unwrap_or("");
        match kind {
            "2pt" | "3pt" if made => {
                out.entry(pid.clone()).or_default().0 += if kind == "3pt" { 3 } else { 2 };
                if let Some(ast) = a["assistPersonId"].as_i64().filter(|p| *p != 0) {
                    out.entry(names[&ast].clone()).or_default().2 += 1;
                }
            }
            "freethrow" if made => out.entry(pid.clone()).or_default().0 += 1,
            "rebound" if !pid.is_empty() => out.entry(pid.clone()).or_default().1 += 1,
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nba_live_gsw_at_bkn_reproduces_the_final_and_every_players_line() {
    let Some((bytes, feed)) = load("nba/nba_live_pbp_0022000001.json", Format::NbaLive, &Default::default())
    else {
        return;
    };
    // Kinds our schema does not model are counted, not dropped.
    assert!(feed.unknown.keys().any(|k| k.starts_with("stoppage")), "{:?}", feed.unknown);
    assert!(feed.unknown.keys().any(|k| k.starts_with("violation")), "{:?}", feed.unknown);

    let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    check_basketball(&feed, (125, 99), ("BKN", "GSW"), 4, &expected_lines(&raw)).await;
}

/// Points, rebounds and assists per player from the raw playbyplayv2 rows alone; players by
/// name as box scores print it ("Stephen Curry" → `S.Curry`).
fn expected_stats_lines(raw: &serde_json::Value) -> BTreeMap<String, (u64, u64, u64)> {
    let set = &raw["resultSets"][0];
    let h: Vec<&str> = set["headers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let col = |n: &str| h.iter().position(|x| *x == n).unwrap();
    let (kind, desc_h, desc_v) = (col("EVENTMSGTYPE"), col("HOMEDESCRIPTION"), col("VISITORDESCRIPTION"));
    let (p1, t1, p2, t2) = (col("PLAYER1_ID"), col("PERSON1TYPE"), col("PLAYER2_ID"), col("PERSON2TYPE"));
    let mut out: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for r in set["rowSet"].as_array().unwrap() {
        let desc = format!("{} {}", r[desc_h].as_str().unwrap_or(""), r[desc_v].as_str().unwrap_or(""));
        let player = |p: usize, t: usize| {
            let name = r[p + 1].as_str().unwrap_or("");
            let (first, last) = name.split_once(' ').unwrap_or(("", name));
            let short = format!("{}.{}", &first[..1.min(first.len())], last.replace(' ', ""));
            matches!(r[t].as_i64(), Some(4 | 5)).then_some(short)
        };
        match r[kind].as_i64().unwrap() {
            1 => {
                out.entry(player(p1, t1).unwrap()).or_default().0 += if desc.contains("3PT") { 3 } else { 2 };
                if let Some(a) = player(p2, t2) {
                    out.entry(a).or_default().2 += 1;
                }
            }
            3 if !desc.contains("MISS") => out.entry(player(p1, t1).unwrap()).or_default().0 += 1,
            4 => {
                if let Some(p) = player(p1, t1) {
                    out.entry(p).or_default().1 += 1;
                }
            }
            _ => {}
        }
    }
    out
}

/// Replays `feed` into a server running the box score and checks the final and every line.
async fn check_basketball(
    feed: &feeds::Feed,
    score: (u64, u64),
    teams: (&str, &str),
    period: u64,
    want: &BTreeMap<String, (u64, u64, u64)>,
) {
    let server = replayed(feed, "basketball-boxscore").await;
    let id = &feed.game.id;
    let (state, got_score) = final_state(&server, id).await;
    assert_eq!((state["home"].as_str(), state["away"].as_str()), (Some(teams.0), Some(teams.1)));
    assert_eq!(got_score, score, "{state}");
    assert_eq!((state["status"].as_str(), state["period"].as_u64()), (Some("ended"), Some(period)));
    assert!(want.len() > 15, "{} players", want.len());
    let line = |pid: &str| {
        server
            .running()
            .fanout
            .latest(&format!("game/{id}/basketball-boxscore/player/{pid}"))
            .map(|p| serde_json::from_str::<serde_json::Value>(p.data()).unwrap())
    };
    let got_line = |v: &serde_json::Value| {
        (
            v["pts"].as_u64().unwrap(),
            v["oreb"].as_u64().unwrap() + v["dreb"].as_u64().unwrap(),
            v["ast"].as_u64().unwrap(),
        )
    };
    // Plugins run right after the state update: give the last events a moment.
    for _ in 0..100 {
        if want.iter().all(|(pid, w)| line(pid).is_some_and(|v| got_line(&v) == *w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (pid, w) in want {
        let v = line(pid).unwrap_or_else(|| panic!("no box score line for {pid}"));
        assert_eq!(got_line(&v), *w, "player {pid}: (pts, reb, ast)");
    }
    let total: u64 = want.values().map(|w| w.0).sum();
    assert_eq!(total, score.0 + score.1, "every point is some player's");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nba_stats_nop_at_tor_reproduces_the_overtime_final_and_every_players_line() {
    let Some((bytes, feed)) =
        load("nba/nba_stats_playbyplayv2_0021900001.json", Format::NbaStats, &Default::default())
    else {
        return;
    };
    assert!(feed.unknown.contains_key("eventmsgtype/7"), "violations are counted: {:?}", feed.unknown);
    let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    check_basketball(&feed, (130, 122), ("TOR", "NOP"), 5, &expected_stats_lines(&raw)).await;
}

#[test]
fn bad_feeds_get_errors_naming_file_and_line() {
    let Some(path) = data("nba/nba_live_pbp_0022000001.json") else { return };
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("truncated.json");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err =
        format!("{:#}", opensports_server::cli::replay::load(&cut, None, &Default::default()).unwrap_err());
    assert!(err.contains("truncated.json") && err.contains("line"), "{err}");

    let err = format!(
        "{:#}",
        opensports_server::cli::replay::load(&path, Some("bogus"), &Default::default()).unwrap_err()
    );
    assert!(err.contains("unknown format") && err.contains("nba-live"), "{err}");
    // One bad action in the middle: reported with its position, the rest still replays.
    let mut raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    raw["game"]["actions"][100]["period"] = serde_json::json!("second");
    let feed =
        feeds::parse(Format::NbaLive, &serde_json::to_vec(&raw).unwrap(), &Default::default()).unwrap();
    assert_eq!(feed.skipped.len(), 1);
    assert!(feed.skipped[0].1.starts_with("action 100"), "{:?}", feed.skipped);
    assert!(feed.game.events.len() > 600);

    // A line-based feed with a broken line in the middle: named by line, the rest replays.
    if let Some(f1) = data("f1/fastf1test_2020_70thAnniv_FP2_timing_data.raw") {
        let text = std::fs::read_to_string(f1).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[500] = "00:10:00.000{\"Lines\":{\"44\":";
        let feed =
            feeds::parse(Format::F1LiveTiming, lines.join("\n").as_bytes(), &Default::default()).unwrap();
        assert_eq!(feed.skipped.len(), 1);
        assert!(feed.skipped[0].1.starts_with("line 501"), "{:?}", feed.skipped);
        assert!(feed.game.events.len() > 500);
    }

    let garbage = dir.path().join("notes.txt");
    std::fs::write(&garbage, "hello").unwrap();
    let err = format!(
        "{:#}",
        opensports_server::cli::replay::load(&garbage, None, &Default::default()).unwrap_err()
    );
    assert!(err.contains("notes.txt") && err.contains("--format"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsbomb_girona_v_barcelona_goals_shots_and_provider_xg() {
    let opts = feeds::Options { game_id: Some("sb-15986"), home: Some("Girona"), file_stem: None };
    let Some((bytes, feed)) = load("soccer/statsbomb_15986_events.json", Format::Statsbomb, &opts) else {
        return;
    };
    assert!(feed.unknown.get("Carry").is_some_and(|n| *n > 900), "{:?}", feed.unknown);
    let bad = feeds::Options { home: Some("Real Madrid"), ..opts };
    assert!(feeds::parse(Format::Statsbomb, &bytes, &bad).unwrap_err().to_string().contains("Real Madrid"));

    // The facts, from the raw events alone.
    let raw: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    let (mut goals, mut shots, mut xg) =
        (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new(), Vec::new());
    for e in &raw {
        let team = e["team"]["name"].as_str().unwrap().to_string();
        match e["type"]["name"].as_str().unwrap() {
            "Shot" => {
                *shots.entry(team.clone()).or_default() += 1;
                xg.push(e["shot"]["statsbomb_xg"].as_f64().unwrap() as f32);
                if e["shot"]["outcome"]["name"] == "Goal" {
                    *goals.entry(team).or_default() += 1;
                }
            }
            "Own Goal Against" => {
                let other = if team == "Girona" { "Barcelona" } else { "Girona" };
                *goals.entry(other.to_string()).or_default() += 1;
            }
            _ => {}
        }
    }

    let server = replayed(&feed, "soccer-shots").await;
    let (state, score) = final_state(&server, "sb-15986").await;
    assert_eq!(state["status"], "ended");
    assert_eq!(score, (goals["Girona"], goals["Barcelona"]), "{state}");
    assert_eq!(score, (2, 2));
    let want_shots = serde_json::json!({"home": shots["Girona"], "away": shots["Barcelona"]});
    assert_latest(&server, "game/sb-15986/soccer-shots/xg", "shots", &want_shots).await;

    // The provider's xG rides on every shot event, as logged.
    let (_, log) = server.admin_get("/v1/games/sb-15986/events").await;
    let logged: Vec<f32> = log
        .lines()
        .map(|l| serde_json::from_str::<opensports_proto::Event>(l).unwrap())
        .filter_map(|e| match e.body {
            opensports_proto::Body::Soccer(opensports_proto::soccer::Event::Shot { provider_xg, .. }) => {
                provider_xg
            }
            _ => None,
        })
        .collect();
    assert_eq!(logged, xg);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wyscout_liverpool_v_leicester_goals_and_shots_per_team() {
    let opts = feeds::Options { game_id: Some("wy-2499773"), home: Some("Liverpool"), file_stem: None };
    let Some((bytes, feed)) = load("soccer/wyscout_v2_match_2499773_events.json", Format::Wyscout, &opts)
    else {
        return;
    };
    assert!(feed.unknown.contains_key("eventName/1"), "duels are counted: {:?}", feed.unknown);

    // The facts, from the raw events: shots (incl. free-kick shots and penalties) and goals
    // (tag 101 on a shot, tag 102 an own goal for the other team) per team id.
    let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let (mut shots, mut goals) = (BTreeMap::<i64, u64>::new(), BTreeMap::<i64, u64>::new());
    for e in raw["events"].as_array().unwrap() {
        let team = e["teamId"].as_i64().unwrap();
        let other = if team == 1612 { 1631 } else { 1612 };
        let tags: Vec<i64> =
            e["tags"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
        let shot = e["eventName"] == 10
            || (e["eventName"] == 3 && matches!(e["subEventName"].as_i64(), Some(33 | 35)));
        if shot {
            *shots.entry(team).or_default() += 1;
            if tags.contains(&101) {
                *goals.entry(team).or_default() += 1;
            }
        }
        if tags.contains(&102) {
            *goals.entry(other).or_default() += 1;
        }
    }
    // Every shot where the provider put it: one team's coordinates come as strings ("92") in
    // this file, and must not fall back to the centre spot.
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| v.as_str().unwrap().parse().unwrap());
    let raw_shots: Vec<(f32, f32)> = raw["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["eventName"] == 10
                || (e["eventName"] == 3 && matches!(e["subEventName"].as_i64(), Some(33 | 35)))
        })
        .map(|e| {
            (num(&e["positions"][0]["x"]) as f32 * 1.05, (100.0 - num(&e["positions"][0]["y"]) as f32) * 0.68)
        })
        .collect();
    let parsed_shots: Vec<(f32, f32)> = feed
        .game
        .events
        .iter()
        .filter_map(|t| match &t.event.body {
            opensports_proto::Body::Soccer(opensports_proto::soccer::Event::Shot { x, y, .. }) => {
                Some((*x, *y))
            }
            _ => None,
        })
        .collect();
    assert_eq!(parsed_shots, raw_shots);
    let open_play = raw["events"].as_array().unwrap().iter().filter(|e| e["eventName"] == 10).count();
    assert_eq!(open_play, 31, "the data README's shot count (event 10; free-kick shots come on top)");

    let server = replayed(&feed, "soccer-shots").await;
    let (state, score) = final_state(&server, "wy-2499773").await;
    assert_eq!((state["home"].as_str(), state["status"].as_str()), (Some("Liverpool"), Some("ended")));
    assert_eq!(score, (goals[&1612], goals[&1631]), "{state}");
    let want = serde_json::json!({"home": shots[&1612], "away": shots[&1631]});
    assert_latest(&server, "game/wy-2499773/soccer-shots/xg", "shots", &want).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfl_gamecenter_gb_at_chi_final_drives_and_every_snap() {
    let Some((bytes, feed)) =
        load("nfl/nfl_gamecenter_2019090500_GB_at_CHI.json", Format::NflGamecenter, &Default::default())
    else {
        return;
    };

    // The facts, from the raw feed: each drive's result, and (quarter, down, distance, line)
    // of every snap with a down.
    let raw: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let g = &raw["2019090500"];
    let drives = g["drives"].as_object().unwrap();
    let mut ids: Vec<u32> = drives.keys().filter_map(|k| k.parse().ok()).collect();
    ids.sort_unstable();
    let mut want_results = Vec::new();
    let mut want_snaps = Vec::new();
    for d in &ids {
        let drive = &drives[&d.to_string()];
        want_results.push(match drive["result"].as_str().unwrap() {
            "Punt" => "punt",
            "Field Goal" => "field_goal",
            "Missed FG" => "missed_field_goal",
            "Touchdown" => "touchdown",
            "Downs" => "downs",
            "Interception" | "Fumble" => "turnover",
            "Safety" => "safety",
            "End of Half" | "End of Game" => "end_of_half",
            other => panic!("drive result {other}"),
        });
        let plays = drive["plays"].as_object().unwrap();
        let mut pids: Vec<u64> = plays.keys().filter_map(|k| k.parse().ok()).collect();
        pids.sort_unstable();
        for pid in pids {
            let p = &plays[&pid.to_string()];
            let down = p["down"].as_f64().unwrap_or(0.0) as u8;
            if down == 0 {
                continue;
            }
            let (team, line) = match p["yrdln"].as_str().unwrap().rsplit_once(' ') {
                Some((t, n)) => (t.to_string(), n.parse::<u8>().unwrap()),
                None => (String::new(), 50),
            };
            let yl = if team == p["posteam"].as_str().unwrap() { 100 - line } else { line };
            want_snaps.push((
                p["qtr"].as_f64().unwrap() as u8,
                down,
                p["ydstogo"].as_f64().unwrap() as u8,
                yl,
            ));
        }
    }
    let got_snaps: Vec<(u8, u8, u8, u8)> = feed
        .game
        .events
        .iter()
        .filter_map(|t| match &t.event.body {
            opensports_proto::Body::Football(opensports_proto::football::Event::Play(p)) => {
                Some((p.quarter, p.down?, p.distance?, p.yardline_100?))
            }
            _ => None,
        })
        .collect();
    assert_eq!(got_snaps, want_snaps, "down, distance, yardline per snap");

    let server = replayed(&feed, "football-drives").await;
    let id = &feed.game.id;
    let (state, score) = final_state(&server, id).await;
    assert_eq!((state["home"].as_str(), state["away"].as_str()), (Some("CHI"), Some("GB")));
    let total = |side: &str| g[side]["score"]["T"].as_f64().unwrap() as u64;
    assert_eq!(score, (total("home"), total("away")), "{state}");
    assert_eq!(score, (3, 10));
    assert_eq!(state["status"], "ended");
    let last = format!("game/{id}/football-drives/drive/{}", want_results.len());
    assert_latest(&server, &last, "n", &serde_json::json!(want_results.len())).await;
    let got_results: Vec<String> = (1..=want_results.len())
        .map(|n| {
            let p = server.running().fanout.latest(&format!("game/{id}/football-drives/drive/{n}")).unwrap();
            serde_json::from_str::<serde_json::Value>(p.data()).unwrap()["result"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got_results, want_results, "each drive's result");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_live_timing_practice_classification_and_best_laps() {
    let opts = feeds::Options { game_id: Some("f1-fp2"), home: None, file_stem: None };
    let Some((bytes, feed)) =
        load("f1/fastf1test_2020_70thAnniv_FP2_timing_data.raw", Format::F1LiveTiming, &opts)
    else {
        return;
    };

    // The facts: each driver's last `Position` and `BestLapTime` in the stream.
    let (mut position, mut best) = (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
    let text = String::from_utf8(bytes.clone()).unwrap();
    for line in text.trim_start_matches('\u{feff}').lines().filter(|l| l.len() > 12) {
        let v: serde_json::Value = serde_json::from_str(&line[12..]).unwrap();
        for (driver, d) in v["Lines"].as_object().into_iter().flatten() {
            if let Some(p) = d["Position"].as_str().and_then(|p| p.parse().ok()) {
                position.insert(driver.clone(), p);
            }
            if let Some(t) = d["BestLapTime"]["Value"].as_str().filter(|t| !t.is_empty()) {
                best.insert(driver.clone(), feeds::f1::lap_ms(t).unwrap().into());
            }
        }
    }
    let mut want: Vec<(u64, String)> = position.iter().map(|(d, p)| (*p, d.clone())).collect();
    want.sort();
    assert_eq!(want.len(), 20);

    // With the sibling captures: flags, track status and tyre compounds come along.
    let path = data("f1/fastf1test_2020_70thAnniv_FP2_timing_data.raw").unwrap();
    let full = opensports_server::cli::replay::load(&path, None, &opts).unwrap();
    let f1 = |t: &sim::Timed| match &t.event.body {
        opensports_proto::Body::F1(e) => Some(e.clone()),
        _ => None,
    };
    let events: Vec<opensports_proto::f1::Event> = full.game.events.iter().filter_map(f1).collect();
    use opensports_proto::f1::{Compound, Event as F1, Flag};
    let flags: Vec<Flag> = events
        .iter()
        .filter_map(|e| if let F1::RaceControl { flag, .. } = e { Some(*flag) } else { None })
        .collect();
    assert!(
        flags.contains(&Flag::VirtualSafetyCar) && flags.contains(&Flag::Red) && flags.contains(&Flag::Green),
        "{flags:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, F1::PitOut { compound, .. } if *compound != Compound::Unknown))
    );
    assert!(full.unknown.contains_key("race_control/Other"), "{:?}", full.unknown);
    assert_eq!(
        events.iter().filter(|e| matches!(e, F1::Lap(_))).count(),
        feed.game.events.iter().filter_map(f1).filter(|e| matches!(e, F1::Lap(_))).count()
    );

    let server = replayed(&feed, "f1-timing").await;
    let topic = "game/f1-fp2/f1-timing/order";
    let order = |server: &TestServer| {
        server
            .running()
            .fanout
            .latest(topic)
            .map(|p| serde_json::from_str::<serde_json::Value>(p.data()).unwrap())
            .unwrap_or_default()
    };
    let drivers = |o: &serde_json::Value| -> Vec<(u64, String)> {
        o.as_array()
            .into_iter()
            .flatten()
            .map(|r| (r["position"].as_u64().unwrap(), r["driver"].as_str().unwrap().to_string()))
            .collect()
    };
    let mut got = order(&server);
    for _ in 0..100 {
        if drivers(&got) == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        got = order(&server);
    }
    assert_eq!(drivers(&got), want, "classification");
    for r in got.as_array().unwrap() {
        let d = r["driver"].as_str().unwrap();
        assert_eq!(r["best_lap_ms"].as_u64(), best.get(d).copied(), "best lap of {d}");
    }
    server.shutdown().await;
}
