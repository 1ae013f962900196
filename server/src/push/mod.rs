//! Push notifications (PROTOCOL.md §3.4), an adapter over the triggers: the moments a push is
//! sent for are the firings on `game/{id}/triggers` (the rules live there, once), read by an
//! internal subscriber, matched against the registered devices, and recorded in a durable
//! outbox before anything is sent.
//!
//! - [`device`]: what a device is, how it is checked, its quiet hours.
//! - [`dispatch`]: firings → outbox entries (text in the device's language).
//! - [`sender`]: outbox → provider, with exponential backoff and jitter, `Retry-After`, a
//!   dead-letter state after `max_tries`, quiet hours and a per-game rate limit (held pushes
//!   are superseded by a newer one of the same collapse key), and a device removed when its
//!   provider says it is gone.
//! - [`provider`] and the protocols: [`fcm`] (HTTP v1, OAuth 2.0 service account), [`apns`]
//!   (HTTP/2, ES256 provider tokens), [`webpush`] (RFC 8030 / 8291 / 8292), [`webhook`]
//!   (HMAC-signed JSON), over [`http`], with the tokens of [`jws`].
//! - [`Push`]: the device registry and the outbox, in `data_dir/push.redb`.
//!
//! Exactly once as the user sees it: an entry's key is `device|game|rule|seq` (a firing of one
//! rule at one event, for one device), written once whatever replays or restarts do (recovery
//! replays the log's firings into the dispatcher, so one lost to a crash is queued then), and
//! the key travels to the provider (`Idempotency-Key`, FCM `data.push_id`, the collapse key)
//! so an attempt accepted just before a crash and sent again after it replaces itself.
//!
//! In a cluster (`cluster/push.rs`) devices are shared through a JetStream KV bucket, every node
//! queues the same entries from the same firings, and before sending one a node claims its
//! firing ([`Claims`]): the first node to claim a firing sends all its pushes; the others mark
//! theirs `superseded` (reason `sent by another node`).

pub mod apns;
pub mod device;
pub mod dispatch;
pub mod fcm;
pub mod http;
pub mod jws;
pub mod provider;
pub mod sender;
pub mod webhook;
pub mod webpush;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use device::{Device, NewDevice};
pub use provider::{Message, Outcome, Providers};

use crate::metrics as m;
use crate::store::now_ms;

/// Device id → [`Device`] JSON.
const DEVICES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("devices");
/// `device|game|rule|seq` → [`Entry`] JSON.
const OUTBOX: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("outbox");

/// File name inside the data dir.
pub const FILE_NAME: &str = "push.redb";
/// `push.redb`'s page cache.
const CACHE_BYTES: usize = 32 << 20;

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
    /// Pushes one device gets for one game in a minute; more wait, and only the newest of
    /// each collapse key is then sent. Default 6.
    pub max_per_game_per_minute: usize,
    /// How long a provider keeps trying to reach an offline device (FCM `ttl`, APNs
    /// `apns-expiration`, Web Push `TTL`), s. Default 3600.
    pub ttl_secs: u64,
    /// Extra trust roots (PEM) for the providers' TLS, for staging and tests. Default none.
    pub ca_file: Option<PathBuf>,
    /// Let devices' URLs reach loopback and private addresses (tests, a backend on the same
    /// network). Default false.
    pub allow_private_endpoints: bool,
    pub fcm: FcmConfig,
    pub apns: ApnsConfig,
    pub webpush: WebPushConfig,
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
            max_per_game_per_minute: 6,
            ttl_secs: 3600,
            ca_file: None,
            allow_private_endpoints: false,
            fcm: FcmConfig::default(),
            apns: ApnsConfig::default(),
            webpush: WebPushConfig::default(),
        }
    }
}

/// `[push.fcm]`: Firebase Cloud Messaging, HTTP v1.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FcmConfig {
    /// The Firebase project's service-account JSON; none: FCM devices are refused.
    pub service_account_file: Option<PathBuf>,
    /// Default `https://fcm.googleapis.com`.
    pub endpoint: String,
    /// The OAuth token endpoint; empty: the service account's `token_uri`.
    pub token_uri: String,
}

impl Default for FcmConfig {
    fn default() -> Self {
        FcmConfig {
            service_account_file: None,
            endpoint: "https://fcm.googleapis.com".into(),
            token_uri: String::new(),
        }
    }
}

/// `[push.apns]`: Apple Push Notification service, token-based.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApnsConfig {
    /// The `.p8` signing key from the Apple developer account; none: APNs devices are refused.
    pub key_file: Option<PathBuf>,
    /// The key's id (10 characters).
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// Default `https://api.push.apple.com` (`https://api.sandbox.push.apple.com` for
    /// development builds).
    pub endpoint: String,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        ApnsConfig {
            key_file: None,
            key_id: String::new(),
            team_id: String::new(),
            topic: String::new(),
            endpoint: "https://api.push.apple.com".into(),
        }
    }
}

