//! F1 races: 20 cars, 57 laps of ~92 s, tyre degradation, one or two stops, an occasional
//! safety car. Positions come from cumulative race time, as in the timing feed.

use opensports_proto::Body;
use opensports_proto::f1::{Compound, Event as F1, Flag, Lap, SessionKind};

use super::{Builder, Rng, Timed};

const DRIVERS: &[&str] = &[
    "VER", "HAM", "LEC", "NOR", "SAI", "PER", "RUS", "ALO", "PIA", "OCO", "GAS", "STR", "ALB", "TSU", "HUL",
    "MAG", "BOT", "ZHO", "RIC", "SAR",
];
const LAPS: u16 = 57;
const BASE_LAP_MS: f64 = 92_000.0;

struct Car {
    driver: &'static str,
    pace: f64,
    total_ms: f64,
    compound: Compound,
    tyre_age: u16,
    stops: Vec<u16>,
    last_lap_ms: f64,
}

pub fn generate(id: &str, rng: &mut Rng, start_ts: i64) -> Vec<Timed> {
    let mut b = Builder::new(id, start_ts);
    b.push(
        0,
        None,
        Body::F1(F1::SessionStart {
            name: "Grand Prix".into(),
            session: SessionKind::Race,
            laps: Some(LAPS),
        }),
    );
    let mut cars: Vec<Car> = DRIVERS
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let one_stop = rng.chance(0.6);
            let stops = if one_stop {
                vec![rng.range(18, 30) as u16]
            } else {
                vec![rng.range(12, 20) as u16, rng.range(32, 42) as u16]
            };
            Car {
                driver: d,
                pace: i as f64 * 90.0 + rng.normal() * 150.0,
                total_ms: i as f64 * 250.0,
                compound: if rng.chance(0.7) { Compound::Medium } else { Compound::Soft },
                tyre_age: 0,
                stops,
                last_lap_ms: 0.0,
            }
        })
        .collect();
    let mut sc_laps = 0u16;
    for lap in 1..=LAPS {
        if sc_laps == 0 && lap > 3 && lap < LAPS - 5 && rng.chance(0.02) {
            sc_laps = rng.range(3, 5) as u16;
            let lead = cars.iter().map(|c| c.total_ms).fold(f64::MAX, f64::min);
            let at = (lead + BASE_LAP_MS * 0.3) as u64;
            b.push(
                at,
                None,
                Body::F1(F1::RaceControl {
                    flag: Flag::SafetyCar,
                    message: "SAFETY CAR DEPLOYED".into(),
                    driver: None,
                }),
            );
        }
        for car in cars.iter_mut() {
            let deg = f64::from(car.tyre_age) * if car.compound == Compound::Soft { 70.0 } else { 45.0 };
            let mut lap_ms = BASE_LAP_MS + car.pace + deg + rng.normal() * 300.0;
            if sc_laps > 0 {
                lap_ms = BASE_LAP_MS * 1.4 + rng.normal() * 100.0;
            }
            let pitting = car.stops.contains(&lap);
            if pitting {
                lap_ms += 21_000.0;
            }
            car.total_ms += lap_ms;
            car.tyre_age += 1;
            car.last_lap_ms = lap_ms;
            if pitting {
                let at = (car.total_ms - 12_000.0) as u64;
                b.push(at, None, Body::F1(F1::PitIn { driver: car.driver.into(), lap }));
                car.compound = if car.compound == Compound::Hard { Compound::Medium } else { Compound::Hard };
                car.tyre_age = 0;
                b.push(
                    at + 2_500,
                    None,
                    Body::F1(F1::PitOut { driver: car.driver.into(), lap, compound: car.compound }),
                );
            }
        }
        if sc_laps > 0 {
            // Under the safety car the field bunches up behind the leader.
            let mut order: Vec<usize> = (0..cars.len()).collect();
            order.sort_by(|a, b| cars[*a].total_ms.total_cmp(&cars[*b].total_ms));
            let lead = cars[order[0]].total_ms;
            for (pos, idx) in order.into_iter().enumerate() {
                cars[idx].total_ms = cars[idx].total_ms.min(lead + pos as f64 * 800.0);
            }
            sc_laps -= 1;
            if sc_laps == 0 {
                let at = (lead + 1.0) as u64;
                b.push(
                    at,
                    None,
                    Body::F1(F1::RaceControl {
                        flag: Flag::Green,
                        message: "TRACK CLEAR".into(),
                        driver: None,
                    }),
                );
            }
        }
        let mut order: Vec<usize> = (0..cars.len()).collect();
        order.sort_by(|a, b| cars[*a].total_ms.total_cmp(&cars[*b].total_ms));
        let leader_ms = cars[order[0]].total_ms;
        let mut lines: Vec<(u64, Body)> = Vec::new();
        let mut prev_ms = leader_ms;
        for (pos, idx) in order.iter().enumerate() {
            let car = &cars[*idx];
            let lap_ms = car.last_lap_ms as u32;
            let s1 = (f64::from(lap_ms) * 0.31) as u32;
            let s2 = (f64::from(lap_ms) * 0.38) as u32;
            lines.push((
                car.total_ms as u64,
                Body::F1(F1::Lap(Lap {
                    driver: car.driver.into(),
                    lap,
                    position: pos as u8 + 1,
                    lap_ms: Some(lap_ms),
                    s1_ms: Some(s1),
                    s2_ms: Some(s2),
                    s3_ms: Some(lap_ms.saturating_sub(s1 + s2)),
                    gap_ms: (pos > 0).then_some((car.total_ms - leader_ms) as u32),
                    interval_ms: (pos > 0).then_some((car.total_ms - prev_ms) as u32),
                })),
            ));
            prev_ms = car.total_ms;
        }
        for (at, body) in lines {
            b.push(at, None, body);
        }
    }
    let end = cars.iter().map(|c| c.total_ms).fold(0.0, f64::max) as u64;
    b.push(
        end,
        None,
        Body::F1(F1::RaceControl { flag: Flag::Chequered, message: "CHEQUERED FLAG".into(), driver: None }),
    );
    b.push(end + 1, None, Body::F1(F1::SessionEnd));
    // Events were produced lap by lap; the feed is ordered by time.
    b.events.sort_by_key(|t| t.at_ms);
    for (i, t) in b.events.iter_mut().enumerate() {
        t.event.seq = i as u64 + 1;
    }
    b.events
}
