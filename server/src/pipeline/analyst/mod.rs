//! The game analyst (`game/{id}/analyst`): short, true, sourced notes as the game goes, for
//! commentators and graphics producers.
//!
//! - [`ledger`] folds the numbers the notes quote that the core state does not keep, and is
//!   the one place a fact's value is looked up.
//! - [`templates`] turn what an event changed into drafts: text plus the facts it quotes, each
//!   value read from the ledger or the state.
//! - This stage ranks the drafts and publishes at most `analyst.max_per_minute` a minute (and
//!   `min_gap_secs` apart; period ends and the final are not held), a kind of note about one
//!   subject at most once per `repeat_secs`. A draft waits at most `max_age_secs`; a newer
//!   draft of the same kind and subject replaces it.
//! - **Checked before it goes out.** When its turn comes every fact is looked up again; a note
//!   whose numbers no longer match the state (the score moved on, a correction came) is dropped
//!   and counted (`opensports_analyst_notes_total{outcome="stale"}`).
//! - Time is the events' source time and nothing here reads a clock, so a replay of the log
//!   publishes the same notes; the stage is kept in the game's snapshot.
//! - With `[analyst.llm]`, a checked note goes to [`llm`] to be rephrased before it is
//!   published (the template text when the model's answer is refused or late).

pub mod ledger;
pub mod llm;
mod templates;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use opensports_proto::{Event, topic};
use serde::{Deserialize, Serialize};

use super::out::Out;
use super::state::GameState;
use crate::config::AnalystConfig;
use crate::fanout::Topic;
use crate::metrics as m;
use ledger::Ledger;

/// Drafts waiting for a slot, per game.
const MAX_PENDING: usize = 16;
/// Priority from which a note is not held to the rate (period ends, the final).
const URGENT: u8 = 90;
const MINUTE_US: i64 = 60_000_000;

/// One number a note states: what it is, where it is looked up, its value after event `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// What the number is, in words ("K.Irving points in Q3").
    pub name: String,
    /// Where [`Ledger::value`] looks it up.
    pub stat: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u8>,
    pub value: f64,
    /// The event after which it had this value.
    pub seq: u64,
}

/// A note as published on `game/{id}/analyst`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// 1, 2, ... per game, in publishing order.
    pub id: u64,
    /// The template (`milestone`, `run`, `swing`, ...).
    pub kind: String,
    /// Whom it is about (a player, a side, a driver); with `kind`, the key of its cooldown.
    pub subject: String,
    pub priority: u8,
    pub text: String,
    /// The template's text when `text` was rephrased by a language model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrased_by: Option<String>,
    pub period: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<u32>,
    /// The event that gave rise to it, and its source time.
    pub seq: u64,
    pub ts: i64,
    /// The event after which it was checked and published.
    pub at_seq: u64,
    pub facts: Vec<Fact>,
}

impl Note {
    fn key(&self) -> String {
        format!("{}/{}", self.kind, self.subject)
    }
}

/// A game's analyst; kept in its state snapshot.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Analyst {
    #[serde(skip)]
    topic: Option<Arc<Topic>>,
    ledger: Ledger,
    pending: Vec<Note>,
    published: u64,
    /// Source times of the notes published in the last minute.
    recent: VecDeque<i64>,
    /// When each kind/subject was last published.
    said: BTreeMap<String, i64>,
}

