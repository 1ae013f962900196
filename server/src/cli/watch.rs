//! `opensports watch PATTERN...`: a terminal subscriber. Readable lines by default, one JSON
//! message per line with `--json`. Reconnects and resumes (`since`) when the server goes away;
//! exits with an error when the server refuses the subscription.

use std::time::Duration;

pub use jiff::tz::TimeZone;
use opensports_client::Subscriber;
use opensports_proto::ws::{Mode, Publication, ServerMsg};
use serde_json::Value;

/// The WebSocket URL for `--url`: the server's base URL (`http://HOST:PORT`, `https://...`,
/// the same as `export` and `backup` take) becomes `ws(s)://HOST:PORT/ws`; a `ws://` or `wss://`
/// URL is used as it is.
pub fn ws_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}/ws")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else {
        url.to_string()
    }
}

/// `zone`: the time zone source times are shown in (the system's, or UTC with `--utc`).
pub async fn run(
    url: &str,
    patterns: &[String],
    mode: Mode,
    json: bool,
    zone: TimeZone,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut sub = Subscriber::connect(url).await?;
    let topics: Vec<&str> = patterns.iter().map(String::as_str).collect();
    sub.subscribe(&topics, mode).await?;
    let mut seen = Unchanged::default();
    loop {
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match msg {
            // `watch` sends only its `sub`: an error is the server refusing it (a bad pattern,
            // a topic outside the key's scope, too many subscriptions).
            Ok(ServerMsg::Error { code, message, .. }) => {
                anyhow::bail!("the server refused the subscription: {code}: {message}")
            }
            Ok(m) => {
                let line = if json {
                    Some(serde_json::to_string(&m)?)
                } else if seen.repeats(&m) {
                    None
                } else {
                    readable(&m, &zone)
                };
                // A closed stdout (`watch ... | head`) ends the command quietly.
                if let Some(line) = line
                    && writeln!(out, "{line}").and_then(|()| out.flush()).is_err()
                {
                    return Ok(());
                }
            }
            Err(e) => {
                eprintln!("connection lost ({e}); reconnecting…");
                sub.reconnect(Duration::from_secs(3600)).await?;
            }
        }
    }
}

/// The last state line printed per topic: a state that reads the same as the last one (an F1
/// timing update that moves nothing the line shows) is not printed again.
#[derive(Debug, Default)]
struct Unchanged(std::collections::HashMap<String, String>);

impl Unchanged {
    fn repeats(&mut self, m: &ServerMsg) -> bool {
        let ServerMsg::Msg(p) = m else { return false };
        if !p.topic.ends_with("/state") {
            return false;
        }
        let line = state_line(&p.data);
        if self.0.get(&p.topic) == Some(&line) {
            return true;
        }
        self.0.insert(p.topic.clone(), line);
        false
    }
}

/// One line for a message; `None` for protocol chatter not worth a line.
pub fn readable(m: &ServerMsg, zone: &TimeZone) -> Option<String> {
    match m {
        ServerMsg::Msg(p) => Some(publication(p, "", zone)),
        ServerMsg::Snapshot(p) => Some(publication(p, " (snapshot)", zone)),
        ServerMsg::Reset { topic } => Some(format!("reset {topic}: history too old, snapshot follows")),
        ServerMsg::Lagged { dropped } => {
            Some(format!("lagged: {dropped} messages dropped, snapshots follow"))
        }
        ServerMsg::Error { code, message, .. } => Some(format!("error {code}: {message}")),
        ServerMsg::Subscribed { topics, .. } => Some(format!("subscribed {}", topics.join(" "))),
        ServerMsg::Unsubscribed { .. } | ServerMsg::Pong { .. } => None,
    }
}

fn clock(ms: &Value) -> String {
    ms.as_u64().map(|ms| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60)).unwrap_or_default()
}

/// A source time (µs since the epoch) as `HH:MM:SS` in `zone`.
fn time_of_day(ts_us: i64, zone: &TimeZone) -> String {
    match jiff::Timestamp::from_microsecond(ts_us) {
        Ok(t) => t.to_zoned(zone.clone()).strftime("%H:%M:%S").to_string(),
        Err(_) => "--:--:--".into(),
    }
}

fn publication(p: &Publication, suffix: &str, zone: &TimeZone) -> String {
    let d = &p.data;
    let time = time_of_day(p.ts, zone);
    let body = if p.topic.ends_with("/state") {
        state_line(d)
    } else if p.topic == "games" {
        let games = d["games"].as_array().map(Vec::len).unwrap_or(0);
        format!("{games} games")
    } else {
        d.to_string()
    };
    format!("{time} {:<24} #{:<5} {body}{suffix}", p.topic, p.seq)
}

