//! A [`Report`] from the game's topics: the core state, win probability, the built-in plugins'
//! outputs (`basketball-boxscore`, `football-drives`, `soccer-shots`, `f1-timing`), the
//! analyst and the feed-quality monitor. A section whose topics are absent (plugin not loaded,
//! caller not allowed to read them) is left out.

use std::collections::BTreeMap;

use opensports_proto::{Sport, topic};
use serde_json::Value;

use super::{Chart, Drive, LapLine, Mark, Moment, QualitySummary, Report, Table, WinProbChart};
use crate::fanout::{Fanout, Pub};

/// Each topic of the game (name after `game/{id}/`) with its kept history; parsed where read
/// (most topics are read at their latest value only).
struct Topics(BTreeMap<String, Vec<Pub>>);

fn parse(p: &Pub) -> Option<Value> {
    serde_json::from_str(p.data()).ok()
}

impl Topics {
    fn latest(&self, name: &str) -> Option<Value> {
        parse(self.0.get(name)?.last()?)
    }

    fn history(&self, name: &str) -> Vec<Value> {
        self.0.get(name).map_or(Vec::new(), |pubs| pubs.iter().filter_map(parse).collect())
    }

    /// Latest values of the topics `{prefix}{suffix}`, by suffix.
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, Value)> + 'a {
        self.0.iter().filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, parse(v.last()?)?)))
    }
}

/// The report of game `id` from what `fanout` keeps; `None` when the game has no state here.
/// `may_read` says which topics the caller may read.
pub fn build(fanout: &Fanout, id: &str, may_read: impl Fn(&str) -> bool) -> Option<Report> {
    let prefix = topic::game_prefix(id);
    let mut topics = BTreeMap::new();
    for pubs in fanout.kept_under(&prefix, true) {
        let Some(first) = pubs.first() else { continue };
        if !may_read(&first.topic) || first.topic.contains("/tracking/") {
            continue;
        }
        let name = first.topic[prefix.len()..].to_string();
        topics.insert(name, pubs);
    }
    let t = Topics(topics);
    let state = &t.latest("state")?;
    let sport: Sport = serde_json::from_value(state["sport"].clone()).ok()?;
    let teams = match (state["home"].as_str(), state["away"].as_str()) {
        (Some(h), Some(a)) => Some([h.to_string(), a.to_string()]),
        _ => None,
    };
    let score = state["score"]["home"]
        .as_u64()
        .zip(state["score"]["away"].as_u64())
        .map(|(h, a)| [h as u32, a as u32]);
    let f1 = &state["f1"];
    let title = match (&teams, score) {
        (Some([h, a]), Some([sh, sa])) => format!("{h} {sh}–{sa} {a}"),
        // A feed that names its session generically is known by the game id.
        _ => f1["session"].as_str().filter(|s| !s.eq_ignore_ascii_case("session")).unwrap_or(id).to_string(),
    };
    let period = state["period"].as_u64().unwrap_or(0) as u8;
    let status = if state["status"] == "ended" {
        "Final".to_string()
    } else if sport == Sport::F1 {
        format!("Live · lap {}", f1["lap"])
    } else {
        let clock =
            state["clock_ms"].as_u64().map(|c| format!(" {}", super::clock(c as u32))).unwrap_or_default();
        format!("Live · {}{clock}", super::period_name(sport, period))
    };
    // The date when the source time is a date (feeds without a wall clock count from 0).
    let date = jiff::Timestamp::from_microsecond(state["ts"].as_i64().unwrap_or(0))
        .ok()
        .filter(|t| t.as_second() > 946_684_800)
        .map(|t| format!(" · {}", t.strftime("%Y-%m-%d")))
        .unwrap_or_default();
    let sport_name = format!("{sport:?}");
    let mut r = Report {
        game: id.to_string(),
        sport,
        title,
        status,
        subtitle: format!("{sport_name} · game {id}{date}"),
        score,
        teams: teams.clone(),
        leaders: Vec::new(),
        tables: Vec::new(),
        wp: win_probability(&t, sport),
        chart: None,
        notes: t.history("analyst").iter().filter_map(|n| n["text"].as_str().map(str::to_string)).collect(),
        quality: quality(t.latest("quality").as_ref()),
    };
    let team = |side: &str| -> String {
        let i = usize::from(side == "away");
        teams.as_ref().map_or(side.to_string(), |t| t[i].clone())
    };
    match sport {
        Sport::Basketball => basketball(&t, &mut r, &team),
        Sport::Football => football(&t, &mut r, &team),
        Sport::Soccer => soccer(&t, state, &mut r, &team),
        Sport::F1 => f1_session(&t, &mut r),
    }
    Some(r)
}