/// `[push.webpush]`: Web Push with VAPID.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebPushConfig {
    /// A P-256 key, PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`);
    /// none: Web Push devices are refused.
    pub vapid_key_file: Option<PathBuf>,
    /// A contact for the push services (`mailto:` or `https:`).
    pub subject: String,
}

impl Default for WebPushConfig {
    fn default() -> Self {
        WebPushConfig { vapid_key_file: None, subject: "mailto:push@localhost".into() }
    }
}

/// One push in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub device: String,
    /// The push (the webhook's JSON; the other providers' messages are made from it).
    pub body: serde_json::Value,
    pub state: State,
    pub tries: u32,
    /// When the next attempt is due (queued), or when it ended, ms since the epoch.
    pub at_ms: i64,
    /// Why the last attempt failed, or why the push waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Held for quiet hours or the rate limit: a newer push of its collapse key supersedes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl Entry {
    fn collapse(&self) -> String {
        format!("{}|{}", self.device, self.body["collapse_key"].as_str().unwrap_or(""))
    }

    fn seq(&self) -> u64 {
        self.body["seq"].as_u64().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Queued,
    Sent,
    Dead,
    /// Held, then replaced by a newer push of the same collapse key: never sent.
    Superseded,
}

/// Claims of a cluster's nodes on firings (implemented by the cluster; push never names it).
pub trait Claims: Send + Sync + std::fmt::Debug {
    /// Claims the pushes of one firing (`game|rule|seq`) for this node: true when this node
    /// sends them (it claimed first, now or before).
    fn claim(&self, firing: &str) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'static>>;
}

/// A change to the device registry, for a cluster to share.
#[derive(Debug, Clone)]
pub enum Change {
    Put(Box<Device>),
    Removed(String),
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

/// The queued entries, in memory: what is due when, and the newest seq of each device's
/// collapse key.
#[derive(Debug, Default)]
struct Index {
    due: BTreeSet<(i64, String)>,
    newest: HashMap<String, u64>,
}

impl Index {
    fn add(&mut self, e: &Entry) {
        if e.state == State::Queued {
            self.queue(e.at_ms, e.key.clone(), e.collapse(), e.seq());
        }
    }

    fn queue(&mut self, at_ms: i64, key: String, collapse: String, seq: u64) {
        self.due.insert((at_ms, key));
        let n = self.newest.entry(collapse).or_default();
        *n = (*n).max(seq);
    }
}

/// The registry, the outbox and the sender's wake-up.
#[derive(Debug)]
pub struct Push {
    db: Database,
    cfg: PushConfig,
    providers: Providers,
    devices: RwLock<HashMap<String, Device>>,
    owned: Mutex<HashMap<String, usize>>,
    index: Mutex<Index>,
    wake: Notify,
    changes: tokio::sync::broadcast::Sender<Change>,
    cluster: OnceLock<Arc<dyn Claims>>,
    /// Firings claimed (true) or not, as the cluster answered.
    claimed: Mutex<HashMap<String, bool>>,
}

impl Push {
    pub fn open(data_dir: &Path, cfg: PushConfig) -> Result<Arc<Push>, String> {
        let providers = Providers::new(&cfg)?;
        std::fs::create_dir_all(data_dir).map_err(db_err)?;
        // A small page cache: the outbox is written once and read once per push.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(data_dir.join(FILE_NAME))
            .map_err(db_err)?;
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(DEVICES).map_err(db_err)?;
        w.open_table(OUTBOX).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        let (mut devices, mut owned) = (HashMap::new(), HashMap::<String, usize>::new());
        {
            let r = db.begin_read().map_err(db_err)?;
            for row in r.open_table(DEVICES).map_err(db_err)?.iter().map_err(db_err)? {
                let (_, v) = row.map_err(db_err)?;
                let d: Device = serde_json::from_slice(v.value()).map_err(db_err)?;
                *owned.entry(d.owner.clone()).or_default() += 1;
                devices.insert(d.id.clone(), d);
            }
        }
        metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
        let push = Push {
            db,
            cfg,
            providers,
            devices: RwLock::new(devices),
            owned: Mutex::new(owned),
            index: Mutex::default(),
            wake: Notify::new(),
            changes: tokio::sync::broadcast::channel(1024).0,
            cluster: OnceLock::new(),
            claimed: Mutex::default(),
        };
        let mut index = Index::default();
        push.scan(|e| {
            index.add(&e);
            true
        })?;
        metrics::gauge!(m::PUSH_QUEUED).set(index.due.len() as f64);
        *push.index.lock() = index;
        Ok(Arc::new(push))
    }

