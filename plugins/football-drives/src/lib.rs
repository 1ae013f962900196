//! `football-drives`: drive summaries, expected points and EPA per play, success rate, third
//! downs.
//!
//! Outputs:
//! - `play`: `{quarter, clock_ms, side, down, distance, yardline_100, play_type, result, yards,
//!   ep_before, ep_after, epa, success, ep_source}` per scrimmage play (`clock_ms`: the time
//!   left in the quarter, when the feed has it). EP comes from the `nfl_ep` model
//!   when present (`ep_source: "model"`), else from a linear fallback (`"linear"`):
//!   `EP = 5.2 - 0.065 * yardline_100 - 0.55 * (down - 1) - 0.03 * distance`; after a score EP is
//!   the points (7 for a touchdown with its try, 3, -2 for a safety); after a change of
//!   possession it is minus the opponent's EP.
//! - `drive/{n}`: `{n, side, plays, yards, start_yardline_100, result, points}` when a drive ends
//!   (result: touchdown, field_goal, missed_field_goal, punt, turnover, downs, safety, end_of_half).
//! - `team/{home|away}`: `{plays, success_rate, epa_per_play, third_down: {att, conv}}`.

use opensports_plugin_sdk::proto::football::{Event as Fb, Play, PlayResult as R, PlayType as T};
use opensports_plugin_sdk::proto::{Body, Side, Sport};
use opensports_plugin_sdk::{Ctx, Plugin, export_plugin, serde_json, to_owned};

const SIDES: [&str; 2] = ["home", "away"];
fn idx(s: Side) -> usize {
    if s == Side::Home { 0 } else { 1 }
}