fn win_probability(t: &Topics, sport: Sport) -> Option<WinProbChart> {
    if !matches!(sport, Sport::Basketball | Sport::Football) {
        return None;
    }
    let pubs = t.history("winprob");
    if pubs.is_empty() {
        return None;
    }
    let at = |w: &Value| {
        let period = w["period"].as_u64().unwrap_or(0) as u8;
        (period, w["clock_ms"].as_u64().map(|c| c as u32))
    };
    // x never runs back (as the dashboard's charts): the next period's events that a feed
    // sends before the period starts (with its full clock) stay at the end of the last.
    let mut last_x = 0.0f64;
    let points: Vec<(f64, f64)> = pubs
        .iter()
        .map(|w| {
            let (p, c) = at(w);
            last_x = last_x.max(super::game_minute(sport, p, c));
            (last_x, w["home"].as_f64().unwrap_or(0.5))
        })
        .collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let moments = super::swings(&ys, 3, 0.08)
        .into_iter()
        .map(|i| {
            let (p, c) = at(&pubs[i]);
            let clock = c.map(|c| format!(" {}", super::clock(c))).unwrap_or_default();
            let event = pubs[i]["event"].as_str().unwrap_or("").replace('_', " ");
            Moment {
                x: points[i].0,
                before: ys[i - 1],
                after: ys[i],
                label: format!("{}{clock} · {event}", super::period_name(sport, p)),
            }
        })
        .collect();
    let last = pubs.iter().map(|w| at(w).0).max().unwrap_or(1);
    let regulation = 4;
    let periods = (1..=last.max(regulation))
        .map(|p| (super::game_minute(sport, p, Some(u32::MAX)), super::period_name(sport, p)));
    let periods: Vec<(f64, String)> = periods.collect();
    let x_max = super::game_minute(sport, last.max(regulation), Some(0));
    Some(WinProbChart { x_max, periods, points, moments })
}

fn quality(q: Option<&Value>) -> QualitySummary {
    let Some(q) = q else { return QualitySummary { status: "unknown".into(), issues: Vec::new() } };
    let issues = q["issues"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(kind, i)| {
                    format!("{kind}: {} (last: {})", i["count"], i["detail"].as_str().unwrap_or(""))
                })
                .collect()
        })
        .unwrap_or_default();
    QualitySummary { status: q["status"].as_str().unwrap_or("unknown").to_string(), issues }
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{f}"),
        Some(f) => format!("{f:.2}"),
        None => "–".into(),
    }
}

