//! Push notifications (PROTOCOL.md §3.4), an adapter over the triggers: the moments a push is
//! sent for are the firings on `game/{id}/triggers` (the rules live there, once), read by an
//! internal subscriber, matched against the registered devices, and recorded in a durable
//! outbox before anything is sent.
//!
//! - [`device`]: what a device is and how it is checked.
//! - [`webhook`]: the webhook provider (signed JSON `POST`s to an app backend).
//! - [`Push`]: the device registry and the outbox, in `data_dir/push.redb`, and the two tasks:
//!   the dispatcher (firings → outbox entries) and the sender (outbox → provider, with
//!   exponential backoff and jitter, `Retry-After`, a dead-letter state after `max_tries`, and a
//!   device removed when its provider says it is gone).
//!
//! Exactly once as the user sees it: an entry's key is `device|game|rule|seq` (a firing of one
//! rule at one event, for one device), written once whatever replays or restarts do, and the
//! key travels as `Idempotency-Key` on every attempt so the receiver can drop a retry of a push
//! it already took (an attempt accepted just before a crash is sent again after it).
//!
//! Not built yet: the FCM, APNs and Web Push protocols, quiet hours, per-device rate limits,
//! localized templates beyond the rule's text, and the cluster's send-once rule.

pub mod device;
pub mod webhook;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

pub use device::{Device, NewDevice};

use crate::fanout::Fanout;
use crate::fanout::outbox::{Item, Outbox};
use crate::metrics as m;
use crate::store::now_ms;

/// Device id → [`Device`] JSON.
const DEVICES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("devices");
/// `device|game|rule|seq` → [`Entry`] JSON.
const OUTBOX: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("outbox");

/// File name inside the data dir.
pub const FILE_NAME: &str = "push.redb";

/// `[push]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Devices one credential may register. Default 16.
    pub max_devices_per_credential: usize,
    /// Devices in all. Default 100000.
    pub max_devices: usize,
    /// The webhook provider's HMAC-SHA256 key; empty: webhook devices are refused. Default
    /// empty.
    pub webhook_secret: String,
    /// Attempts before a push is dead-lettered. Default 8.
    pub max_tries: u32,
    /// First retry after this, doubling per attempt (with up to 50% jitter), ms. Default 1000.
    pub backoff_ms: u64,
    /// Longest wait between attempts (and the longest `Retry-After` honoured), ms. Default
    /// 300000.
    pub max_backoff_ms: u64,
    /// One attempt's time limit, ms. Default 5000.
    pub timeout_ms: u64,
    /// Attempts in flight at once. Default 64.
    pub concurrency: usize,
    /// Sent and dead-lettered entries are kept this long (the dedupe window), s. Default 86400.
    pub keep_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            max_devices_per_credential: 16,
            max_devices: 100_000,
            webhook_secret: String::new(),
            max_tries: 8,
            backoff_ms: 1000,
            max_backoff_ms: 300_000,
            timeout_ms: 5000,
            concurrency: 64,
            keep_secs: 86_400,
        }
    }
}

/// One push in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub device: String,
    /// The JSON sent.
    pub body: serde_json::Value,
    pub state: State,
    pub tries: u32,
    /// When the next attempt is due (queued), or when it ended, ms since the epoch.
    pub at_ms: i64,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Sent,
    Dead,
}

/// Why a device was not registered.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Full(String),
    #[error("push store: {0}")]
    Store(String),
}

fn db_err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The registry, the outbox and the sender's wake-up.
#[derive(Debug)]
pub struct Push {
    db: Database,
    cfg: PushConfig,
    devices: RwLock<HashMap<String, Device>>,
    wake: Notify,
}

