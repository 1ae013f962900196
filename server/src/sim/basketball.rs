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
    let team = if side == Side::Home { "H" } else { "A" };
    format!("{team}{}", rng.pick(&on_court[side.index()]))
}

pub fn generate(id: &str, rng: &mut Rng, start_ts: i64) -> Vec<Timed> {
    let mut b = Builder::new(id, start_ts);
    let (home, away) = rng.two(TEAMS);
    let mut at_ms = 0u64;
    let mut on_court = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]];
    b.push(at_ms, Some(PERIOD_MS), Body::Basketball(Bk::GameStart { home: home.into(), away: away.into() }));
    let mut score = [0u32; 2];
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
                let fp = Some(player(d, rng, &on_court));
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
                    let (x, y) = if three {
                        (rng.f64() as f32 * 6.0 + 23.0, rng.f64() as f32 * 46.0 + 2.0)
                    } else {
                        (rng.f64() as f32 * 14.0 + 5.0, rng.f64() as f32 * 20.0 + 15.0)
                    };
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
                let incoming = (out + 4) % 12 + 1;
                on_court[side.index()][slot] = incoming;
                let t = if side == Side::Home { "H" } else { "A" };
                let ev = Bk::Substitution {
                    side,
                    player_in: format!("{t}{incoming}"),
                    player_out: format!("{t}{out}"),
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
