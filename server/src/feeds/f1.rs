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
//!
//! `opensports replay` also reads the sibling captures of a `..._timing_data.raw` file when they
//! are there ([`Topic::SIBLINGS`]): `TimingAppData` gives each stint's compound (used for
//! `pit_out`), `RaceControlMessages` flags become `race_control` (messages without a flag are
//! counted as unknown), and `TrackStatus` (clear, yellow, SC, VSC, red) becomes `race_control`.

use std::collections::BTreeMap;

use opensports_proto::f1::{Compound, Event as F1, Flag, Lap, SessionKind};
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

/// A live-timing topic captured in its own file, merged with `TimingData` by capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    TimingData,
    /// `TimingAppData`: stints and tyre compounds.
    TimingAppData,
    /// `RaceControlMessages`: flags and messages.
    RaceControl,
    /// `TrackStatus`: all clear, yellow, SC, VSC, red.
    TrackStatus,
}

impl Topic {
    /// The capture file name suffixes FastF1 uses, beside `..._timing_data.raw`.
    pub const SIBLINGS: &[(&str, Topic)] = &[
        ("_timing_app_data.raw", Topic::TimingAppData),
        ("_race_control_messages.raw", Topic::RaceControl),
        ("_track_status.raw", Topic::TrackStatus),
    ];
}

/// Parses one topic's capture into `(capture ms, line, delta)`, reporting bad lines.
fn lines(bytes: &[u8], skipped: &mut Vec<(usize, String)>) -> Result<Vec<(u64, usize, Value)>, FeedError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| FeedError::Malformed { what: "f1-live-timing", detail: e.to_string() })?;
    let mut out = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let parsed = line
            .get(..12)
            .and_then(capture_ms)
            .zip(line.get(12..).and_then(|j| serde_json::from_str(j).ok()));
        match parsed {
            Some((at, v)) => out.push((at, i + 1, v)),
            None => skipped.push((i + 1, format!("line {}: not `HH:MM:SS.mmm{{json}}`", i + 1))),
        }
    }
    Ok(out)
}

fn flag(track_status: &str) -> Option<Flag> {
    match track_status {
        "1" => Some(Flag::Clear),
        "2" => Some(Flag::Yellow),
        "4" => Some(Flag::SafetyCar),
        "5" => Some(Flag::Red),
        "6" => Some(Flag::VirtualSafetyCar),
        "7" => Some(Flag::SafetyCarEnding),
        _ => None,
    }
}

fn race_control_flag(f: &str) -> Option<Flag> {
    match f {
        "GREEN" => Some(Flag::Green),
        "YELLOW" => Some(Flag::Yellow),
        "DOUBLE YELLOW" => Some(Flag::DoubleYellow),
        "RED" => Some(Flag::Red),
        "BLUE" => Some(Flag::Blue),
        "CHEQUERED" => Some(Flag::Chequered),
        "CLEAR" => Some(Flag::Clear),
        _ => None,
    }
}

fn compound(c: &str) -> Option<Compound> {
    match c {
        "SOFT" => Some(Compound::Soft),
        "MEDIUM" => Some(Compound::Medium),
        "HARD" => Some(Compound::Hard),
        "INTERMEDIATE" => Some(Compound::Intermediate),
        "WET" => Some(Compound::Wet),
        _ => None,
    }
}

/// `TimingData` alone (what `--format f1-live-timing` gets from one file).
pub fn timing_data(bytes: &[u8], opts: &Options<'_>) -> Result<Feed, FeedError> {
    session(&[(Topic::TimingData, bytes)], opts)
}

