//! Firings → outbox entries. The dispatcher is an internal subscriber of `game/+/triggers`
//! (live firings only: a topic's snapshot on subscribing is a moment already past), subscribed
//! before the log is replayed at start, so a firing whose push was not yet recorded when the
//! server stopped is queued then (the keys make the others no-ops).

use std::sync::Arc;

use redb::ReadableTable;
use tokio::sync::watch;

use super::{Entry, OUTBOX, Push, State, db_err};

/// Entries written per commit.
const CHUNK: usize = 4096;
use crate::fanout::Fanout;
use crate::fanout::outbox::{Item, Outbox};
use crate::metrics as m;
use crate::store::now_ms;

/// A notification's title for a rule, in `locale`: the default rules', else the rule's name
/// (`basketball-boxscore:run` → `Run`).
pub fn title(rule: &str, locale: &str) -> String {
    let es = locale == "es";
    let known = match rule {
        "home_goal" | "away_goal" => Some(if es { "Gol" } else { "Goal" }),
        "home_scores" | "away_scores" => Some(if es { "Anotación" } else { "Score" }),
        "lead_change" => Some(if es { "Cambio de líder" } else { "Lead change" }),
        "leader_change" => Some(if es { "Nuevo líder" } else { "New leader" }),
        "score_correction" => Some(if es { "Marcador corregido" } else { "Score corrected" }),
        "final" => Some("Final"),
        "game_start" => Some(if es { "Comienza" } else { "Under way" }),
        "safety_car" => Some(if es { "Coche de seguridad" } else { "Safety car" }),
        "fastest_lap" => Some(if es { "Vuelta rápida" } else { "Fastest lap" }),
        "podium_p2" | "podium_p3" => Some(if es { "Cambio en el podio" } else { "Podium change" }),
        "red_card" => Some(if es { "Tarjeta roja" } else { "Red card" }),
        "winprob_swing" => Some(if es { "Giro en el partido" } else { "Momentum swing" }),
        _ => None,
    };
    match known {
        Some(t) => t.to_string(),
        None => {
            let name = rule.rsplit(':').next().unwrap_or(rule).replace(['_', '-'], " ");
            let mut c = name.chars();
            c.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + c.as_str())
        }
    }
}

/// A game's latest state (`game/{id}/state`), before its first event none.
pub fn state(fanout: &Fanout, game: &str) -> Option<serde_json::Value> {
    let p = fanout.latest(&format!("game/{game}/state"))?;
    serde_json::from_str(p.data()).ok()
}

/// A state's home and away (empty for F1, and without a state).
pub fn teams(state: Option<&serde_json::Value>) -> Vec<String> {
    let Some(state) = state else { return Vec::new() };
    ["home", "away"].iter().filter_map(|side| state[*side].as_str().map(String::from)).collect()
}

/// A state's last event (0 without a state).
pub fn last_seq(state: Option<&serde_json::Value>) -> u64 {
    state.and_then(|s| s["last_seq"].as_u64()).unwrap_or(0)
}