    /// How long sent pushes are kept (the dedupe window), s.
    pub fn keep_secs(&self) -> u64 {
        self.cfg.keep_secs
    }

    /// The VAPID public key browsers subscribe with, when Web Push is on.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.providers.vapid_public_key()
    }

    /// Registers a device for `owner`, stored before it is answered. `since`: the last event
    /// now of each game it follows that is under way (it is pushed what comes after it).
    pub fn register(
        &self,
        owner: &str,
        new: NewDevice,
        since: std::collections::BTreeMap<String, u64>,
    ) -> Result<Device, DeviceError> {
        new.check().map_err(DeviceError::Invalid)?;
        if let Some(off) = self.providers.unavailable(&new.provider) {
            return Err(DeviceError::Invalid(off));
        }
        let mut devices = self.devices.write();
        let mut owned = self.owned.lock();
        if owned.get(owner).copied().unwrap_or(0) >= self.cfg.max_devices_per_credential {
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
            token: new.token,
            subscription: new.subscription,
            locale: new.locale.unwrap_or_else(|| "en".into()),
            time_zone: new.time_zone.unwrap_or_else(|| "UTC".into()),
            quiet_hours: new.quiet_hours,
            since,
            games: new.games,
            teams: new.teams,
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
        *owned.entry(owner.to_string()).or_default() += 1;
        metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
        let _ = self.changes.send(Change::Put(Box::new(device.clone())));
        Ok(device)
    }

    /// Changes to the registry made on this node (registrations, removals), from now on.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Joins a cluster: pushes are sent for the firings this node claims.
    pub fn join(&self, claims: Arc<dyn Claims>) {
        let _ = self.cluster.set(claims);
    }

    /// Applies another node's change (checked there; not shared again).
    pub fn import(&self, change: Change) -> Result<(), String> {
        match change {
            Change::Put(d) => {
                let mut devices = self.devices.write();
                if devices.get(&d.id) == Some(&*d) {
                    return Ok(());
                }
                let w = self.db.begin_write().map_err(db_err)?;
                w.open_table(DEVICES)
                    .map_err(db_err)?
                    .insert(d.id.as_str(), serde_json::to_vec(&d).map_err(db_err)?.as_slice())
                    .map_err(db_err)?;
                w.commit().map_err(db_err)?;
                let owner = d.owner.clone();
                if devices.insert(d.id.clone(), *d).is_none() {
                    *self.owned.lock().entry(owner).or_default() += 1;
                }
                metrics::gauge!(m::PUSH_DEVICES).set(devices.len() as f64);
                Ok(())
            }
            Change::Removed(id) => self.forget(&id, None).map(|_| ()),
        }
    }

    /// Removes a device (`owner` none: any owner's); the device, if it was removed.
    pub fn remove(&self, id: &str, owner: Option<&str>) -> Result<Option<Device>, String> {
        let removed = self.forget(id, owner)?;
        if removed.is_some() {
            let _ = self.changes.send(Change::Removed(id.to_string()));
        }
        Ok(removed)
    }

    fn forget(&self, id: &str, owner: Option<&str>) -> Result<Option<Device>, String> {
        let mut devices = self.devices.write();
        if devices.get(id).is_none_or(|d| owner.is_some_and(|o| d.owner != o)) {
            return Ok(None);
        }
        let w = self.db.begin_write().map_err(db_err)?;
        w.open_table(DEVICES).map_err(db_err)?.remove(id).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        let removed = devices.remove(id);
        if let Some(d) = &removed
            && let Some(n) = self.owned.lock().get_mut(&d.owner)
        {
            *n = n.saturating_sub(1);
        }
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

    /// The entries of `keys` (those still there).
    fn load(&self, keys: &[String]) -> Result<Vec<Entry>, String> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(OUTBOX).map_err(db_err)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) = t.get(k.as_str()).map_err(db_err)? {
                out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
            }
        }
        Ok(out)
    }

    /// Writes `entries` in one commit.
    fn save(&self, entries: &[Entry]) -> Result<(), String> {
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = w.open_table(OUTBOX).map_err(db_err)?;
            for e in entries {
                t.insert(e.key.as_str(), serde_json::to_vec(e).map_err(db_err)?.as_slice())
                    .map_err(db_err)?;
            }
        }
        w.commit().map_err(db_err)
    }

    /// Drops sent, dead and superseded entries older than `keep_secs`.
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
}

#[cfg(test)]
mod tests;
