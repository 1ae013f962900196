//! Feed quality per game (`game/{id}/quality`): what a data desk must see before a number
//! reaches air. Each event is checked against the game state it arrives to; the sweep adds
//! staleness. The health is `ok`, `degraded` (an issue within the last
//! `quality.recent_events` events) or `failing` (an issue still open: a gap the publisher has
//! not filled, or no event for `quality.stale_after_ms` during play), with a reason per issue.
//!
//! Checks (each a `kind`, counted in `opensports_feed_issues_total{kind}`):
//! - `stale`: no event for `stale_after_ms` while the game is live and not in a break (after a
//!   `timeout`, `period_end`, or before the first period, silence is normal); open until the
//!   next event.
//! - `gap`: seqs missing below the latest (the publisher skipped them); open until filled.
//! - `late`: an event filling a gap, after later ones were applied.
//! - `clock_backwards`: within a period the game clock moved the wrong way by more than
//!   `clock_slack_ms` (up for basketball and football, whose clocks count down; down for
//!   soccer's, which counts up). A clock that had run out, or a break, is not checked: feeds
//!   send the next period's substitutions with its full clock before its start.
//! - `period_backwards`: the period went down.
//! - `time_backwards`: the event's source time is more than a minute before the previous one's.
//! - `score_correction`: the provider corrected a score (a number already shown was wrong).
//! - `duplicate_conflict`: another event sent under a seq already accepted (ingest compares a
//!   hash of each frame with the accepted one's, for a game's last 256 events; the first
//!   stands and the resend is acked as a retry).
//! - `impossible`: a value each field allows that the game does not: a run or pass gaining more
//!   yards than there are to the goal line (or losing more than to its own), a basketball
//!   player scoring after their sixth personal foul (fouled out: on the bench) or making a
//!   field goal after being substituted out in the period and not back in, a tracked
//!   person faster than anyone runs (12.5 m/s; ingest compares each tracking sample with the
//!   entity's last, and reports at most once a second per game).
//!
//! Kept in the game's state snapshots, so a restart goes on where the monitor was.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opensports_proto::basketball::Event as Bk;
use opensports_proto::football::{Event as Fb, PlayType};
use opensports_proto::{Body, Event, Sport};
use serde::{Deserialize, Serialize};

use super::out::Out;
use super::state::{GameState, Status};
use crate::config::QualityConfig;
use crate::fanout::Topic;
use crate::metrics as m;

/// The game's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Degraded,
    Failing,
}

/// One kind of issue: how often, and the last time.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Issue {
    count: u64,
    last_seq: u64,
    /// What was seen, for the reason line ("Q3 clock 5:12 → 5:40").
    detail: String,
    /// Still going on (a gap not filled, a silent feed).
    open: bool,
}

/// Where the game stood before an event was applied.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    period: u8,
    clock_ms: Option<u32>,
    ts: i64,
    last_seq: u64,
    /// Between periods (the last event ended one): the next period's clock starts over.
    in_break: bool,
}

impl Before {
    pub fn of(s: &GameState) -> Before {
        let in_break = s.last_event == "period_end";
        Before { period: s.period, clock_ms: s.clock_ms, ts: s.ts, last_seq: s.last_seq, in_break }
    }
}

/// A game's monitor; kept in the game's state snapshots (what it has published stays what a
/// full replay of the log would publish).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Quality {
    #[serde(skip)]
    topic: Option<Arc<Topic>>,
    issues: BTreeMap<String, Issue>,
    /// Events applied, and the count at the last issue.
    events: u64,
    last_issue_at: Option<u64>,
    /// When ingest took the game's last event.
    #[serde(skip)]
    last_event: Option<Instant>,
    published: Option<(Health, u64)>,
    /// The final report (at the game's end) went out.
    ended: bool,
    /// Basketball: personal fouls per player (six and they are out).
    fouls: BTreeMap<String, u8>,
    /// Basketball: players substituted out in this period and not back in (on the bench).
    #[serde(default)]
    bench: std::collections::BTreeSet<String>,
}

/// Personal fouls that foul a player out (NBA).
const FOUL_OUT: u8 = 6;

const TIME_BACKWARDS_US: i64 = 60_000_000;

