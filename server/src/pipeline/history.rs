//! A game's events as its shard processed them, for rebuilding a plugin instance by replay
//! (hot reload, or after a trap).
//!
//! The order is the shard's (gap fills where they arrived), so a rebuilt instance is exactly
//! the one that ran live. With the durable log on, an entry keeps its bytes only until the log
//! has committed them; from then on the entry is its seq alone (16 bytes instead of the
//! archived event) and a rebuild reads the event back from the log. Without the log every
//! entry keeps its bytes. Either way at most `plugins.max_history_events` entries per game.
//!
//! Trimming relies on one fact: a game's events reach the log writer in the order they reach
//! the shard (ingest appends, then queues to the shard, one stream per game at a time), and the
//! writer commits in queue order; so whether an entry is in the log is a prefix property, found
//! by a binary search of a few lookups.

use std::collections::VecDeque;
use std::sync::Arc;

use opensports_proto::Sport;
use rkyv::util::AlignedVec;

use crate::plugin::ReplayFn;
use crate::seqs::GameSeq;
use crate::store::{LogReader, Store};

/// Entries of one game: `(seq, bytes until logged)`.
#[derive(Debug, Default)]
pub(super) struct History {
    /// A game restored from a state snapshot: the seqs it covers, all in the log, replayed
    /// (from the log, in seq order) before the entries.
    base: Option<GameSeq>,
    entries: VecDeque<(u64, Option<Arc<AlignedVec>>)>,
    /// Entries before this index have no bytes (they are in the log).
    bytes_from: usize,
}

impl History {
    /// The history of a game restored from a snapshot covering `seqs`.
    pub(super) fn based_on(seqs: GameSeq) -> History {
        History { base: Some(seqs), ..History::default() }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries still holding their bytes.
    pub(super) fn held(&self) -> usize {
        self.entries.len() - self.bytes_from
    }

    /// Keeps `(seq, bytes)`, dropping the oldest entry past `cap` (a rebuild can then no longer
    /// be exact; the cap bounds memory).
    pub(super) fn push(&mut self, seq: u64, bytes: Arc<AlignedVec>, cap: usize) {
        if self.entries.len() >= cap.max(1) {
            self.entries.pop_front();
            self.bytes_from = self.bytes_from.saturating_sub(1);
        }
        self.entries.push_back((seq, Some(bytes)));
    }

    /// Drops the bytes of every entry the log has committed.
    pub(super) fn trim(&mut self, game: &str, log: &LogReader) {
        // The last entry in the log, by binary search over the entries still holding bytes.
        let (mut lo, mut hi) = (self.bytes_from, self.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match log.contains(game, self.entries[mid].0) {
                Ok(true) => lo = mid + 1,
                Ok(false) => hi = mid,
                Err(_) => return,
            }
        }
        for entry in self.entries.range_mut(self.bytes_from..lo) {
            entry.1 = None;
        }
        self.bytes_from = lo;
    }

    /// Calls `f` with each entry in order, reading the bytes of logged entries from `store`.
    pub(super) fn replay(&self, game: &str, sport: Sport, store: Option<&Store>, f: &mut ReplayFn<'_>) {
        if let (Some(base), Some(store)) = (&self.base, store) {
            let read = store.for_each_event(game, 0, &mut |seq, bytes| {
                if seq > base.high {
                    return false;
                }
                if !base.missing.iter().any(|&(a, b)| a <= seq && seq <= b) {
                    f(game, sport, seq, &opensports_proto::codec::aligned(bytes));
                }
                true
            });
            if let Err(e) = read {
                tracing::error!(game, error = %e, "cannot read the log to rebuild a plugin");
            }
        }
        let reader = match (self.bytes_from, store) {
            (0, _) => None,
            (_, Some(store)) => match store.reader() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(game, error = %e, "cannot read the log to rebuild a plugin; replaying what memory holds");
                    None
                }
            },
            (_, None) => None,
        };
        for (seq, bytes) in &self.entries {
            match (bytes, &reader) {
                (Some(b), _) => f(game, sport, *seq, b),
                (None, Some(r)) => match r.get(game, *seq) {
                    Ok(Some(b)) => f(game, sport, *seq, &b),
                    other => tracing::warn!(
                        game,
                        seq,
                        ?other,
                        "a logged event is not readable for a plugin rebuild"
                    ),
                },
                (None, None) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::store::{AckSink, Append, Queued};

    #[derive(Debug, Default)]
    struct Acks(parking_lot::Mutex<Vec<u64>>);
    impl AckSink for Acks {
        fn ack(&self, _game: &str, seq: u64) {
            self.0.lock().push(seq);
        }
    }

    fn event(seq: u64) -> Arc<AlignedVec> {
        let mut v = AlignedVec::new();
        v.extend_from_slice(&seq.to_le_bytes());
        Arc::new(v)
    }

    /// Entries keep their bytes until the log holds them; a replay gives back the same events
    /// in the shard's order either way (gap fill included).
    #[test]
    fn logged_entries_drop_their_bytes_and_replay_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::default(), dir.path()).unwrap();
        let order = [1u64, 2, 4, 5, 3, 6, 7];
        let mut history = History::default();
        let acks = Arc::new(Acks::default());
        let sink: Arc<dyn AckSink> = acks.clone();
        for (i, &seq) in order.iter().enumerate() {
            let bytes = event(seq);
            history.push(seq, bytes.clone(), 100);
            // The first five reach the log; 6 and 7 are still on their way.
            if i < 5 {
                let append = Append { game: "g", seq, sport: "soccer", bytes: &bytes, owner: None };
                assert_eq!(store.try_append(append, &sink).unwrap(), Queued::Yes);
            }
        }
        while acks.0.lock().len() < 5 {
            std::thread::yield_now();
        }
        history.trim("g", &store.reader().unwrap());
        assert_eq!((history.len(), history.held()), (7, 2));
        let mut got = Vec::new();
        history.replay("g", Sport::Soccer, Some(&store), &mut |_, _, seq, bytes| {
            assert_eq!(bytes, seq.to_le_bytes());
            got.push(seq);
        });
        assert_eq!(got, order);
        // The cap drops the oldest.
        history.push(8, event(8), 7);
        assert_eq!((history.len(), history.held()), (7, 3));
    }
}
