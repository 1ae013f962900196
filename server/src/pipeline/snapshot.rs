//! A game's state snapshot: everything its shard derived from the events it folded in, so
//! that recovery restores it and replays only the events after it instead of the whole game.
//!
//! Taken by the shard every `store.snapshot_every` events of a game, when it ends and when the
//! shard stops cleanly, and written to the log's `snapshots` table (one per game, the latest) through the writer's
//! queue, after every event it covers was queued there: it commits with or after them, never
//! before. What it holds, and what a restore gives back:
//!
//! - the seqs folded in ([`GameSeq`]: highest, ranges missing) and the people named: ingest's
//!   sequencing and roster bounds resume from them;
//! - the core state, the win-probability stage (pinned strength, predictions not yet scored);
//! - every topic of the game the shard publishes (state, win probability, plugin outputs) at
//!   its seq with its latest value: the same publication as before, same seq, ts and bytes;
//!   a clean stop's snapshot keeps each topic's whole history ring too (the periodic ones do
//!   not: a ring is up to `fanout.history_bytes` per topic, too much to write every few
//!   thousand events);
//! - each plugin's own state for the game, tagged with the plugin's version.
//!
//! Recovery checks the version, that the plugins loaded now are the versions saved and that the
//! log holds the snapshot's highest seq; any miss means a full replay of that game, which is
//! always correct. After a crash the topics' history rings restart at the periodic snapshot
//! (a `since` resume from before it gets `reset` and the latest value, as for any history too
//! old): the one thing a full replay gives back that such a snapshot does not. Events after the snapshot, and gap fills
//! of ranges it had missing, are replayed in seq order as always.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::state::GameState;
use super::winprob::SavedWinProb;
use crate::plugin::SavedPlugin;
use crate::seqs::GameSeq;

/// Format version; a snapshot of another version is ignored (full replay).
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub struct GameSnapshot {
    pub version: u32,
    pub game: String,
    /// The seqs folded in.
    pub seqs: GameSeq,
    /// The people the game's events named (sorted).
    pub people: Vec<String>,
    pub state: GameState,
    pub winprob: SavedWinProb,
    pub topics: Vec<SavedTopic>,
    pub plugins: Vec<SavedPlugin>,
    /// The trigger rules' state (`crate::triggers`).
    #[serde(default)]
    pub triggers: crate::triggers::GameTriggers,
    /// The feed-quality monitor's state (`quality.rs`).
    #[serde(default)]
    pub quality: super::quality::Quality,
    /// The analyst's state (`analyst`).
    #[serde(default)]
    pub analyst: super::analyst::Analyst,
}

/// One topic at its latest publication, and, in a clean stop's snapshot, the rest of its kept
/// history.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedTopic {
    pub name: String,
    pub seq: u64,
    pub ts: i64,
    pub data: Box<RawValue>,
    /// The publications kept before the latest, oldest first (clean stop only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<SavedPub>,
}

/// One kept publication of a topic.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedPub {
    pub seq: u64,
    pub ts: i64,
    pub data: Box<RawValue>,
}

impl SavedTopic {
    /// A topic's kept publications (ascending, at least one) as saved.
    pub fn of(pubs: &[crate::fanout::Pub]) -> Option<SavedTopic> {
        let raw = |p: &crate::fanout::Pub| RawValue::from_string(p.data().to_string()).ok();
        let (latest, older) = pubs.split_last()?;
        let history = older
            .iter()
            .map(|p| Some(SavedPub { seq: p.seq, ts: p.ts, data: raw(p)? }))
            .collect::<Option<Vec<_>>>()?;
        Some(SavedTopic {
            name: latest.topic.to_string(),
            seq: latest.seq,
            ts: latest.ts,
            data: raw(latest)?,
            history,
        })
    }

    /// `(seq, ts, data)` of every saved publication, ascending.
    pub fn pubs(&self) -> Vec<(u64, i64, &[u8])> {
        let mut pubs: Vec<(u64, i64, &[u8])> =
            self.history.iter().map(|p| (p.seq, p.ts, p.data.get().as_bytes())).collect();
        pubs.push((self.seq, self.ts, self.data.get().as_bytes()));
        pubs
    }
}

impl GameSnapshot {
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// A snapshot of this [`VERSION`] for `game`, or why not.
    pub fn decode(game: &str, bytes: &[u8]) -> Result<GameSnapshot, String> {
        let snap: GameSnapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if snap.version != VERSION {
            return Err(format!("snapshot version {}, this build reads {VERSION}", snap.version));
        }
        if snap.game != game {
            return Err(format!("snapshot of game {:?} filed under {game:?}", snap.game));
        }
        Ok(snap)
    }

    /// The seq ranges (inclusive, ascending) of the log to replay after restoring: the ranges
    /// missing at the snapshot (filled since, maybe) and everything after its highest seq.
    pub fn tail(&self) -> Vec<(u64, u64)> {
        let mut ranges = self.seqs.missing.clone();
        ranges.push((self.seqs.high.saturating_add(1), u64::MAX));
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::state::GameState;
    use crate::sim::{self, Rng};

    /// The state of a simulated game of each sport, caught mid-game and at the end, goes
    /// through the snapshot's JSON and comes back equal (the flattened sport detail, the
    /// optional fields, the last event's type).
    #[test]
    fn a_snapshot_round_trips_for_every_sport() {
        let games = [
            sim::basketball::generate("g1", &mut Rng::new(1), 0),
            sim::football::generate("g1", &mut Rng::new(2), 0),
            sim::soccer::generate("g1", &mut Rng::new(3), 0),
            sim::f1::generate("g1", &mut Rng::new(4), 0),
        ];
        for events in games {
            let mut state = GameState::new("g1", events[0].event.sport());
            for (i, e) in events.iter().enumerate() {
                state.apply(&e.event);
                if i != events.len() / 2 && i != events.len() - 1 {
                    continue;
                }
                let snap = GameSnapshot {
                    version: VERSION,
                    game: "g1".into(),
                    seqs: GameSeq { high: 40, missing: vec![(7, 9)], ..GameSeq::default() },
                    people: vec!["201939".into()],
                    state: state.clone(),
                    winprob: SavedWinProb::default(),
                    topics: vec![SavedTopic {
                        name: "game/g1/state".into(),
                        seq: 40,
                        ts: 5,
                        data: RawValue::from_string(r#"{"a":1}"#.into()).unwrap(),
                        history: Vec::new(),
                    }],
                    plugins: Vec::new(),
                    triggers: Default::default(),
                    quality: Default::default(),
                    analyst: Default::default(),
                };
                let bytes = snap.encode().unwrap();
                let back = GameSnapshot::decode("g1", &bytes).unwrap();
                assert_eq!(back.state, state);
                assert_eq!(
                    serde_json::to_string(&back.state).unwrap(),
                    serde_json::to_string(&state).unwrap()
                );
                assert_eq!(back.seqs, snap.seqs);
                assert_eq!(back.topics[0].data.get(), r#"{"a":1}"#);
                assert_eq!(back.tail(), vec![(7, 9), (41, u64::MAX)]);
                assert!(GameSnapshot::decode("g2", &bytes).unwrap_err().contains("filed under"));
            }
        }
    }
}