impl Push {
    pub fn open(data_dir: &Path, cfg: PushConfig) -> Result<Arc<Push>, String> {
        std::fs::create_dir_all(data_dir).map_err(db_err)?;
        let db = Database::create(data_dir.join(FILE_NAME)).map_err(db_err)?;
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(DEVICES).map_err(db_err)?;
        w.open_table(OUTBOX).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        let mut devices = HashMap::new();
        {
            let r = db.begin_read().map_err(db_err)?;
            for row in r.open_table(DEVICES).map_err(db_err)?.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let d: Device = serde_json::from_slice(v.value()).map_err(db_err)?;
                devices.insert(d.id.clone(), d);
            }
        }
        metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
        Ok(Arc::new(Push { db, cfg, devices: RwLock::new(devices), wake: Notify::new() }))
    }

    /// Registers a device for `owner`, stored before it is answered.
    pub fn register(&self, owner: &str, new: NewDevice) -> Result<Device, DeviceError> {
        new.check().map_err(DeviceError::Invalid)?;
        if new.provider == "webhook" && self.cfg.webhook_secret.is_empty() {
            return Err(DeviceError::Invalid(
                "webhook pushes are off: push.webhook_secret is not set".into(),
            ));
        }
        let mut devices = self.devices.write();
        let owned = devices.values().filter(|d| d.owner == owner).count();
        if owned >= self.cfg.max_devices_per_credential {
            return Err(DeviceError::Full(format!(
                "at most {} devices per credential (push.max_devices_per_credential)",
                self.cfg.max_devices_per_credential
            )));
        }
        if devices.len() >= self.cfg.max_devices {
            return Err(DeviceError::Full(format!(
                "at most {} devices (push.max_devices)",
                self.cfg.max_devices
            )));
        }
        let mut id = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| DeviceError::Store("no randomness".into()))?;
        let device = Device {
            id: format!("dev_{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            owner: owner.to_string(),
            provider: new.provider,
            url: new.url,
            locale: new.locale.unwrap_or_else(|| "en".into()),
            games: new.games,
            kinds: new.kinds,
            created_ms: now_ms(),
        };
        let json = serde_json::to_vec(&device).map_err(|e| DeviceError::Store(e.to_string()))?;
        let put = || -> Result<(), String> {
            let w = self.db.begin_write().map_err(db_err)?;
            w.open_table(DEVICES)
                .map_err(db_err)?
                .insert(device.id.as_str(), json.as_slice())
                .map_err(db_err)?;
            w.commit().map_err(db_err)
        };
        put().map_err(DeviceError::Store)?;
        devices.insert(device.id.clone(), device.clone());
        metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
        Ok(device)
    }

    /// Removes a device (`owner` none: any owner's); the device, if it was removed.
    pub fn remove(&self, id: &str, owner: Option<&str>) -> Result<Option<Device>, String> {
        let mut devices = self.devices.write();
        if devices.get(id).is_none_or(|d| owner.is_some_and(|o| d.owner != o)) {
            return Ok(None);
        }
        let w = self.db.begin_write().map_err(db_err)?;
        w.open_table(DEVICES).map_err(db_err)?.remove(id).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        let removed = devices.remove(id);
        metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
        Ok(removed)
    }

    /// The devices of `owner` (none: all), oldest first.
    pub fn devices(&self, owner: Option<&str>) -> Vec<Device> {
        let mut v: Vec<Device> =
            self.devices.read().values().filter(|d| owner.is_none_or(|o| d.owner == o)).cloned().collect();
        v.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        v
    }

    /// Outbox entries in `state` (none: all), at most `limit`.
    pub fn entries(&self, state: Option<State>, limit: usize) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        self.scan(|e| {
            if state.is_none_or(|s| s == e.state) {
                out.push(e);
            }
            out.len() < limit
        })?;
        Ok(out)
    }

    /// Hands every outbox entry to `f`, in key order, until it returns false.
    fn scan(&self, mut f: impl FnMut(Entry) -> bool) -> Result<(), String> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(OUTBOX).map_err(db_err)?;
        for row in t.iter().map_err(db_err)? {
            let (_, v) = row.map_err(db_err)?;
            if !f(serde_json::from_slice(v.value()).map_err(db_err)?) {
                break;
            }
        }
        Ok(())
    }

    /// A firing on `game/{game}/triggers`: one queued entry per device that wants it, written
    /// once (an entry already there, sent or not, is left as it is). How many were new.
    pub fn dispatch(&self, game: &str, firing: &serde_json::Value) -> Result<usize, String> {
        let (Some(rule), Some(seq)) = (firing["rule"].as_str(), firing["seq"].as_u64()) else {
            return Ok(0);
        };
        let targets: Vec<Device> =
            self.devices.read().values().filter(|d| d.wants(game, rule)).cloned().collect();
        if targets.is_empty() {
            return Ok(0);
        }
        let manual = firing["manual"].as_bool().unwrap_or(false);
        let now = now_ms();
        let w = self.db.begin_write().map_err(db_err)?;
        let mut new = 0;
        {
            let mut t = w.open_table(OUTBOX).map_err(db_err)?;
            for d in targets {
                // A manual firing has no event of its own: its time tells it apart.
                let key = match manual {
                    true => format!("{}|{game}|{rule}|{seq}|manual-{}", d.id, firing["ts"]),
                    false => format!("{}|{game}|{rule}|{seq}", d.id),
                };
                if t.get(key.as_str()).map_err(db_err)?.is_some() {
                    continue;
                }
                let body = serde_json::json!({
                    "id": key, "device": d.id, "game": game, "rule": rule, "seq": seq, "ts": firing["ts"],
                    "text": firing["text"], "facts": firing["facts"], "locale": d.locale,
                    "collapse_key": format!("{game}/{rule}"),
                });
                let e = Entry {
                    key: key.clone(),
                    device: d.id,
                    body,
                    state: State::Queued,
                    tries: 0,
                    at_ms: now,
                    reason: None,
                };
                t.insert(key.as_str(), serde_json::to_vec(&e).map_err(db_err)?.as_slice()).map_err(db_err)?;
                new += 1;
            }
        }
        w.commit().map_err(db_err)?;
        if new > 0 {
            metrics::counter!(m::PUSH_QUEUED_TOTAL).increment(new as u64);
            self.wake.notify_one();
        }
        Ok(new)
    }

    /// Queued entries due by `now` (at most `limit`), and when the first one not yet due is,
    /// in one pass.
    fn queued(&self, now: i64, limit: usize) -> Result<(Vec<Entry>, Option<i64>), String> {
        let (mut due, mut next) = (Vec::new(), None::<i64>);
        self.scan(|e| {
            if e.state == State::Queued {
                if e.at_ms <= now && due.len() < limit {
                    due.push(e);
                } else {
                    next = Some(next.map_or(e.at_ms, |n| n.min(e.at_ms)));
                }
            }
            true
        })?;
        Ok((due, next))
    }

    fn save(&self, e: &Entry) -> Result<(), String> {
        let w = self.db.begin_write().map_err(db_err)?;
        w.open_table(OUTBOX)
            .map_err(db_err)?
            .insert(e.key.as_str(), serde_json::to_vec(e).map_err(db_err)?.as_slice())
            .map_err(db_err)?;
        w.commit().map_err(db_err)
    }

    /// Drops sent and dead entries older than `keep_secs`.
    fn prune(&self) -> Result<(), String> {
        let before = now_ms() - i64::try_from(self.cfg.keep_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut old = Vec::new();
        self.scan(|e| {
            if e.state != State::Queued && e.at_ms < before {
                old.push(e.key);
            }
            true
        })?;
        if old.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = w.open_table(OUTBOX).map_err(db_err)?;
            for k in &old {
                t.remove(k.as_str()).map_err(db_err)?;
            }
        }
        w.commit().map_err(db_err)
    }

    /// The wait before attempt `tries + 1`: `backoff_ms · 2^tries`, capped, plus up to 50%
    /// jitter; a `Retry-After` instead when the provider gave one (capped the same).
    fn backoff(&self, tries: u32, retry_after_secs: Option<u64>) -> i64 {
        let cap = self.cfg.max_backoff_ms;
        let ms = match retry_after_secs {
            Some(s) => s.saturating_mul(1000).min(cap),
            None => {
                let base = self.cfg.backoff_ms.saturating_mul(1u64 << tries.min(30)).min(cap);
                let mut r = [0u8; 8];
                let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
                base + u64::from_le_bytes(r) % (base / 2 + 1)
            }
        };
        i64::try_from(ms).unwrap_or(i64::MAX)
    }

    /// One attempt at `e`, its outcome recorded.
    async fn attempt(self: Arc<Self>, mut e: Entry) {
        let Some(device) = self.devices.read().get(&e.device).cloned() else {
            e.state = State::Dead;
            e.reason = Some("device removed".into());
            e.at_ms = now_ms();
            metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
            return self.record(&e);
        };
        let body = serde_json::to_vec(&e.body).unwrap_or_default();
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let outcome =
            webhook::send(&device.url, body, &e.key, self.cfg.webhook_secret.as_bytes(), timeout).await;
        e.tries += 1;
        e.at_ms = now_ms();
        match outcome {
            webhook::Outcome::Accepted => {
                e.state = State::Sent;
                e.reason = None;
                metrics::counter!(m::PUSH_SENT_TOTAL).increment(1);
            }
            webhook::Outcome::Gone => {
                e.state = State::Dead;
                e.reason = Some("gone: device removed".into());
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => "gone").increment(1);
                metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
                if let Err(err) = self.remove(&device.id, None) {
                    tracing::error!(error = %err, "cannot remove a gone device");
                }
            }
            webhook::Outcome::Rejected(why) => {
                e.state = State::Dead;
                e.reason = Some(why);
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => "rejected").increment(1);
                metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
            }
            webhook::Outcome::Retry { reason, after_secs } => {
                let label = if after_secs.is_some() { "throttled" } else { "unavailable" };
                metrics::counter!(m::PUSH_FAILED_TOTAL, "reason" => label).increment(1);
                e.reason = Some(reason);
                if e.tries >= self.cfg.max_tries {
                    e.state = State::Dead;
                    metrics::counter!(m::PUSH_DEAD_TOTAL).increment(1);
                } else {
                    e.at_ms += self.backoff(e.tries - 1, after_secs);
                }
            }
        }
        self.record(&e);
    }

    fn record(&self, e: &Entry) {
        if let Err(err) = self.save(e) {
            tracing::error!(error = %err, "cannot record a push attempt: it will be tried again");
        }
    }

    /// The sender: attempts what is due, at most `concurrency` at once, until `shutdown`.
    pub async fn run_sender(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_prune = std::time::Instant::now();
        loop {
            let now = now_ms();
            let (due, next) = match self.queued(now, self.cfg.concurrency.max(1)) {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the push outbox");
                    (Vec::new(), None)
                }
            };
            if !due.is_empty() {
                let attempts: Vec<_> =
                    due.into_iter().map(|e| tokio::spawn(self.clone().attempt(e))).collect();
                for a in attempts {
                    let _ = a.await;
                }
                continue;
            }
            if last_prune.elapsed() > Duration::from_secs(60) {
                last_prune = std::time::Instant::now();
                if let Err(e) = self.prune() {
                    tracing::warn!(error = %e, "cannot prune the push outbox");
                }
            }
            let wait = match next {
                Some(at) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0).clamp(1, 1000)),
                None => Duration::from_secs(1),
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The dispatcher: an internal subscriber of `game/+/triggers` (live firings only: a
    /// topic's snapshot on subscribing is a moment already past).
    pub async fn run_dispatcher(self: Arc<Self>, fanout: Arc<Fanout>, mut shutdown: watch::Receiver<bool>) {
        let outbox = Outbox::bounded(fanout.config().queue_len, fanout.config().queue_bytes);
        let Ok(pattern) = opensports_proto::topic::Pattern::parse("game/+/triggers") else { return };
        let id = fanout.subscribe(&outbox, pattern, opensports_proto::ws::Mode::All, &Default::default());
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
            let push = self.clone();
            let done = tokio::task::spawn_blocking(move || {
                for p in pubs {
                    let game = p.topic.strip_prefix("game/").and_then(|t| t.strip_suffix("/triggers"));
                    let firing = serde_json::from_str::<serde_json::Value>(p.data());
                    if let (Some(game), Ok(firing)) = (game, firing)
                        && let Err(e) = push.dispatch(game, &firing)
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

#[cfg(test)]
mod tests;
