//! Scoring runs and clutch time for basketball broadcasts: `plugins/basketball-runs-ts` line for
//! line in Rust, as an ABI v2 component (wit-bindgen through the SDK's `component` feature). The
//! two give the same outputs byte for byte (tests/tests/kits.rs), so the cost table in
//! plugin-sdk/README.md compares the languages on the same work. Outputs and triggers: see the
//! TypeScript plugin's header.

use opensports_plugin_sdk::proto::basketball::Event as Bk;
use opensports_plugin_sdk::proto::event::Body;
use opensports_plugin_sdk::proto::{Event, Side, Sport};
use opensports_plugin_sdk::{ComponentPlugin, Ctx, export_component, restore_json, snapshot_json};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    side: Side,
    points: u32,
    against: u32,
    since_seq: u64,
    fired: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Config {
    run_points: u32,
    break_points: u32,
    clutch_ms: u32,
    clutch_margin: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config { run_points: 8, break_points: 2, clutch_ms: 300_000, clutch_margin: 5 }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Runs {
    #[serde(skip)]
    config: Config,
    score: [u32; 2],
    teams: [String; 2],
    period: u8,
    run: Option<Run>,
    clutch: bool,
}

#[derive(Serialize)]
struct RunOut<'a> {
    side: Side,
    team: &'a str,
    points: u32,
    against: u32,
    since_seq: u64,
    period: u8,
}

#[derive(Serialize)]
struct RunFacts<'a> {
    side: Side,
    team: &'a str,
    points: u32,
    against: u32,
    since_seq: u64,
}

#[derive(Serialize)]
struct ClutchOut {
    active: bool,
    margin: u32,
    period: u8,
    clock_ms: u32,
}

#[derive(Serialize)]
struct ClutchFacts {
    margin: u32,
    period: u8,
    clock_ms: u32,
}

fn idx(side: Side) -> usize {
    match side {
        Side::Home => 0,
        Side::Away => 1,
    }
}

impl Runs {
    fn scored(&mut self, ctx: &mut Ctx<'_>, side: Side, points: u32, seq: u64) {
        self.score[idx(side)] += points;
        let brk = self.config.break_points;
        let run = match self.run.take() {
            Some(mut r) if r.side == side => {
                r.points += points;
                r
            }
            // The other side's basket does not end a run it is far behind in: "a 10-2 run".
            Some(mut r) if r.against + points <= brk && r.points > r.against + points => {
                r.against += points;
                r
            }
            _ => Run { side, points, against: 0, since_seq: seq, fired: false },
        };
        let team = &self.teams[idx(run.side)];
        let _ = ctx.emit(
            "run",
            &RunOut {
                side: run.side,
                team,
                points: run.points,
                against: run.against,
                since_seq: run.since_seq,
                period: self.period,
            },
        );
        let mut run = run;
        if !run.fired && run.points >= self.config.run_points {
            run.fired = true;
            let text = format!("{team} on a {}-{} run", run.points, run.against);
            let facts = RunFacts {
                side: run.side,
                team,
                points: run.points,
                against: run.against,
                since_seq: run.since_seq,
            };
            let _ = ctx.trigger("run", &text, &facts);
        }
        self.run = Some(run);
    }

    fn check_clutch(&mut self, ctx: &mut Ctx<'_>, clock_ms: Option<u32>) {
        let Some(clock_ms) = clock_ms else { return };
        let margin = self.score[0].abs_diff(self.score[1]);
        let active =
            self.period >= 4 && clock_ms <= self.config.clutch_ms && margin <= self.config.clutch_margin;
        if active == self.clutch {
            return;
        }
        self.clutch = active;
        let _ = ctx.emit("clutch", &ClutchOut { active, margin, period: self.period, clock_ms });
        if active {
            let game = if margin == 0 { "tied".to_string() } else { format!("a {margin}-point game") };
            let text = format!("Clutch time: {game} in the final {} minutes", clock_ms.div_ceil(60_000));
            let _ = ctx.trigger("clutch", &text, &ClutchFacts { margin, period: self.period, clock_ms });
        }
    }
}

impl ComponentPlugin for Runs {
    const SPORTS: &'static [Sport] = &[Sport::Basketball];

    fn init(&mut self, config: &opensports_plugin_sdk::serde_json::Value) {
        let get = |k: &str, d: u32| config.get(k).and_then(|v| v.as_u64()).map_or(d, |v| v as u32);
        let d = Config::default();
        self.config = Config {
            run_points: get("run_points", d.run_points),
            break_points: get("break_points", d.break_points),
            clutch_ms: get("clutch_ms", d.clutch_ms),
            clutch_margin: get("clutch_margin", d.clutch_margin),
        };
        self.teams = ["home".into(), "away".into()];
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: &Event) {
        let Body::Basketball(e) = &event.body else { return };
        match e {
            Bk::GameStart { home, away } => {
                self.teams = [home.clone(), away.clone()];
                return;
            }
            Bk::PeriodStart { period } => self.period = *period,
            Bk::Shot { side, points, made: true, .. } => {
                self.scored(ctx, *side, u32::from(*points), event.seq)
            }
            Bk::FreeThrow { side, made: true, .. } => self.scored(ctx, *side, 1, event.seq),
            Bk::ScoreCorrection(c) => {
                self.score = [u32::from(c.home), u32::from(c.away)];
                self.run = None;
            }
            _ => {}
        }
        self.check_clutch(ctx, event.clock_ms);
    }

    fn snapshot(&self) -> Vec<u8> {
        snapshot_json(self)
    }

    fn restore(&mut self, bytes: &[u8]) -> bool {
        let config = self.config.clone();
        let ok = restore_json(self, bytes);
        self.config = config;
        ok
    }
}

export_component!(Runs);