fn state_line(d: &Value) -> String {
    let sport = d["sport"].as_str().unwrap_or("");
    let status = if d["status"] == "ended" { " FINAL" } else { "" };
    if sport == "f1" {
        let f = &d["f1"];
        let top: Vec<String> = f["cars"]
            .as_array()
            .map(|cars| {
                cars.iter().take(5).filter_map(|c| c["driver"].as_str().map(str::to_string)).collect()
            })
            .unwrap_or_default();
        return format!(
            "lap {}/{} {} | {}{status}",
            f["lap"],
            f["total_laps"].as_u64().map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
            f["flag"].as_str().unwrap_or(""),
            top.join(" ")
        );
    }
    let (h, a) = (d["home"].as_str().unwrap_or("HOME"), d["away"].as_str().unwrap_or("AWAY"));
    let period = d["period"].as_u64().unwrap_or(0);
    let period = match sport {
        "soccer" => format!("H{period}"),
        _ => format!("Q{period}"),
    };
    let mut line = format!(
        "{h} {} - {} {a}  {period} {}  {}{status}",
        d["score"]["home"],
        d["score"]["away"],
        clock(&d["clock_ms"]),
        d["last_event"].as_str().unwrap_or("")
    );
    let fb = &d["football"];
    if sport == "football"
        && let (Some(down), Some(togo), Some(yl)) =
            (fb["down"].as_u64(), fb["distance"].as_u64(), fb["yardline_100"].as_u64())
    {
        let (offense, defense) = if fb["possession"] == "away" { (a, h) } else { (h, a) };
        let down = match down {
            1 => "1st",
            2 => "2nd",
            3 => "3rd",
            _ => "4th",
        };
        line.push_str(&format!(
            "  {offense} ball, {down} & {togo} at {}",
            field_position(yl, offense, defense)
        ));
    }
    line
}

/// Where the ball is, as a broadcast says it: `yardline_100` is the offense's distance to the
/// goal, so 7 is the defense's 7-yard line ("SEA 7"), 75 the offense's own 25, 50 midfield.
fn field_position(yardline_100: u64, offense: &str, defense: &str) -> String {
    match yardline_100 {
        50 => "50".into(),
        y if y > 50 => format!("{offense} {}", 100 - y),
        y => format!("{defense} {y}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn football(possession: &str, yardline_100: u64) -> String {
        state_line(&serde_json::json!({
            "sport": "football", "home": "SEA", "away": "KC", "status": "live", "period": 2,
            "clock_ms": 431_000, "score": {"home": 7, "away": 3}, "last_event": "pass",
            "football": {"possession": possession, "down": 1, "distance": 10, "yardline_100": yardline_100},
        }))
    }

    #[test]
    fn football_field_position_is_said_as_a_broadcast_says_it() {
        assert!(football("away", 7).ends_with("KC ball, 1st & 10 at SEA 7"), "{}", football("away", 7));
        assert!(football("away", 75).ends_with("at KC 25"), "{}", football("away", 75));
        assert!(football("home", 7).ends_with("SEA ball, 1st & 10 at KC 7"), "{}", football("home", 7));
        assert!(football("home", 50).ends_with("at 50"));
        assert!(football("home", 50).starts_with("SEA 7 - 3 KC  Q2 7:11"), "{}", football("home", 50));
    }

    #[test]
    fn times_show_in_the_chosen_zone_and_urls_become_websocket_urls() {
        let ts = 1_700_000_000_000_000; // 2023-11-14 22:13:20 UTC
        assert_eq!(time_of_day(ts, &TimeZone::UTC), "22:13:20");
        let berlin = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(time_of_day(ts, &berlin), "23:13:20");
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws_url("https://edge.example:8443/"), "wss://edge.example:8443/ws");
        assert_eq!(ws_url("ws://h:1/ws"), "ws://h:1/ws");
    }

    #[test]
    fn a_state_that_reads_the_same_is_not_printed_again() {
        let msg = |seq: u64, lap: u64| {
            ServerMsg::Msg(Publication {
                topic: "game/f1-1/state".into(),
                seq,
                ts: 0,
                data: serde_json::json!({"sport": "f1", "f1": {"lap": lap, "total_laps": 57, "flag": "green",
                    "cars": [{"driver": "VER"}, {"driver": "HAM"}]}}),
            })
        };
        let mut seen = Unchanged::default();
        assert!(!seen.repeats(&msg(1, 3)));
        assert!(seen.repeats(&msg(2, 3)), "same line, new seq");
        assert!(!seen.repeats(&msg(3, 4)));
        assert!(!seen.repeats(&ServerMsg::Lagged { dropped: 1 }));
    }
}