impl Analyst {
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// After `ev` went through the state, win probability (`wp`: the home probability it
    /// gave) and plugins (`xg`: the running totals `soccer-shots` published for it, see
    /// [`staged_xg`]): folds it into the ledger, drafts notes, and publishes what the rate
    /// allows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe(
        &mut self,
        cfg: &AnalystConfig,
        ev: &Event,
        state: &GameState,
        wp: Option<f32>,
        xg: Option<[f64; 2]>,
        out: &mut Out,
        llm: Option<&llm::Rephraser>,
    ) {
        self.fold(cfg, ev, state, wp, xg);
        self.publish_due(cfg, state, ev, out, llm);
    }

    /// The per-event work before publishing: `ev` into the ledger, its drafts offered. Gives
    /// the drafts waiting (the core bench's `analyst/{sport}` measures this).
    pub fn fold(
        &mut self,
        cfg: &AnalystConfig,
        ev: &Event,
        state: &GameState,
        wp: Option<f32>,
        xg: Option<[f64; 2]>,
    ) -> usize {
        let delta = self.ledger.apply(ev, state, wp, xg);
        let cx = templates::Cx { state, ledger: &self.ledger, seq: ev.seq, ts: ev.ts };
        for draft in templates::draft(&cx, &delta) {
            self.offer(cfg, draft);
        }
        self.pending.len()
    }

    /// Queues a draft unless its kind/subject spoke within `repeat_secs`; replaces a waiting
    /// draft of the same kind/subject; keeps the [`MAX_PENDING`] best.
    fn offer(&mut self, cfg: &AnalystConfig, note: Note) {
        let key = note.key();
        if self
            .said
            .get(&key)
            .is_some_and(|t| note.ts.saturating_sub(*t) < i64::from(cfg.repeat_secs) * 1_000_000)
        {
            return;
        }
        if let Some(i) = self.pending.iter().position(|p| p.key() == key) {
            self.pending.remove(i);
            metrics::counter!(m::ANALYST_NOTES_TOTAL, "outcome" => "superseded").increment(1);
        }
        self.pending.push(note);
        if self.pending.len() > MAX_PENDING
            && let Some(i) = self.worst()
        {
            self.pending.remove(i);
            metrics::counter!(m::ANALYST_NOTES_TOTAL, "outcome" => "expired").increment(1);
        }
    }

    /// Index of the lowest-priority, oldest waiting draft.
    fn worst(&self) -> Option<usize> {
        (0..self.pending.len())
            .min_by_key(|&i| (self.pending[i].priority, std::cmp::Reverse(self.pending.len() - i)))
    }

    /// The best waiting draft: highest priority, then the earliest.
    fn best(&self) -> Option<usize> {
        (0..self.pending.len()).max_by_key(|&i| (self.pending[i].priority, std::cmp::Reverse(i)))
    }

    fn publish_due(
        &mut self,
        cfg: &AnalystConfig,
        state: &GameState,
        ev: &Event,
        out: &mut Out,
        llm: Option<&llm::Rephraser>,
    ) {
        let now = ev.ts;
        let max_age = i64::from(cfg.max_age_secs) * 1_000_000;
        let before = self.pending.len();
        self.pending.retain(|n| now.saturating_sub(n.ts) <= max_age);
        let expired = before - self.pending.len();
        if expired > 0 {
            metrics::counter!(m::ANALYST_NOTES_TOTAL, "outcome" => "expired").increment(expired as u64);
        }
        while let Some(i) = self.best() {
            while self.recent.front().is_some_and(|t| now.saturating_sub(*t) >= MINUTE_US) {
                self.recent.pop_front();
            }
            let urgent = self.pending[i].priority >= URGENT;
            let gap_ok = self
                .recent
                .back()
                .is_none_or(|t| now.saturating_sub(*t) >= i64::from(cfg.min_gap_secs) * 1_000_000);
            if !urgent && (self.recent.len() >= cfg.max_per_minute as usize || !gap_ok) {
                return;
            }
            let mut note = self.pending.remove(i);
            if !self.holds(state, &note) {
                metrics::counter!(m::ANALYST_NOTES_TOTAL, "outcome" => "stale").increment(1);
                continue;
            }
            self.published += 1;
            note.id = self.published;
            note.at_seq = ev.seq;
            self.recent.push_back(now);
            // Only what can still hold a note back is kept: at most the notes of the last
            // `repeat_secs`, whatever the feed's clock does.
            let repeat = i64::from(cfg.repeat_secs) * 1_000_000;
            self.said.retain(|_, t| now.saturating_sub(*t) < repeat);
            self.said.insert(note.key(), now);
            metrics::counter!(m::ANALYST_NOTES_TOTAL, "outcome" => "published").increment(1);
            self.emit(note, ev, out, llm);
        }
    }

    /// Every fact of `note` still has its value.
    fn holds(&self, state: &GameState, note: &Note) -> bool {
        note.facts.iter().all(|f| {
            self.ledger
                .value(state, &f.stat, f.subject.as_deref(), f.period)
                .is_some_and(|v| (v - f.value).abs() < 1e-9)
        })
    }

    fn emit(&mut self, note: Note, ev: &Event, out: &mut Out, llm: Option<&llm::Rephraser>) {
        let name = || format!("{}analyst", topic::game_prefix(&ev.game));
        let note = match llm {
            Some(r) => match out.topic(&mut self.topic, name) {
                Some(t) => match r.submit(t, ev.ts, note) {
                    Ok(()) => return,
                    Err(note) => *note,
                },
                None => return,
            },
            None => note,
        };
        out.stage(&mut self.topic, name, ev.ts, |buf| serde_json::to_writer(buf, &note).is_ok());
    }
}

