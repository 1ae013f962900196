//! NBA-like games: ~100 possessions a team, 46% field goals, 39% of attempts from three,
//! free throws on ~20% of possessions, offensive rebounds on 23% of misses.

use opensports_proto::basketball::Event as Bk;
use opensports_proto::{Body, Side};

use super::{Builder, Rng, Timed};

const TEAMS: &[&str] = &["BKN", "GSW", "TOR", "NOP", "BOS", "LAL", "MIA", "DEN", "PHX", "MIL", "NYK", "DAL"];
const PERIOD_MS: u32 = 12 * 60 * 1000;
/// Wall time per second of game clock (stoppages, fouls, reviews).
const WALL_PER_CLOCK: f64 = 2.4;

fn player(side: Side, rng: &mut Rng, on_court: &[[u8; 5]; 2]) -> String {
    super::player_name(side, u64::from(*rng.pick(&on_court[side.index()])))
}

/// Home attacks the right basket (x = 94 ft) in the first half, the left one after halftime
/// (overtime keeps the second half's ends); away the other way.
fn attacks_right(side: Side, period: u8) -> bool {
    (side == Side::Home) == (period <= 2)
}

/// A shot's spot in feet on the full court (94 × 50, the PROTOCOL's frame): polar around the
/// attacked hoop (5.25 ft in from its baseline), `u` the angle and `v` the distance, both
/// uniform in 0..1. Threes are taken from behind the arc (23.75 ft; 22 ft in the corners),
/// twos from inside 20 ft; never behind the baseline or out of bounds.
fn shot_spot(three: bool, u: f64, v: f64, right: bool) -> (f32, f32) {
    const HOOP: (f64, f64) = (5.25, 25.0);
    let angle = (u - 0.5) * std::f64::consts::PI * 0.96;
    let r = if three { 23.9 + v * 3.0 } else { 1.0 + v * 19.0 };
    let mut y = HOOP.1 + r * angle.sin();
    let mut x = HOOP.0 + r * angle.cos();
    if three && (y - HOOP.1).abs() > 21.0 {
        // The corner three: behind the straight 22 ft line, by the sideline.
        y = HOOP.1 + 22.6_f64.copysign(y - HOOP.1);
        x = x.min(13.0);
    }
    let (x, y) = (x.clamp(0.5, 46.5), y.clamp(0.5, 49.5));
    if right { ((94.0 - x) as f32, (50.0 - y) as f32) } else { (x as f32, y as f32) }
}

