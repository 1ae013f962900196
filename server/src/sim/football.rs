//! NFL-like games: drives of runs and passes, punts and field goals on fourth down, ~155 plays.

use opensports_proto::football::{Event as Fb, Play, PlayResult as R, PlayType as T, Scoring};
use opensports_proto::{Body, Side};

use super::{Builder, Rng, Timed};

const TEAMS: &[&str] = &["GB", "CHI", "KC", "BUF", "SF", "DAL", "PHI", "NE", "PIT", "SEA"];
const QUARTER_MS: u32 = 15 * 60 * 1000;
const WALL_PER_CLOCK: f64 = 3.0;

struct Drive {
    offense: Side,
    yardline: i32,
    down: u8,
    to_go: i32,
}

#[allow(clippy::too_many_arguments)]
fn play(
    d: &Drive,
    quarter: u8,
    t: T,
    yards: i32,
    result: R,
    scoring: Option<Scoring>,
    special: bool,
) -> Body {
    Body::Football(Fb::Play(Play {
        quarter,
        possession: d.offense,
        down: (!special).then_some(d.down),
        distance: (!special).then(|| d.to_go.clamp(1, 99) as u8),
        yardline_100: Some(d.yardline.clamp(1, 99) as u8),
        play_type: t,
        yards: yards as i16,
        result,
        scoring,
        desc: None,
    }))
}

pub fn generate(id: &str, rng: &mut Rng, start_ts: i64) -> Vec<Timed> {
    let mut b = Builder::new(id, start_ts);
    let (home, away) = rng.two(TEAMS);
    let mut at_ms = 0u64;
    b.push(at_ms, Some(QUARTER_MS), Body::Football(Fb::GameStart { home: home.into(), away: away.into() }));
    let mut score = [0u32; 2];
    let mut d = Drive {
        offense: if rng.chance(0.5) { Side::Home } else { Side::Away },
        yardline: 75,
        down: 1,
        to_go: 10,
    };
    let mut quarter = 1u8;
    while quarter <= 4 || (quarter == 5 && score[0] == score[1]) {
        let mut clock = if quarter <= 4 { QUARTER_MS } else { 10 * 60 * 1000 };
        at_ms += if quarter == 3 { 13 * 60_000 } else { 120_000 };
        b.push(at_ms, Some(clock), Body::Football(Fb::PeriodStart { period: quarter }));
        while clock > 0 {
            let used = (rng.range(5, 40) as u32 * 1000).min(clock);
            clock -= used;
            at_ms += (f64::from(used) * WALL_PER_CLOCK) as u64;
            let c = Some(clock);
            if d.down == 4 {
                if d.yardline <= 35 {
                    let good = rng.chance(0.95 - f64::from(d.yardline as u32) * 0.008);
                    let (result, scoring) = if good {
                        score[d.offense.index()] += 3;
                        (R::FieldGoalGood, Some(Scoring { side: d.offense, points: 3 }))
                    } else {
                        (R::FieldGoalMissed, None)
                    };
                    b.push(at_ms, c, play(&d, quarter, T::FieldGoal, 0, result, scoring, false));
                    let next = d.offense.other();
                    d = if good {
                        Drive { offense: next, yardline: 75, down: 1, to_go: 10 }
                    } else {
                        Drive {
                            offense: next,
                            yardline: (100 - d.yardline - 7).clamp(20, 80),
                            down: 1,
                            to_go: 10,
                        }
                    };
                } else {
                    let net = rng.range(35, 50) as i32;
                    b.push(at_ms, c, play(&d, quarter, T::Punt, 0, R::Punt, None, false));
                    let land = d.yardline - net;
                    let yardline = if land <= 0 { 80 } else { 100 - land };
                    d = Drive { offense: d.offense.other(), yardline, down: 1, to_go: 10 };
                }
                continue;
            }
            let pass = rng.chance(0.57);
            let (t, mut yards, mut result) = if pass {
                let r = rng.f64();
                if r < 0.065 {
                    (T::Pass, -(rng.range(3, 10) as i32), R::Sack)
                } else if r < 0.09 {
                    (T::Pass, 0, R::Interception)
                } else if r < 0.44 {
                    (T::Pass, 0, R::Incomplete)
                } else {
                    (T::Pass, (rng.normal() * 8.0 + 11.0).round().max(-2.0) as i32, R::Gain)
                }
            } else if rng.chance(0.01) {
                (T::Run, 0, R::FumbleLost)
            } else {
                (T::Run, (rng.normal() * 4.5 + 4.3).round().max(-4.0) as i32, R::Gain)
            };
            if matches!(result, R::Interception | R::FumbleLost) {
                b.push(at_ms, c, play(&d, quarter, t, 0, result, None, false));
                d = Drive {
                    offense: d.offense.other(),
                    yardline: (100 - d.yardline).clamp(10, 90),
                    down: 1,
                    to_go: 10,
                };
                continue;
            }
            if yards >= d.yardline {
                yards = d.yardline;
                result = R::Touchdown;
                score[d.offense.index()] += 6;
                b.push(
                    at_ms,
                    c,
                    play(&d, quarter, t, yards, result, Some(Scoring { side: d.offense, points: 6 }), false),
                );
                at_ms += 40_000;
                let good = rng.chance(0.94);
                score[d.offense.index()] += u32::from(good);
                let try_drive = Drive { yardline: 15, ..d };
                let (r, s) = if good {
                    (R::ExtraPointGood, Some(Scoring { side: d.offense, points: 1 }))
                } else {
                    (R::ExtraPointMissed, None)
                };
                b.push(at_ms, c, play(&try_drive, quarter, T::ExtraPoint, 0, r, s, true));
                at_ms += 60_000;
                let kick = Drive { offense: d.offense, yardline: 65, down: 1, to_go: 10 };
                b.push(at_ms, c, play(&kick, quarter, T::Kickoff, 0, R::Touchback, None, true));
                d = Drive { offense: d.offense.other(), yardline: 75, down: 1, to_go: 10 };
                continue;
            }
            if yards >= d.to_go && result == R::Gain {
                result = R::FirstDown;
            }
            b.push(at_ms, c, play(&d, quarter, t, yards, result, None, false));
            d.yardline -= yards;
            if d.yardline >= 100 {
                score[d.offense.other().index()] += 2;
                let safety = Some(Scoring { side: d.offense.other(), points: 2 });
                b.push(at_ms, c, play(&d, quarter, T::Run, 0, R::Safety, safety, true));
                d = Drive { offense: d.offense.other(), yardline: 65, down: 1, to_go: 10 };
            } else if yards >= d.to_go {
                d.down = 1;
                d.to_go = 10.min(d.yardline);
            } else {
                d.down += 1;
                d.to_go -= yards;
            }
        }
        b.push(at_ms, Some(0), Body::Football(Fb::PeriodEnd { period: quarter }));
        quarter += 1;
    }
    b.push(at_ms, Some(0), Body::Football(Fb::GameEnd));
    b.events
}