impl Push {
    /// A firing on `game/{game}/triggers`: one queued entry per device that wants it, written
    /// once (an entry already there, sent or not, is left as it is), in commits of
    /// [`CHUNK`] so the sender starts on the first while the rest are written. How many were
    /// new.
    /// `teams`: the game's home and away (empty when not known).
    pub fn dispatch(
        &self,
        game: &str,
        teams: &[String],
        firing: &serde_json::Value,
    ) -> Result<usize, String> {
        let (Some(rule), Some(seq)) = (firing["rule"].as_str(), firing["seq"].as_u64()) else {
            return Ok(0);
        };
        let targets: Vec<(String, String)> = self
            .devices
            .read()
            .values()
            .filter(|d| d.wants(game, teams, rule, seq))
            .map(|d| (d.id.clone(), d.locale.clone()))
            .collect();
        let manual = firing["manual"].as_bool().unwrap_or(false);
        let collapse_key = format!("{game}/{rule}");
        let mut new = 0;
        for chunk in targets.chunks(CHUNK) {
            let now = now_ms();
            let w = self.db.begin_write().map_err(db_err)?;
            let mut added = Vec::with_capacity(chunk.len());
            {
                let mut t = w.open_table(OUTBOX).map_err(db_err)?;
                for (device, locale) in chunk {
                    // A manual firing has no event of its own: its time tells it apart.
                    let key = match manual {
                        true => format!("{device}|{game}|{rule}|{seq}|manual-{}", firing["ts"]),
                        false => format!("{device}|{game}|{rule}|{seq}"),
                    };
                    if t.get(key.as_str()).map_err(db_err)?.is_some() {
                        continue;
                    }
                    let text =
                        firing["texts"][locale.as_str()].as_str().or(firing["text"].as_str()).unwrap_or("");
                    let body = serde_json::json!({
                        "id": key, "device": device, "game": game, "rule": rule, "seq": seq, "ts": firing["ts"],
                        "title": title(rule, locale), "text": text, "facts": firing["facts"],
                        "locale": locale, "collapse_key": collapse_key,
                    });
                    let e = Entry {
                        key,
                        device: device.clone(),
                        body,
                        state: State::Queued,
                        tries: 0,
                        at_ms: now,
                        reason: None,
                        held: false,
                    };
                    t.insert(e.key.as_str(), serde_json::to_vec(&e).map_err(db_err)?.as_slice())
                        .map_err(db_err)?;
                    added.push((now, e.key, format!("{device}|{collapse_key}")));
                }
            }
            w.commit().map_err(db_err)?;
            if added.is_empty() {
                continue;
            }
            new += added.len();
            let mut index = self.index.lock();
            for (at, key, collapse) in added {
                index.queue(at, key, collapse, seq);
            }
            metrics::gauge!(m::PUSH_QUEUED).set(index.due.len() as f64);
            drop(index);
            self.wake.notify_one();
        }
        metrics::counter!(m::PUSH_QUEUED_TOTAL).increment(new as u64);
        Ok(new)
    }

    /// Subscribes the dispatcher (before the log is replayed) and returns its task.
    pub fn dispatcher(
        self: Arc<Self>,
        fanout: Arc<Fanout>,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let outbox = Outbox::bounded(fanout.config().queue_len.max(4096), fanout.config().queue_bytes);
        let id = opensports_proto::topic::Pattern::parse("game/+/triggers")
            .ok()
            .map(|p| fanout.subscribe(&outbox, p, opensports_proto::ws::Mode::All, &Default::default()));
        self.run_dispatcher(fanout, outbox, id, shutdown)
    }

    async fn run_dispatcher(
        self: Arc<Self>,
        fanout: Arc<Fanout>,
        outbox: Arc<Outbox>,
        id: Option<crate::fanout::SubId>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let Some(id) = id else { return };
        let mut items = Vec::new();
        loop {
            tokio::select! {
                _ = outbox.wait() => {}
                _ = shutdown.changed() => break,
            }
            items.clear();
            outbox.drain(&mut items);
            let mut pubs = Vec::new();
            for item in &items {
                match item {
                    Item::Msg(p) => pubs.push(p.clone()),
                    Item::Run(r) => pubs.extend(r.pubs.iter().cloned()),
                    Item::Lagged => {
                        let (n, _) = outbox.take_lag();
                        tracing::error!(
                            dropped = n,
                            "the push dispatcher fell behind: firings were not pushed"
                        );
                        metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => "lagged").increment(n);
                    }
                    Item::Snapshot(_) | Item::Frame(_) => {}
                }
            }
            if pubs.is_empty() {
                continue;
            }
            let (push, fanout) = (self.clone(), fanout.clone());
            let done = tokio::task::spawn_blocking(move || {
                for p in pubs {
                    let game = p.topic.strip_prefix("game/").and_then(|t| t.strip_suffix("/triggers"));
                    let firing = serde_json::from_str::<serde_json::Value>(p.data());
                    if let (Some(game), Ok(firing)) = (game, firing)
                        && let Err(e) = push.dispatch(game, &teams(state(&fanout, game).as_ref()), &firing)
                    {
                        tracing::error!(error = %e, "cannot queue a push");
                    }
                }
            })
            .await;
            if let Err(e) = done {
                tracing::error!(error = %e, "the push dispatcher failed");
            }
        }
        fanout.unsubscribe(id);
    }
}