fn basketball(t: &Topics, r: &mut Report, team: &dyn Fn(&str) -> String) {
    let mut players: Vec<Value> = t.under("basketball-boxscore/player/").map(|(_, v)| v).collect();
    players.sort_by(|a, b| {
        (a["side"].as_str(), std::cmp::Reverse(a["pts"].as_u64()))
            .cmp(&(b["side"].as_str(), std::cmp::Reverse(b["pts"].as_u64())))
    });
    for side in ["home", "away"] {
        let mine = players.iter().filter(|p| p["side"] == side);
        for (stat, label) in [("pts", "points"), ("reb", "rebounds"), ("ast", "assists")] {
            let value = |p: &Value| {
                if stat == "reb" {
                    p["oreb"].as_u64().unwrap_or(0) + p["dreb"].as_u64().unwrap_or(0)
                } else {
                    p[stat].as_u64().unwrap_or(0)
                }
            };
            if let Some(best) = mine
                .clone()
                .max_by_key(|p| (value(p), std::cmp::Reverse(p["player"].as_str().unwrap_or("").to_string())))
            {
                r.leaders.push(format!(
                    "{} {label}: {} {}",
                    team(side),
                    best["player"].as_str().unwrap_or("?"),
                    value(best)
                ));
            }
        }
    }
    let pair = |p: &Value, m: &str, a: &str| format!("{}-{}", p[m], p[a]);
    let row = |name: String, side: &str, p: &Value| {
        let reb = p["oreb"].as_u64().unwrap_or(0) + p["dreb"].as_u64().unwrap_or(0);
        vec![
            name,
            team(side),
            num(&p["pts"]),
            reb.to_string(),
            num(&p["ast"]),
            num(&p["stl"]),
            num(&p["blk"]),
            pair(p, "fgm", "fga"),
            pair(p, "fg3m", "fg3a"),
            pair(p, "ftm", "fta"),
            num(&p["plus_minus"]),
        ]
    };
    let mut rows: Vec<Vec<String>> = players
        .iter()
        .map(|p| row(p["player"].as_str().unwrap_or("?").to_string(), p["side"].as_str().unwrap_or(""), p))
        .collect();
    for side in ["home", "away"] {
        if let Some(total) = t.latest(&format!("basketball-boxscore/team/{side}")) {
            rows.push(row("Team".into(), side, &total));
        }
    }
    if !rows.is_empty() {
        let columns = ["Player", "Team", "PTS", "REB", "AST", "STL", "BLK", "FG", "3P", "FT", "+/-"];
        r.tables.push(Table { title: "Box score".into(), columns: columns.map(String::from).to_vec(), rows });
    }
    let shots: Vec<Mark> = t
        .history("basketball-boxscore/shot")
        .iter()
        .map(|s| Mark {
            x: s["x"].as_f64().unwrap_or(0.0) as f32,
            y: s["y"].as_f64().unwrap_or(0.0) as f32,
            scored: s["made"] == true,
            home: s["side"] == "home",
        })
        .collect();
    if !shots.is_empty() {
        r.chart = Some(Chart::Court { shots });
    }
}

fn football(t: &Topics, r: &mut Report, team: &dyn Fn(&str) -> String) {
    let mut rows = Vec::new();
    for side in ["home", "away"] {
        if let Some(s) = t.latest(&format!("football-drives/team/{side}")) {
            let rate = s["success_rate"].as_f64().map_or("–".into(), |x| format!("{:.0}%", x * 100.0));
            let epa = s["epa_per_play"].as_f64().map_or("–".into(), |x| format!("{x:+.2}"));
            let third = format!("{}/{}", s["third_down"]["conv"], s["third_down"]["att"]);
            rows.push(vec![team(side), num(&s["plays"]), rate, epa, third]);
        }
    }
    if !rows.is_empty() {
        let columns = ["Team", "Plays", "Success", "EPA/play", "3rd down"].map(String::from).to_vec();
        r.tables.push(Table { title: "Team stats".into(), columns, rows });
    }
    let mut drives: Vec<Value> = t.under("football-drives/drive/").map(|(_, v)| v).collect();
    drives.sort_by_key(|d| d["n"].as_u64());
    let rows: Vec<Vec<String>> = drives
        .iter()
        .map(|d| {
            let side = d["side"].as_str().unwrap_or("");
            let result = d["result"].as_str().unwrap_or("").replace('_', " ");
            vec![num(&d["n"]), team(side), num(&d["plays"]), num(&d["yards"]), result, num(&d["points"])]
        })
        .collect();
    for side in ["home", "away"] {
        let tds = drives.iter().filter(|d| d["side"] == side && d["result"] == "touchdown").count();
        let pts: u64 = drives.iter().filter(|d| d["side"] == side).filter_map(|d| d["points"].as_u64()).sum();
        if !drives.is_empty() {
            r.leaders.push(format!("{}: {tds} touchdown drives, {pts} points on drives", team(side)));
        }
    }
    if !rows.is_empty() {
        let columns = ["#", "Team", "Plays", "Yards", "Result", "Pts"].map(String::from).to_vec();
        r.tables.push(Table { title: "Drives".into(), columns, rows });
        let chart = drives
            .iter()
            .map(|d| {
                let start = 100.0 - d["start_yardline_100"].as_f64().unwrap_or(75.0) as f32;
                let yards = d["yards"].as_f64().unwrap_or(0.0) as f32;
                Drive {
                    home: d["side"] == "home",
                    start,
                    end: (start + yards).clamp(0.0, 100.0),
                    result: d["result"].as_str().unwrap_or("").replace('_', " "),
                    points: d["points"].as_u64().unwrap_or(0) as u32,
                }
            })
            .collect();
        r.chart = Some(Chart::Drives { drives: chart });
    }
}

