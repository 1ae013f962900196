//! The `games` topic: one summary per game in memory, published as a list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opensports_proto::topic;
use parking_lot::Mutex;
use serde::Serialize;

use super::state::GameSummary;
use crate::fanout::Fanout;

/// Shortest time between two `games` publications. With hundreds of games, serializing the
/// list on every basket would cost more than the basket: a change inside the interval marks
/// the list dirty and the shards' loop publishes it when the interval is over.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct GamesTopic {
    /// Summaries by game id; publishing happens under this lock so `games` messages are in
    /// the same order as the changes they describe.
    summaries: Mutex<Summaries>,
    dirty: AtomicBool,
    fanout: Arc<Fanout>,
}

#[derive(Debug)]
struct Summaries {
    by_game: BTreeMap<String, GameSummary>,
    last_publish: Option<Instant>,
    /// Source time of the newest change, stamped on the next publication.
    ts: i64,
}

#[derive(Serialize)]
struct GamesList<'a> {
    games: Vec<&'a GameSummary>,
}

impl GamesTopic {
    pub fn new(fanout: Arc<Fanout>) -> GamesTopic {
        let summaries = Summaries { by_game: BTreeMap::new(), last_publish: None, ts: 0 };
        GamesTopic { summaries: Mutex::new(summaries), dirty: AtomicBool::new(false), fanout }
    }

    /// Records a changed summary; the list is published now or within [`MIN_INTERVAL`].
    pub fn update(&self, summary: GameSummary, ts: i64) {
        let mut s = self.summaries.lock();
        s.by_game.insert(summary.game.clone(), summary);
        s.ts = s.ts.max(ts);
        self.publish_or_defer(&mut s);
    }

    /// Publishes a deferred change once its interval is over. Cheap when nothing is pending.
    pub fn flush_if_due(&self) {
        if self.dirty.load(Ordering::Relaxed) {
            let mut s = self.summaries.lock();
            self.publish_or_defer(&mut s);
        }
    }

    /// Drops a game's summary (evicted after it ended).
    pub fn remove(&self, game: &str, ts: i64) {
        let mut s = self.summaries.lock();
        if s.by_game.remove(game).is_some() {
            s.ts = s.ts.max(ts);
            self.publish_or_defer(&mut s);
        }
    }

    /// The current list as JSON, for `GET /v1/games`.
    pub fn list_json(&self) -> String {
        let s = self.summaries.lock();
        serde_json::to_string(&GamesList { games: s.by_game.values().collect() })
            .unwrap_or_else(|_| r#"{"games":[]}"#.into())
    }

    fn publish_or_defer(&self, s: &mut Summaries) {
        if s.last_publish.is_some_and(|t| t.elapsed() < MIN_INTERVAL) {
            self.dirty.store(true, Ordering::Relaxed);
            return;
        }
        self.dirty.store(false, Ordering::Relaxed);
        s.last_publish = Some(Instant::now());
        let Some(t) = self.fanout.topic(topic::GAMES) else { return };
        match serde_json::to_vec(&GamesList { games: s.by_game.values().collect() }) {
            Ok(data) => {
                self.fanout.publish(&t, s.ts, &data);
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize the games list"),
        }
    }
}
