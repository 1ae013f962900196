//! `f1-timing`: running order, gaps, laps and sectors, stints, fastest lap, safety-car periods.
//!
//! Outputs:
//! - `order`: `[{position, driver, lap, gap_ms, interval_ms, last_lap_ms, best_lap_ms, s1_ms,
//!   s2_ms, s3_ms, compound, stint_laps, pit_stops}]` after every lap line.
//! - `laps/{n}`: `[{driver, position, gap_ms}]`, the classification at the end of lap `n` as
//!   each car crosses the line (republished as the field completes the lap; a lap chart and a
//!   gap chart draw from these, one small topic per lap).
//! - `fastest_lap`: `{driver, lap, lap_ms}` when the session's fastest lap improves.
//! - `stints/{driver}`: `[{compound, from_lap, to_lap, laps}]` at every pit exit and at the end.
//! - `safety_car`: `[{kind, from_lap, to_lap}]` (kind `safety_car` or `virtual_safety_car`) at
//!   each start and end of a period.

use std::collections::BTreeMap;

use opensports_plugin_sdk::proto::f1::{Compound, Event as F1, Flag};
use opensports_plugin_sdk::proto::{Body, Sport};
use opensports_plugin_sdk::{Ctx, Plugin, export_plugin, serde_json, to_owned};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Car {
    position: u8,
    driver: String,
    lap: u16,
    gap_ms: Option<u32>,
    interval_ms: Option<u32>,
    last_lap_ms: Option<u32>,
    best_lap_ms: Option<u32>,
    s1_ms: Option<u32>,
    s2_ms: Option<u32>,
    s3_ms: Option<u32>,
    compound: Option<Compound>,
    stint_laps: u16,
    pit_stops: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stint {
    compound: Option<Compound>,
    from_lap: u16,
    to_lap: u16,
    laps: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScPeriod {
    kind: std::borrow::Cow<'static, str>,
    from_lap: u16,
    to_lap: Option<u16>,
}

/// One race's timing; its snapshot is this value as JSON.
#[derive(Default, Serialize, Deserialize)]
pub struct Timing {
    cars: BTreeMap<String, Car>,
    stints: BTreeMap<String, Vec<Stint>>,
    stint_start: BTreeMap<String, u16>,
    fastest: Option<(String, u16, u32)>,
    sc: Vec<ScPeriod>,
    lap: u16,
    /// Per lap: `(driver, position, gap_ms)` as each car completed it (`laps/{n}`).
    #[serde(default)]
    laps: BTreeMap<u16, Vec<(String, u8, Option<u32>)>>,
}

#[derive(Serialize)]
struct LapPlace<'a> {
    driver: &'a str,
    position: u8,
    gap_ms: Option<u32>,
}

impl Timing {
    fn close_stint(&mut self, driver: &str, to_lap: u16) {
        let from = self.stint_start.get(driver).copied().unwrap_or(0) + 1;
        let compound = self.cars.get(driver).and_then(|c| c.compound);
        if to_lap >= from {
            self.stints.entry(driver.into()).or_default().push(Stint {
                compound,
                from_lap: from,
                to_lap,
                laps: to_lap + 1 - from,
            });
        }
        self.stint_start.insert(driver.into(), to_lap);
    }
}

impl Plugin for Timing {
    const SPORTS: &'static [Sport] = &[Sport::F1];

    fn snapshot(&self) -> Vec<u8> {
        opensports_plugin_sdk::snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        opensports_plugin_sdk::restore_json(self, bytes)
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &opensports_plugin_sdk::proto::event::ArchivedEvent) {
        let Some(ev) = to_owned(event) else { return };
        let Body::F1(ev) = ev.body else { return };
        match ev {
            F1::Lap(l) => {
                self.lap = self.lap.max(l.lap);
                let start = self.stint_start.get(&l.driver).copied().unwrap_or(0);
                let c = self.cars.entry(l.driver.clone()).or_default();
                c.driver = l.driver.clone();
                c.position = l.position;
                c.lap = l.lap;
                c.gap_ms = l.gap_ms;
                c.interval_ms = l.interval_ms;
                (c.s1_ms, c.s2_ms, c.s3_ms) = (l.s1_ms, l.s2_ms, l.s3_ms);
                c.stint_laps = l.lap.saturating_sub(start);
                if let Some(t) = l.lap_ms {
                    c.last_lap_ms = Some(t);
                    c.best_lap_ms = Some(c.best_lap_ms.map_or(t, |b| b.min(t)));
                    if self.fastest.as_ref().is_none_or(|f| t < f.2) {
                        self.fastest = Some((l.driver.clone(), l.lap, t));
                        let _ = ctx.emit(
                            "fastest_lap",
                            &serde_json::json!({"driver": l.driver, "lap": l.lap, "lap_ms": t}),
                        );
                    }
                }
                let places = self.laps.entry(l.lap).or_default();
                places.retain(|p| p.0 != l.driver);
                places.push((l.driver.clone(), l.position, l.gap_ms));
                places.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                let places: Vec<LapPlace<'_>> =
                    places.iter().map(|p| LapPlace { driver: &p.0, position: p.1, gap_ms: p.2 }).collect();
                let _ = ctx.emit(&format!("laps/{}", l.lap), &places);
                let mut order: Vec<&Car> = self.cars.values().collect();
                order.sort_by_key(|c| (c.position, c.driver.clone()));
                let _ = ctx.emit("order", &order);
            }
            F1::Position { driver, position, gap_ms } => {
                let c = self.cars.entry(driver.clone()).or_default();
                c.driver = driver;
                c.position = position;
                if gap_ms.is_some() {
                    c.gap_ms = gap_ms;
                }
            }
            F1::PitIn { driver, lap } => {
                self.close_stint(&driver, lap);
                self.cars.entry(driver.clone()).or_default().pit_stops += 1;
            }
            F1::PitOut { driver, compound, .. } => {
                self.cars.entry(driver.clone()).or_default().compound = Some(compound);
                let stints = self.stints.get(&driver).cloned().unwrap_or_default();
                let _ = ctx.emit(&format!("stints/{driver}"), &stints);
            }
            F1::RaceControl { flag, .. } => {
                let open = self.sc.last().is_some_and(|p| p.to_lap.is_none());
                let kind = match flag {
                    Flag::SafetyCar => Some("safety_car"),
                    Flag::VirtualSafetyCar => Some("virtual_safety_car"),
                    _ => None,
                };
                match (kind, open) {
                    (Some(kind), false) => {
                        self.sc.push(ScPeriod { kind: kind.into(), from_lap: self.lap + 1, to_lap: None })
                    }
                    (None, true) if matches!(flag, Flag::Green | Flag::Clear | Flag::Chequered) => {
                        if let Some(p) = self.sc.last_mut() {
                            p.to_lap = Some(self.lap.max(p.from_lap));
                        }
                    }
                    _ => return,
                }
                let _ = ctx.emit("safety_car", &self.sc);
            }
            F1::SessionEnd => {
                let drivers: Vec<String> = self.cars.keys().cloned().collect();
                for d in drivers {
                    let lap = self.cars.get(&d).map(|c| c.lap).unwrap_or(0);
                    self.close_stint(&d, lap);
                    let stints = self.stints.get(&d).cloned().unwrap_or_default();
                    let _ = ctx.emit(&format!("stints/{d}"), &stints);
                }
            }
            F1::SessionStart { .. } => {}
        }
    }
}

export_plugin!(Timing);