/// A session from one or more topic captures, merged in capture-time order.
pub fn session(topics: &[(Topic, &[u8])], opts: &Options<'_>) -> Result<Feed, FeedError> {
    let id = opts.game_id.map_or_else(|| "f1-live".to_string(), str::to_string);
    let (mut unknown, mut skipped) = (BTreeMap::new(), Vec::new());
    let mut all: Vec<(u64, Topic, usize, Value)> = Vec::new();
    for (topic, bytes) in topics {
        all.extend(lines(bytes, &mut skipped)?.into_iter().map(|(at, i, v)| (at, *topic, i, v)));
    }
    all.sort_by_key(|(at, _, i, _)| (*at, *i));
    let mut b = Builder::new(&id, 0);
    b.push(
        0,
        None,
        Body::F1(F1::SessionStart { name: "session".into(), session: SessionKind::Practice, laps: None }),
    );
    let mut state = Value::Object(Default::default());
    // Per driver: the last lap emitted and its time; the compound of the current stint.
    let mut emitted: BTreeMap<String, (u16, Option<u32>)> = BTreeMap::new();
    let mut compounds: BTreeMap<String, Compound> = BTreeMap::new();
    let mut last_at = 0u64;
    for (at, topic, _, delta) in all {
        last_at = last_at.max(at);
        let mut bodies = Vec::new();
        match topic {
            Topic::TimingData => timing_delta(&mut state, &delta, &mut emitted, &compounds, &mut bodies),
            Topic::TimingAppData => {
                for (driver, d) in delta["Lines"].as_object().into_iter().flatten() {
                    // The latest stint counts: by position in a list, by numeric key in a patch.
                    let stints: Vec<&Value> = match &d["Stints"] {
                        Value::Array(a) => a.iter().collect(),
                        Value::Object(o) => {
                            let mut v: Vec<(usize, &Value)> =
                                o.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v))).collect();
                            v.sort_by_key(|(k, _)| *k);
                            v.into_iter().map(|(_, v)| v).collect()
                        }
                        _ => Vec::new(),
                    };
                    for stint in stints {
                        if let Some(c) = stint["Compound"].as_str().and_then(compound) {
                            compounds.insert(driver.clone(), c);
                        }
                    }
                }
            }
            Topic::RaceControl => {
                let msgs: Vec<&Value> = match &delta["Messages"] {
                    Value::Array(a) => a.iter().collect(),
                    Value::Object(o) => o.values().collect(),
                    _ => Vec::new(),
                };
                for m in msgs {
                    let message = opensports_proto::limits::clip(
                        m["Message"].as_str().unwrap_or(""),
                        opensports_proto::limits::MAX_TEXT,
                    );
                    match m["Flag"].as_str().and_then(race_control_flag) {
                        Some(flag) => {
                            let driver = m["RacingNumber"].as_str().map(str::to_string);
                            bodies.push(F1::RaceControl { flag, message, driver });
                        }
                        None => {
                            let cat = m["Category"].as_str().unwrap_or("?");
                            *unknown.entry(format!("race_control/{cat}")).or_insert(0) += 1;
                        }
                    }
                }
            }
            Topic::TrackStatus => match delta["Status"].as_str().and_then(flag) {
                Some(flag) => {
                    let message = opensports_proto::limits::clip(
                        delta["Message"].as_str().unwrap_or(""),
                        opensports_proto::limits::MAX_TEXT,
                    );
                    bodies.push(F1::RaceControl { flag, message, driver: None });
                }
                None => *unknown.entry(format!("track_status/{}", delta["Status"])).or_insert(0) += 1,
            },
        }
        for body in bodies {
            b.push(last_at, None, Body::F1(body));
        }
    }
    b.push(last_at, None, Body::F1(F1::SessionEnd));
    Ok(Feed { game: SimGame { id, sport: Sport::F1, events: b.events }, unknown, skipped })
}

/// One `TimingData` delta: merged into `state`, and what changed becomes events.
fn timing_delta(
    state: &mut Value,
    delta: &Value,
    emitted: &mut BTreeMap<String, (u16, Option<u32>)>,
    compounds: &BTreeMap<String, Compound>,
    bodies: &mut Vec<F1>,
) {
    let Some(lines) = delta.get("Lines").and_then(Value::as_object) else { return };
    if state["Lines"].is_null() {
        state["Lines"] = Value::Object(Default::default());
    }
    for (driver, d) in lines {
        let before = state["Lines"].get(driver).cloned().unwrap_or(Value::Null);
        match state["Lines"].get_mut(driver) {
            Some(s) => merge(s, d),
            None => state["Lines"][driver] = d.clone(),
        }
        let now = &state["Lines"][driver];
        let position = num::<u8>(&now["Position"]);
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
            let compound = compounds.get(driver).copied().unwrap_or(Compound::Unknown);
            bodies.push(F1::PitOut { driver: driver.clone(), lap: laps, compound });
        }
    }
}
