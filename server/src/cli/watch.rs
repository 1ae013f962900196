//! `opensports watch PATTERN...`: a terminal subscriber. Readable lines by default, one JSON
//! message per line with `--json`. Reconnects and resumes (`since`) when the server goes away;
//! exits with an error when the server refuses the subscription.

use std::time::Duration;

use opensports_client::Subscriber;
use opensports_proto::ws::{Mode, Publication, ServerMsg};
use serde_json::Value;

pub async fn run(url: &str, patterns: &[String], mode: Mode, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut sub = Subscriber::connect(url).await?;
    let topics: Vec<&str> = patterns.iter().map(String::as_str).collect();
    sub.subscribe(&topics, mode).await?;
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
                let line = if json { Some(serde_json::to_string(&m)?) } else { readable(&m) };
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

/// One line for a message; `None` for protocol chatter not worth a line.
pub fn readable(m: &ServerMsg) -> Option<String> {
    match m {
        ServerMsg::Msg(p) => Some(publication(p, "")),
        ServerMsg::Snapshot(p) => Some(publication(p, " (snapshot)")),
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

fn publication(p: &Publication, suffix: &str) -> String {
    let d = &p.data;
    let time = {
        let secs = p.ts.div_euclid(1_000_000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        format!("{h:02}:{m:02}:{s:02}")
    };
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
    if sport == "football"
        && let (Some(down), Some(togo)) = (d["football"]["down"].as_u64(), d["football"]["distance"].as_u64())
    {
        line.push_str(&format!("  {down}&{togo} at {}", d["football"]["yardline_100"]));
    }
    line
}