impl Quality {
    /// After `ev`, which ingest took at `received`, was applied to `state` (`before`: where it
    /// stood). Stages `game/{id}/quality` when the health or an issue changed.
    pub(crate) fn observe(
        &mut self,
        cfg: &QualityConfig,
        before: Before,
        ev: &Event,
        received: Instant,
        state: &GameState,
        out: &mut Out,
    ) {
        self.events += 1;
        self.last_event = Some(received);
        let mut changed = self.close("stale");
        let seq = ev.seq;
        if ev.seq < before.last_seq {
            changed |= self.note("late", seq, format!("seq {seq} arrived after seq {}", before.last_seq));
        } else {
            if state.period < before.period {
                let d = format!("period {} → {}", before.period, state.period);
                changed |= self.note("period_backwards", seq, d);
            }
            if let (Some(a), Some(b)) = (before.clock_ms, ev.clock_ms)
                && state.period == before.period
                && !before.in_break
                && a > 0
                && !matches!(ev.body.kind(), "period_start" | "period_end" | "game_start")
            {
                let wrong_way = match state.sport {
                    Sport::Basketball | Sport::Football => b > a.saturating_add(cfg.clock_slack_ms),
                    Sport::Soccer => b.saturating_add(cfg.clock_slack_ms) < a,
                    Sport::F1 => false,
                };
                if wrong_way {
                    let d = format!("period {} clock {} → {}", state.period, clock(a), clock(b));
                    changed |= self.note("clock_backwards", seq, d);
                }
            }
            if ev.ts < before.ts.saturating_sub(TIME_BACKWARDS_US) {
                let d = format!(
                    "source time {} s before the previous event's",
                    before.ts.saturating_sub(ev.ts) / 1_000_000
                );
                changed |= self.note("time_backwards", seq, d);
            }
        }
        if let Some(d) = self.impossible(ev) {
            changed |= self.note("impossible", seq, d);
        }
        if ev.body.kind() == "score_correction"
            && let Some(s) = state.score
        {
            changed |= self.note("score_correction", seq, format!("score set to {}–{}", s.home, s.away));
        }
        if state.missing > 0 {
            let d = format!("{} seq(s) missing below {}", state.missing, state.last_seq);
            changed |= self.open("gap", seq, d);
        } else {
            changed |= self.close("gap");
        }
        if state.status == Status::Ended && !self.ended {
            self.ended = true;
            changed = true;
        }
        self.publish(cfg, state, ev.ts, changed, out);
    }

    /// Once a second: a live game silent for `stale_after_ms` outside a break is stale.
    pub(crate) fn sweep(&mut self, cfg: &QualityConfig, state: &GameState, out: &mut Out) {
        let Some(last) = self.last_event else { return };
        let silent = last.elapsed();
        let in_play = state.status == Status::Live
            && state.period > 0
            && !matches!(&*state.last_event, "timeout" | "period_end" | "game_end" | "game_start");
        if !in_play || silent < Duration::from_millis(cfg.stale_after_ms) {
            return;
        }
        if self.issues.get("stale").is_some_and(|s| s.open) {
            return;
        }
        let d = format!("no event for {} s in play", silent.as_secs());
        self.open("stale", state.last_seq, d);
        self.publish(cfg, state, state.ts, true, out);
    }

    /// Another event was sent under `seq`, already accepted (ingest compared the frames; the
    /// first stands).
    pub(crate) fn conflict(&mut self, cfg: &QualityConfig, seq: u64, state: &GameState, out: &mut Out) {
        self.note("duplicate_conflict", seq, format!("seq {seq} sent again with different content"));
        self.publish(cfg, state, state.ts, true, out);
    }

    /// A tracked person faster than anyone runs (ingest checks each sample against the
    /// entity's previous one: `ingest::admission::superhuman`).
    pub(crate) fn tracking(&mut self, cfg: &QualityConfig, detail: String, state: &GameState, out: &mut Out) {
        self.note("impossible", state.last_seq, detail);
        self.publish(cfg, state, state.ts, true, out);
    }