fn soccer(t: &Topics, state: &Value, r: &mut Report, team: &dyn Fn(&str) -> String) {
    let s = &state["soccer"];
    let xg = t.latest("soccer-shots/xg");
    let mut rows = Vec::new();
    let stat = |label: &str, key: &str| vec![label.to_string(), num(&s[key]["home"]), num(&s[key]["away"])];
    rows.push(vec!["Goals".into(), num(&state["score"]["home"]), num(&state["score"]["away"])]);
    if let Some(x) = xg {
        let f = |v: &Value| v.as_f64().map_or("–".into(), |x| format!("{x:.2}"));
        rows.push(vec!["xG".into(), f(&x["home"]), f(&x["away"])]);
    }
    rows.push(stat("Shots", "shots"));
    rows.push(stat("On target", "shots_on_target"));
    rows.push(stat("Passes", "passes"));
    rows.push(stat("Yellow cards", "yellow_cards"));
    rows.push(stat("Red cards", "red_cards"));
    r.tables.push(Table {
        title: "Team stats".into(),
        columns: vec![String::new(), team("home"), team("away")],
        rows,
    });
    let shots = t.history("soccer-shots/shot");
    for g in shots.iter().filter(|s| s["outcome"] == "goal") {
        let minute = g["clock_ms"].as_u64().map(|c| format!(" {}'", c / 60_000 + 1)).unwrap_or_default();
        r.leaders.push(format!(
            "Goal {}: {}{minute}",
            team(g["side"].as_str().unwrap_or("")),
            g["player"].as_str().unwrap_or("?")
        ));
    }
    let marks: Vec<Mark> = shots
        .iter()
        .map(|s| Mark {
            x: s["x"].as_f64().unwrap_or(0.0) as f32,
            y: s["y"].as_f64().unwrap_or(0.0) as f32,
            scored: s["outcome"] == "goal",
            home: s["side"] == "home",
        })
        .collect();
    if !marks.is_empty() {
        r.chart = Some(Chart::Pitch { shots: marks });
    }
}

fn f1_session(t: &Topics, r: &mut Report) {
    if let Some(order) = t.latest("f1-timing/order").as_ref().and_then(Value::as_array) {
        let ms = |v: &Value| v.as_u64().map_or("–".into(), super::lap_time);
        let gap = |v: &Value| v.as_u64().map_or("–".into(), |g| format!("+{:.3}", g as f64 / 1000.0));
        let rows = order
            .iter()
            .map(|c| {
                vec![
                    num(&c["position"]),
                    c["driver"].as_str().unwrap_or("?").to_string(),
                    num(&c["lap"]),
                    gap(&c["gap_ms"]),
                    ms(&c["best_lap_ms"]),
                    num(&c["pit_stops"]),
                    c["compound"].as_str().unwrap_or("–").to_string(),
                ]
            })
            .collect();
        let columns = ["Pos", "Driver", "Laps", "Gap", "Best lap", "Pits", "Tyre"].map(String::from).to_vec();
        r.tables.push(Table { title: "Classification".into(), columns, rows });
        for c in order.iter().take(3) {
            r.leaders.push(format!("P{} {}", c["position"], c["driver"].as_str().unwrap_or("?")));
        }
    }
    if let Some(f) = t.latest("f1-timing/fastest_lap") {
        let time = f["lap_ms"].as_u64().map(super::lap_time).unwrap_or_default();
        r.leaders.push(format!(
            "Fastest lap: {} {time} (lap {})",
            f["driver"].as_str().unwrap_or("?"),
            f["lap"]
        ));
    }
    let mut lines: BTreeMap<String, Vec<(u16, u8)>> = BTreeMap::new();
    let mut laps = 0;
    for (n, cars) in t.under("f1-timing/laps/") {
        let Ok(n) = n.parse::<u16>() else { continue };
        laps = laps.max(n);
        for c in cars.as_array().into_iter().flatten() {
            if let (Some(d), Some(p)) = (c["driver"].as_str(), c["position"].as_u64()) {
                lines.entry(d.to_string()).or_default().push((n, p as u8));
            }
        }
    }
    if laps > 0 {
        let drivers = lines
            .into_iter()
            .map(|(driver, mut positions)| {
                positions.sort_unstable();
                LapLine { driver, positions }
            })
            .collect();
        r.chart = Some(Chart::Laps { laps, drivers });
    }
}