/// The xG totals among an event's publications: `{home, away}` of `soccer-shots/xg`.
pub(crate) fn staged_xg<'a>(mut staged: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<[f64; 2]> {
    let (_, data) = staged.find(|(t, _)| t.ends_with("/soccer-shots/xg"))?;
    xg_totals(data)
}

fn xg_totals(data: &[u8]) -> Option<[f64; 2]> {
    #[derive(Deserialize)]
    struct Xg {
        home: f64,
        away: f64,
    }
    let x: Xg = serde_json::from_slice(data).ok()?;
    Some([x.home, x.away])
}

#[cfg(test)]
mod tests {
    use opensports_proto::{Body, Sport, basketball as bk};

    use super::*;

    /// Whatever the feed sends (a period that ends before any starts, events out of order,
    /// win probability swinging from 0 to 1, the same event twice, source times at the ends of
    /// the range), the analyst publishes only
    /// notes whose facts hold, and never panics: it runs on the shard thread.
    #[test]
    fn odd_feeds_give_only_notes_that_hold_and_never_a_panic() {
        let fanout = crate::fanout::Fanout::new(crate::config::FanoutConfig::default());
        let mut out = Out::new(fanout.clone(), 64);
        let cfg = AnalystConfig { min_gap_secs: 0, max_per_minute: 1000, ..AnalystConfig::default() };
        for sport in Sport::ALL {
            let mut events: Vec<Event> =
                crate::sim::generate(sport, 7, 0).events.into_iter().map(|t| t.event).collect();
            let mut odd = events[0].clone();
            odd.body = Body::Basketball(bk::Event::PeriodEnd { period: 0 });
            if sport == Sport::Basketball {
                events.insert(1, odd);
            }
            let n = events.len();
            events[n / 3..n / 2].reverse();
            let again = events[n / 4].clone();
            events.insert(n / 4, again);
            // Source times from the ends of the range.
            events[n / 5].ts = i64::MAX;
            events[n / 5 + 1].ts = i64::MIN;
            let mut state = GameState::new(&events[0].game, sport);
            let mut analyst = Analyst::default();
            let mut published = 0;
            for (i, ev) in events.iter().enumerate() {
                state.apply(ev);
                let wp = (i % 3 != 0).then_some(if i % 2 == 0 { 0.0 } else { 1.0 });
                analyst.observe(&cfg, ev, &state, wp, Some([i as f64, 0.5]), &mut out, None);
                for (_, data) in out.staged_since(0) {
                    let note: Note = serde_json::from_slice(data).unwrap();
                    assert!(analyst.holds(&state, &note), "{sport:?}: {note:?}");
                    published += 1;
                }
                out.publish();
            }
            assert!(published > 0, "{sport:?}: no notes at all");
        }
    }
}
