//! Soccer matches: ~1,000 passes, ~25 shots at ~11% conversion, ~22 fouls, cards, substitutions.

use opensports_proto::soccer::{BodyPart, Card, Event as Sc, ShotOutcome};
use opensports_proto::{Body, Side};

use super::{Builder, Rng, Timed};

const TEAMS: &[&str] = &["LIV", "LEI", "BAR", "GIR", "ARS", "CHE", "MCI", "TOT", "RMA", "ATM"];

fn player(side: Side, n: u64) -> String {
    super::player_name(side, n)
}

pub fn generate(id: &str, rng: &mut Rng, start_ts: i64) -> Vec<Timed> {
    let mut b = Builder::new(id, start_ts);
    let (home, away) = rng.two(TEAMS);
    b.push(0, Some(0), Body::Soccer(Sc::GameStart { home: home.into(), away: away.into() }));
    let mut at_ms = 60_000u64;
    let mut subs = [0u8; 2];
    let mut yellow: Vec<String> = Vec::new();
    for period in 1..=2u8 {
        let base_ms = u32::from(period - 1) * 45 * 60_000;
        let length_ms = 45 * 60_000 + rng.range(1, 5) as u32 * 60_000;
        let mut clock = 0u32;
        if period == 2 {
            at_ms += 15 * 60_000;
        }
        b.push(at_ms, Some(base_ms), Body::Soccer(Sc::PeriodStart { period }));
        let mut side = if period == 1 { Side::Home } else { Side::Away };
        let (mut x, mut y) = (52.5f32, 34.0f32);
        while clock < length_ms {
            let step = rng.range(1, 6) as u32 * 1000;
            clock += step;
            at_ms += u64::from(step);
            let c = Some(base_ms + clock);
            let r = rng.f64();
            if r < 0.80 {
                let completed = rng.chance(0.82);
                // Inside the pitch: a pass ends on the grass, not on a line.
                let end_x = (x + (rng.normal() as f32) * 12.0 + 6.0).clamp(1.0, 104.0);
                let end_y = (y + (rng.normal() as f32) * 12.0).clamp(1.0, 67.0);
                let p = player(side, rng.range(1, 11));
                b.push(at_ms, c, Body::Soccer(Sc::Pass { side, player: p, x, y, end_x, end_y, completed }));
                if completed {
                    (x, y) = (end_x, end_y);
                } else {
                    side = side.other();
                    (x, y) = (105.0 - end_x, 68.0 - end_y);
                }
            } else if r < 0.87 && x > 70.0 {
                let shooter = player(side, rng.range(6, 11));
                // Shots come from where shots come from: in front of goal, not from the
                // touchline or the corner flag.
                let (sx, sy) = (x.clamp(75.0, 103.0), y.clamp(10.0, 58.0));
                let dist = ((105.0 - sx).powi(2) + (34.0 - sy).powi(2)).sqrt();
                let p_goal = (0.55 - f64::from(dist) * 0.018).clamp(0.03, 0.6);
                let head = rng.chance(0.15);
                let body_part = if head {
                    BodyPart::Head
                } else if rng.chance(0.7) {
                    BodyPart::RightFoot
                } else {
                    BodyPart::LeftFoot
                };
                let outcome = if rng.chance(p_goal) {
                    ShotOutcome::Goal
                } else {
                    *rng.pick(&[
                        ShotOutcome::Saved,
                        ShotOutcome::OffTarget,
                        ShotOutcome::OffTarget,
                        ShotOutcome::Blocked,
                    ])
                };
                let shot = Sc::Shot {
                    side,
                    player: shooter.clone(),
                    x: sx,
                    y: sy,
                    body_part,
                    outcome,
                    provider_xg: None,
                };
                b.push(at_ms, c, Body::Soccer(shot));
                if outcome == ShotOutcome::Goal {
                    let own_goal = rng.chance(0.03);
                    b.push(at_ms, c, Body::Soccer(Sc::Goal { side, player: shooter, own_goal }));
                    at_ms += 60_000;
                    clock += 60_000;
                    side = side.other();
                    (x, y) = (52.5, 34.0);
                } else {
                    side = side.other();
                    (x, y) = (5.5, 34.0);
                }
            } else if r < 0.885 {
                let fouler = player(side, rng.range(1, 11));
                b.push(at_ms, c, Body::Soccer(Sc::Foul { side, player: fouler.clone() }));
                if rng.chance(0.16) {
                    let card = if yellow.contains(&fouler) { Card::SecondYellow } else { Card::Yellow };
                    yellow.push(fouler.clone());
                    b.push(at_ms, c, Body::Soccer(Sc::Card { side, player: fouler, card }));
                }
                side = side.other();
            } else if period == 2 && clock > 15 * 60_000 && rng.chance(0.02) && subs[side.index()] < 5 {
                subs[side.index()] += 1;
                let n = u64::from(subs[side.index()]);
                let sub = Sc::Substitution {
                    side,
                    player_in: player(side, 11 + n),
                    player_out: player(side, rng.range(2, 11)),
                };
                b.push(at_ms, c, Body::Soccer(sub));
            }
            if x > 70.0 && rng.chance(0.5) {
                // Attacks stall more often than they reach the box.
                x -= 15.0;
            }
        }
        b.push(at_ms, Some(base_ms + clock), Body::Soccer(Sc::PeriodEnd { period }));
    }
    b.push(at_ms, None, Body::Soccer(Sc::GameEnd));
    b.events
}