pub fn generate(id: &str, rng: &mut Rng, start_ts: i64) -> Vec<Timed> {
    let mut b = Builder::new(id, start_ts);
    let (home, away) = rng.two(TEAMS);
    let mut at_ms = 0u64;
    let mut on_court = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]];
    b.push(at_ms, Some(PERIOD_MS), Body::Basketball(Bk::GameStart { home: home.into(), away: away.into() }));
    let mut score = [0u32; 2];
    let mut fouls = std::collections::HashMap::new();
    let mut period = 1u8;
    let mut offense = Side::Home;
    loop {
        let period_len = if period <= 4 { PERIOD_MS } else { 5 * 60 * 1000 };
        let mut clock = period_len;
        at_ms += if period == 1 {
            60_000
        } else if period == 3 {
            15 * 60_000
        } else {
            130_000
        };
        b.push(at_ms, Some(clock), Body::Basketball(Bk::PeriodStart { period }));
        if period == 1 || period > 4 {
            offense = if rng.chance(0.5) { Side::Home } else { Side::Away };
            b.push(at_ms, Some(clock), Body::Basketball(Bk::JumpBall { side: offense }));
        }
        while clock > 0 {
            let used = (rng.range(6, 22) as u32 * 1000).min(clock);
            clock -= used;
            at_ms += (f64::from(used) * WALL_PER_CLOCK) as u64;
            let c = Some(clock);
            let roll = rng.f64();
            if roll < 0.13 {
                // Turnover, half of them steals.
                let p = player(offense, rng, &on_court);
                b.push(at_ms, c, Body::Basketball(Bk::Turnover { side: offense, player: Some(p) }));
                if rng.chance(0.5) {
                    let d = offense.other();
                    b.push(
                        at_ms,
                        c,
                        Body::Basketball(Bk::Steal { side: d, player: player(d, rng, &on_court) }),
                    );
                }
                offense = offense.other();
            } else if roll < 0.31 {
                // Shooting foul: two free throws.
                let d = offense.other();
                // Five fouls at most: a sixth would foul the player out (the feed then names
                // no one, as for a team foul).
                let named = player(d, rng, &on_court);
                let count = fouls.entry(named.clone()).or_insert(0u8);
                *count += 1;
                let fp = (*count < 6).then_some(named);
                b.push(at_ms, c, Body::Basketball(Bk::Foul { side: d, player: fp, kind: "shooting".into() }));
                let shooter = player(offense, rng, &on_court);
                for attempt in 1..=2u8 {
                    at_ms += 25_000;
                    let made = rng.chance(0.77);
                    score[offense.index()] += u32::from(made);
                    let ev = Bk::FreeThrow { side: offense, player: shooter.clone(), made, attempt, of: 2 };
                    b.push(at_ms, c, Body::Basketball(ev));
                }
                offense = offense.other();
            } else {
                // Field goal attempts until a make, a defensive rebound or the possession ends.
                loop {
                    let three = rng.chance(0.39);
                    let made = rng.chance(if three { 0.36 } else { 0.52 });
                    let shooter = player(offense, rng, &on_court);
                    let (x, y) = shot_spot(three, rng.f64(), rng.f64(), attacks_right(offense, period));
                    let points = if three { 3 } else { 2 };
                    let ev = Bk::Shot { side: offense, player: shooter.clone(), x, y, points, made };
                    b.push(at_ms, c, Body::Basketball(ev));
                    if made {
                        score[offense.index()] += u32::from(points);
                        if rng.chance(0.6) {
                            let mut a = player(offense, rng, &on_court);
                            if a == shooter {
                                a = player(offense, rng, &on_court);
                            }
                            b.push(at_ms, c, Body::Basketball(Bk::Assist { side: offense, player: a }));
                        }
                        offense = offense.other();
                        break;
                    }
                    if rng.chance(0.06) {
                        let d = offense.other();
                        b.push(
                            at_ms,
                            c,
                            Body::Basketball(Bk::Block { side: d, player: player(d, rng, &on_court) }),
                        );
                    }
                    at_ms += 2_000;
                    let offensive = rng.chance(0.23);
                    let reb = if offensive { offense } else { offense.other() };
                    let rp = Some(player(reb, rng, &on_court));
                    b.push(at_ms, c, Body::Basketball(Bk::Rebound { side: reb, player: rp, offensive }));
                    if !offensive {
                        offense = reb;
                        break;
                    }
                }
            }
            if rng.chance(0.05) {
                let side = if rng.chance(0.5) { Side::Home } else { Side::Away };
                b.push(at_ms, c, Body::Basketball(Bk::Timeout { side: Some(side) }));
                at_ms += 75_000;
            }
            if rng.chance(0.08) {
                let side = if rng.chance(0.5) { Side::Home } else { Side::Away };
                let slot = rng.range(0, 4) as usize;
                let out = on_court[side.index()][slot];
                // From the bench: the first of the 12 after the one going out who is not on.
                let mut incoming = (out + 4) % 12 + 1;
                while on_court[side.index()].contains(&incoming) {
                    incoming = incoming % 12 + 1;
                }
                on_court[side.index()][slot] = incoming;
                let ev = Bk::Substitution {
                    side,
                    player_in: super::player_name(side, u64::from(incoming)),
                    player_out: super::player_name(side, u64::from(out)),
                };
                b.push(at_ms, c, Body::Basketball(ev));
            }
        }
        b.push(at_ms, Some(0), Body::Basketball(Bk::PeriodEnd { period }));
        if period >= 4 && score[0] != score[1] {
            break;
        }
        period += 1;
    }
    b.push(at_ms, Some(0), Body::Basketball(Bk::GameEnd));
    b.events
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every simulated shot is in bounds, on the half its team attacks in that period, and a
    /// three is behind the arc, a two inside it.
    #[test]
    fn shots_are_at_the_basket_each_team_attacks() {
        for seed in 0..20 {
            let mut rng = Rng::new(seed);
            let (mut period, mut shots) = (0u8, 0);
            for t in generate("g", &mut rng, 0) {
                match t.event.body {
                    Body::Basketball(Bk::PeriodStart { period: p }) => period = p,
                    Body::Basketball(Bk::Shot { side, x, y, points, .. }) => {
                        shots += 1;
                        assert!((0.0..=94.0).contains(&x) && (0.0..=50.0).contains(&y), "{x},{y}");
                        let right = attacks_right(side, period);
                        assert_eq!(x > 47.0, right, "{side:?} in period {period}: x {x}");
                        let hoop_x = if right { 94.0 - 5.25 } else { 5.25 };
                        let d = (x - hoop_x).hypot(y - 25.0);
                        if points == 3 {
                            assert!(d >= 21.9, "three from {d} ft");
                        } else {
                            assert!(d < 23.75, "two from {d} ft");
                        }
                    }
                    _ => {}
                }
            }
            assert!(shots > 100, "seed {seed}: {shots} shots");
        }
    }
}