/// Linear expected-points fallback, documented above.
pub fn linear_ep(yardline_100: u8, down: u8, distance: u8) -> f64 {
    5.2 - 0.065 * f64::from(yardline_100) - 0.55 * f64::from(down.max(1) - 1) - 0.03 * f64::from(distance)
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct Drive {
    side: usize,
    plays: u32,
    yards: i32,
    start: u8,
}

/// One game's drives; its snapshot is this value as JSON.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Drives {
    drive: Option<Drive>,
    n: u32,
    plays: [u32; 2],
    successes: [u32; 2],
    epa: [f64; 2],
    third: [(u32, u32); 2],
    last_quarter: u8,
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Drives {
    fn ep(&self, ctx: &mut Ctx<'_>, yl: u8, down: u8, dist: u8) -> (f64, &'static str) {
        match ctx.infer("nfl_ep", &[f32::from(yl), f32::from(down), f32::from(dist)]) {
            Ok(v) if !v.is_empty() => (f64::from(v[0]), "model"),
            _ => (linear_ep(yl, down, dist), "linear"),
        }
    }

    fn end_drive(&mut self, ctx: &mut Ctx<'_>, result: &str, points: u8) {
        if let Some(d) = self.drive.take() {
            self.n += 1;
            let out = serde_json::json!({
                "n": self.n, "side": SIDES[d.side], "plays": d.plays, "yards": d.yards,
                "start_yardline_100": d.start, "result": result, "points": points,
            });
            let _ = ctx.emit(&format!("drive/{}", self.n), &out);
        }
    }

    fn play(&mut self, ctx: &mut Ctx<'_>, p: &Play, clock_ms: Option<u32>) {
        let s = idx(p.possession);
        if p.quarter != self.last_quarter && (p.quarter == 3 || p.quarter == 5) {
            self.end_drive(ctx, "end_of_half", 0);
        }
        self.last_quarter = p.quarter;
        if matches!(p.play_type, T::Kickoff | T::ExtraPoint | T::TwoPoint) {
            return;
        }
        if self.drive.as_ref().is_some_and(|d| d.side != s) {
            self.end_drive(ctx, "turnover", 0);
        }
        let yl = p.yardline_100.unwrap_or(75);
        let d = self.drive.get_or_insert_with(|| Drive { side: s, start: yl, ..Drive::default() });
        d.plays += 1;
        d.yards += i32::from(p.yards);
        let (down, dist) = (p.down.unwrap_or(1), p.distance.unwrap_or(10));
        let (before, source) = self.ep(ctx, yl, down, dist);
        let new_yl = (i32::from(yl) - i32::from(p.yards)).clamp(1, 99) as u8;
        let gained_first = i32::from(p.yards) >= i32::from(dist);
        let after = match p.result {
            R::Touchdown => 7.0,
            R::FieldGoalGood => 3.0,
            R::Safety => -2.0,
            R::Interception | R::FumbleLost | R::FieldGoalMissed | R::TurnoverOnDowns | R::Punt => {
                let flipped =
                    if p.result == R::Punt { (100 - new_yl.min(60)).clamp(20, 90) } else { 100 - new_yl };
                -self.ep(ctx, flipped, 1, 10).0
            }
            _ if gained_first => self.ep(ctx, new_yl, 1, 10.min(new_yl)).0,
            _ if down >= 4 => -self.ep(ctx, 100 - new_yl, 1, 10).0,
            _ => self.ep(ctx, new_yl, down + 1, (i32::from(dist) - i32::from(p.yards)).clamp(1, 99) as u8).0,
        };
        let epa = after - before;
        let scrimmage = matches!(p.play_type, T::Run | T::Pass);
        if scrimmage {
            self.plays[s] += 1;
            self.epa[s] += epa;
            self.successes[s] += u32::from(epa > 0.0);
            if down == 3 {
                self.third[s].0 += 1;
                self.third[s].1 += u32::from(gained_first || p.result == R::Touchdown);
            }
        }
        let out = serde_json::json!({
            "quarter": p.quarter, "clock_ms": clock_ms, "side": SIDES[s], "down": p.down, "distance": p.distance,
            "yardline_100": p.yardline_100, "play_type": p.play_type, "result": p.result, "yards": p.yards,
            "ep_before": r2(before), "ep_after": r2(after), "epa": r2(epa), "success": epa > 0.0, "ep_source": source,
        });
        let _ = ctx.emit("play", &out);
        if scrimmage {
            let n = f64::from(self.plays[s].max(1));
            let team = serde_json::json!({
                "plays": self.plays[s], "success_rate": r2(f64::from(self.successes[s]) / n),
                "epa_per_play": r2(self.epa[s] / n),
                "third_down": {"att": self.third[s].0, "conv": self.third[s].1},
            });
            let _ = ctx.emit(&format!("team/{}", SIDES[s]), &team);
        }
        let ended = match p.result {
            R::Touchdown => Some(("touchdown", 6)),
            R::FieldGoalGood => Some(("field_goal", 3)),
            R::FieldGoalMissed => Some(("missed_field_goal", 0)),
            R::Punt => Some(("punt", 0)),
            R::Interception | R::FumbleLost => Some(("turnover", 0)),
            R::TurnoverOnDowns => Some(("downs", 0)),
            R::Safety => Some(("safety", 0)),
            _ => None,
        };
        if let Some((result, points)) = ended {
            self.end_drive(ctx, result, points);
        }
    }
}

impl Plugin for Drives {
    const SPORTS: &'static [Sport] = &[Sport::Football];

    fn snapshot(&self) -> Vec<u8> {
        opensports_plugin_sdk::snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        opensports_plugin_sdk::restore_json(self, bytes)
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &opensports_plugin_sdk::proto::event::ArchivedEvent) {
        let Some(ev) = to_owned(event) else { return };
        match ev.body {
            Body::Football(Fb::Play(p)) => self.play(ctx, &p, ev.clock_ms),
            Body::Football(Fb::GameEnd) => self.end_drive(ctx, "end_of_half", 0),
            _ => {}
        }
    }
}

export_plugin!(Drives);
