//! F1 live timing, `TimingData` topic (`f1-live-timing`): SignalR capture lines
//! `HH:MM:SS.mmm{json}`, each a delta to merge into the running state (`{"Lines": {"44": {...}}}`;
//! lists such as `Sectors` are patched as `{"0": {...}}`).
//!
//! After each delta, for each driver it touched: a changed `Position` → `position`; a higher
//! `NumberOfLaps` together with a new `LastLapTime` (they come in either order) → `lap` (sectors
//! from `Sectors[i].Value`); `InPit`
//! turning true → `pit_in`; `PitOut` turning true → `pit_out` (compound unknown: it is in another
//! topic, `TimingAppData`). A `session_start` (practice) comes first and a `session_end` last.
//! Drivers are racing numbers. Source time is the capture's clock from the start of the session.

use std::collections::BTreeMap;

use opensports_proto::f1::{Compound, Event as F1, Lap, SessionKind};
use opensports_proto::{Body, Sport};
use serde_json::Value;

use super::{Feed, FeedError, Options};
use crate::sim::{Builder, SimGame};

/// Merges a live-timing delta into the state.
fn merge(state: &mut Value, delta: &Value) {
    match (state, delta) {
        (Value::Object(s), Value::Object(d)) => {
            for (k, v) in d {
                match s.get_mut(k) {
                    Some(existing) if v.is_object() => merge(existing, v),
                    _ => {
                        s.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(s), Value::Object(d)) => {
            for (k, v) in d {
                if let Some(slot) = k.parse::<usize>().ok().and_then(|i| s.get_mut(i)) {
                    if v.is_object() { merge(slot, v) } else { *slot = v.clone() }
                }
            }
        }
        (s, d) => *s = d.clone(),
    }
}

/// Milliseconds of "1:25.606" or "25.606".
pub fn lap_ms(s: &str) -> Option<u32> {
    let (m, rest) = s.split_once(':').unwrap_or(("0", s));
    let secs: f64 = rest.parse().ok()?;
    Some(((m.parse::<f64>().ok()? * 60.0 + secs) * 1000.0).round() as u32)
}

fn capture_ms(ts: &str) -> Option<u64> {
    let mut p = ts.split(':');
    let (h, m, s) =
        (p.next()?.parse::<u64>().ok()?, p.next()?.parse::<u64>().ok()?, p.next()?.parse::<f64>().ok()?);
    Some((h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as u64)
}

fn num<T: std::str::FromStr>(v: &Value) -> Option<T> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

pub fn timing_data(bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FeedError::Malformed { what: "f1-live-timing", detail: e.to_string() })?;
    let text = text.trim_start_matches('\u{feff}');
    let id = opts.game_id.map_or_else(|| "f1-live".to_string(), str::to_string);
    let mut b = Builder::new(&id, 0);
    b.push(
        0,
        None,
        Body::F1(F1::SessionStart { name: "session".into(), session: SessionKind::Practice, laps: None }),
    );
    let (unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let mut state = Value::Object(Default::default());
    let mut last_at = 0u64;
    // Per driver: the last lap emitted and its time.
    let mut emitted: BTreeMap<String, (u16, Option<u32>)> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (Some(ts), Some(json)) = (line.get(..12), line.get(12..)) else {
            skipped.push((i + 1, format!("line {}: too short for `HH:MM:SS.mmm{{json}}`", i + 1)));
            continue;
        };
        let (Some(at), Ok(delta)) = (capture_ms(ts), serde_json::from_str::<Value>(json)) else {
            skipped.push((i + 1, format!("line {}: not `HH:MM:SS.mmm{{json}}`", i + 1)));
            continue;
        };
        last_at = last_at.max(at);
        let Some(lines) = delta.get("Lines").and_then(Value::as_object) else { continue };
        for (driver, d) in lines {
            let before = state["Lines"].get(driver).cloned().unwrap_or(Value::Null);
            if state["Lines"].is_null() {
                state["Lines"] = Value::Object(Default::default());
            }
            match state["Lines"].get_mut(driver) {
                Some(s) => merge(s, d),
                None => {
                    state["Lines"][driver] = d.clone();
                }
            }
            let now = &state["Lines"][driver];
            let position = num::<u8>(&now["Position"]);
            let mut bodies = Vec::new();
            if let Some(p) = position.filter(|p| num::<u8>(&before["Position"]) != Some(*p)) {
                bodies.push(F1::Position { driver: driver.clone(), position: p, gap_ms: None });
            }
            let laps = num::<u16>(&now["NumberOfLaps"]).unwrap_or(0);
            // The lap count and its time arrive in either order, in one delta or two: a lap is
            // complete once the count went up and a new `LastLapTime` was posted.
            let time = now["LastLapTime"]["Value"].as_str().and_then(lap_ms);
            let done = emitted.entry(driver.clone()).or_insert((0, None));
            if laps > done.0 && time.is_some() && time != done.1 {
                *done = (laps, time);
                let sector = |k: usize| now["Sectors"][k]["Value"].as_str().and_then(lap_ms);
                bodies.push(F1::Lap(Lap {
                    driver: driver.clone(),
                    lap: laps,
                    position: position.unwrap_or(0),
                    lap_ms: time,
                    s1_ms: sector(0),
                    s2_ms: sector(1),
                    s3_ms: sector(2),
                    gap_ms: None,
                    interval_ms: None,
                }));
            }
            if now["InPit"] == true && before["InPit"] == false {
                bodies.push(F1::PitIn { driver: driver.clone(), lap: laps });
            }
            if now["PitOut"] == true && before["PitOut"] == false {
                bodies.push(F1::PitOut { driver: driver.clone(), lap: laps, compound: Compound::Unknown });
            }
            for body in bodies {
                b.push(last_at, None, Body::F1(body));
            }
        }
    }
    b.push(last_at, None, Body::F1(F1::SessionEnd));
    Ok(Feed { game: SimGame { id, sport: Sport::F1, events: b.events }, unknown, skipped })
}