    /// A value in range that the game cannot have (see the module docs).
    fn impossible(&mut self, ev: &Event) -> Option<String> {
        match &ev.body {
            Body::Football(Fb::Play(p)) if matches!(p.play_type, PlayType::Run | PlayType::Pass) => {
                let yl = i16::from(p.yardline_100?);
                (p.yards > yl || -p.yards > 100 - yl).then(|| {
                    format!("a {:?} of {} yds from {} yds out", p.play_type, p.yards, yl).to_lowercase()
                })
            }
            Body::Basketball(Bk::Foul { player: Some(p), kind, .. }) if !kind.contains("technical") => {
                *self.fouls.entry(p.clone()).or_default() += 1;
                None
            }
            Body::Basketball(Bk::Substitution { player_in, player_out, .. }) => {
                self.bench.remove(player_in);
                self.bench.insert(player_out.clone());
                None
            }
            // Lineups change between periods without substitutions in the feed.
            Body::Basketball(Bk::PeriodStart { .. }) => {
                self.bench.clear();
                None
            }
            Body::Basketball(
                Bk::Shot { player, made: true, .. } | Bk::FreeThrow { player, made: true, .. },
            ) => {
                let fouls = self.fouls.get(player).copied().unwrap_or(0);
                // A field goal only: feeds log substitutions between free throws.
                let field_goal = matches!(ev.body, Body::Basketball(Bk::Shot { .. }));
                if fouls >= FOUL_OUT {
                    Some(format!("{player} scored with {fouls} personal fouls"))
                } else if field_goal && self.bench.contains(player) {
                    Some(format!("{player} scored a field goal while substituted out"))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn note(&mut self, kind: &'static str, seq: u64, detail: String) -> bool {
        metrics::counter!(m::FEED_ISSUES_TOTAL, "kind" => kind).increment(1);
        let i = self.issues.entry(kind.to_owned()).or_default();
        i.count += 1;
        i.last_seq = seq;
        i.detail = detail;
        self.last_issue_at = Some(self.events);
        true
    }

    /// An issue that stays until closed: noted when it opens (true), its detail kept up to
    /// date while it is open (false: nothing new to publish).
    fn open(&mut self, kind: &'static str, seq: u64, detail: String) -> bool {
        if let Some(i) = self.issues.get_mut(kind).filter(|i| i.open) {
            i.detail = detail;
            return false;
        }
        self.note(kind, seq, detail);
        if let Some(i) = self.issues.get_mut(kind) {
            i.open = true;
        }
        true
    }

    fn close(&mut self, kind: &str) -> bool {
        match self.issues.get_mut(kind) {
            Some(i) if i.open => {
                i.open = false;
                true
            }
            _ => false,
        }
    }

    pub fn health(&self, cfg: &QualityConfig) -> Health {
        if self.issues.values().any(|i| i.open) {
            Health::Failing
        } else if self.last_issue_at.is_some_and(|at| self.events - at < cfg.recent_events) {
            Health::Degraded
        } else {
            Health::Ok
        }
    }

    /// Stages the report when it changed (or is the game's first).
    fn publish(&mut self, cfg: &QualityConfig, state: &GameState, ts: i64, changed: bool, out: &mut Out) {
        let health = self.health(cfg);
        let issues: u64 = self.issues.values().map(|i| i.count).sum();
        if !changed && self.published == Some((health, issues)) {
            return;
        }
        self.published = Some((health, issues));
        #[derive(Serialize)]
        struct Report<'a> {
            status: Health,
            reasons: Vec<String>,
            issues: &'a BTreeMap<String, Issue>,
            events: u64,
        }
        let reasons = self
            .issues
            .iter()
            .filter(|(_, i)| i.open || health != Health::Ok)
            .map(|(k, i)| {
                format!(
                    "{}{}: {} (×{}, last at seq {})",
                    k.replace('_', " "),
                    if i.open { " (open)" } else { "" },
                    i.detail,
                    i.count,
                    i.last_seq
                )
            })
            .collect();
        let report = Report { status: health, reasons, issues: &self.issues, events: self.events };
        out.stage(
            &mut self.topic,
            || format!("game/{}/quality", state.game),
            ts,
            |buf| serde_json::to_writer(buf, &report).is_ok(),
        );
    }
}

fn clock(ms: u32) -> String {
    format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
}
