//! Access control: who is asking ([`Principal`]), what their role and scopes allow, and the
//! per-client limits that are not queues. A leaf like `store`: ingest and api call it.
//!
//! # Layout
//! - [`scope`]: roles, scopes and the checks (`may_write`, `may_read`), pure.
//! - [`keys`]: API keys (hashed) and the append-only audit log in `data_dir/auth.redb`.
//! - [`jwt`]: subscriber JWTs (HS256 / RS256 / EdDSA from config).
//! - [`limits`]: backoff on wrong credentials per address, events/s per key, connections per
//!   address.
//!
//! Where credentials travel: the QUIC `hello` token (an API key with the publisher or admin
//! role, or a static `ingest.tokens` entry); on HTTP and WebSocket `Authorization: Bearer`
//! or, for browsers, a `token` query parameter (an API key or a JWT). No credential is the
//! anonymous principal: it reads `auth.public_topics` and nothing else.

pub mod jwt;
pub mod keys;
pub mod limits;
pub mod scope;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::config::AuthConfig;
use crate::metrics as m;
pub use keys::{AuditEntry, KeyError, KeyRecord, KeyStore, NewKey};
pub use scope::{Principal, Role};

/// Longest credential accepted on any transport (API keys are ~60 bytes; a JWT with 64 topic
/// patterns fits well within it).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("credential not accepted")]
    Unknown,
    #[error("credential longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("this key has the {0} role, which cannot publish")]
    NotPublisher(&'static str),
    #[error(transparent)]
    Jwt(#[from] jwt::JwtError),
}

impl Refused {
    /// The `opensports_auth_failures_total{reason}` label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Unknown => "unknown_credential",
            Refused::TooLong => "too_long",
            Refused::NotPublisher(_) => "wrong_role",
            Refused::Jwt(jwt::JwtError::Expired) => "jwt_expired",
            Refused::Jwt(jwt::JwtError::NotYet) => "jwt_not_yet_valid",
            Refused::Jwt(_) => "jwt_invalid",
        }
    }
}

/// Shared by ingest and the API.
#[derive(Debug)]
pub struct Auth {
    keys: KeyStore,
    jwt: jwt::JwtKeys,
    pub cfg: AuthConfig,
    /// `ingest.tokens`: static publisher credentials (every game).
    config_tokens: Vec<[u8; 32]>,
    /// Bumped on every revocation; sessions and connections watch it.
    revocations: watch::Sender<u64>,
    /// Wrong credentials per (source address, credential), for HTTP, WebSocket and QUIC.
    pub backoff: Mutex<limits::Backoff>,
    /// Events/s per publisher identity.
    buckets: DashMap<Arc<str>, Arc<Mutex<limits::Bucket>>>,
    /// WebSocket connections per source address.
    pub ws_slots: Arc<limits::AddrSlots>,
    /// Every key created or revoked here (the cluster shares them through JetStream KV).
    changes: tokio::sync::broadcast::Sender<KeyRecord>,
}

impl Auth {
    /// Opens `data_dir/auth.redb` and loads the JWT keys of `cfg`.
    pub fn open(
        cfg: &AuthConfig,
        data_dir: &std::path::Path,
        tokens: &[String],
    ) -> Result<Auth, AuthOpenError> {
        let keys = KeyStore::open(data_dir)?;
        let jwt = jwt::JwtKeys::load(cfg)?;
        Ok(Auth {
            keys,
            jwt,
            cfg: cfg.clone(),
            config_tokens: tokens.iter().map(|t| digest(t)).collect(),
            revocations: watch::channel(0).0,
            backoff: Mutex::new(limits::Backoff::default()),
            buckets: DashMap::new(),
            ws_slots: Arc::new(limits::AddrSlots::default()),
            changes: tokio::sync::broadcast::channel(1024).0,
        })
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The QUIC hello's token: a publisher or admin key, or a static token.
    pub fn publisher(&self, token: &str) -> Result<Principal, Refused> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refused::TooLong);
        }
        if let Some(rec) = self.keys.verify(token) {
            return match rec.role {
                Role::Subscriber => Err(Refused::NotPublisher("subscriber")),
                _ => Ok(principal(&rec)),
            };
        }
        let d = digest(token);
        // Every configured token is compared, each without an early exit.
        let hit = self.config_tokens.iter().fold(false, |hit, t| hit | ct_eq(t, &d));
        if hit {
            // Each static token is its own identity (quota, rate bucket, game ownership),
            // named by the start of its digest: stable across restarts, reveals nothing.
            let id = format!("token-{}", hex8(&d));
            return Ok(Principal {
                id: id.into(),
                role: Some(Role::Publisher),
                scopes: Arc::new(["*".to_string()]),
                expires: None,
                key_id: None,
            });
        }
        Err(Refused::Unknown)
    }

    /// An HTTP or WebSocket bearer credential: an API key (any role) or a subscriber JWT.
    pub fn bearer(&self, token: &str) -> Result<Principal, Refused> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refused::TooLong);
        }
        if let Some(rec) = self.keys.verify(token) {
            return Ok(principal(&rec));
        }
        if jwt::looks_like_jwt(token) {
            return Ok(self.jwt.verify(token, unix_now())?);
        }
        Err(Refused::Unknown)
    }

    /// Records a refused credential `token` from `ip` (metric and backoff). Returns how long
    /// the (address, credential) pair must now wait, if it is backing off.
    pub fn failed(&self, ip: Option<IpAddr>, token: &str, why: &Refused) -> Option<std::time::Duration> {
        metrics::counter!(m::AUTH_FAILURES_TOTAL, "reason" => why.reason()).increment(1);
        let ip = ip?;
        let (tag, now) = (credential_tag(token), Instant::now());
        let mut backoff = self.backoff.lock();
        backoff.failed(ip, tag, now);
        backoff.check(ip, tag, now).err()
    }

    /// A credential `token` from `ip` was accepted: its pair starts afresh.
    pub fn succeeded(&self, ip: Option<IpAddr>, token: &str) {
        let Some(ip) = ip else { return };
        // Every authenticated request comes here: hash the credential only when some pair
        // is backing off at all.
        let mut backoff = self.backoff.lock();
        if !backoff.is_empty() {
            backoff.succeeded(ip, credential_tag(token));
        }
    }

    /// Creates a key (audited as `actor`).
    pub fn create_key(
        &self,
        new: NewKey,
        actor: &str,
        remote: Option<String>,
    ) -> Result<(String, KeyRecord), KeyError> {
        let created = self.keys.create(new, actor, remote)?;
        metrics::counter!(m::AUDIT_ENTRIES_TOTAL).increment(1);
        let _ = self.changes.send(created.1.clone());
        Ok(created)
    }

    /// Sets an operator setting together with its audit entry, in one commit.
    pub fn put_setting(&self, name: &str, json: &[u8], e: AuditEntry) -> Result<(), KeyError> {
        self.keys.put_setting(name, json, e)?;
        metrics::counter!(m::AUDIT_ENTRIES_TOTAL).increment(1);
        Ok(())
    }

    /// Revokes a key; its open connections and sessions are closed within a second.
    pub fn revoke_key(&self, id: &str, actor: &str, remote: Option<String>) -> Result<KeyRecord, KeyError> {
        let rec = self.keys.revoke(id, actor, remote)?;
        metrics::counter!(m::AUDIT_ENTRIES_TOTAL).increment(1);
        self.revocations.send_modify(|n| *n += 1);
        let _ = self.changes.send(rec.clone());
        Ok(rec)
    }

    /// Keys created or revoked on this node from now on.
    pub fn key_changes(&self) -> tokio::sync::broadcast::Receiver<KeyRecord> {
        self.changes.subscribe()
    }

    /// A key record from another cluster node (see [`KeyStore::import`]); a revocation closes
    /// the key's connections and sessions here too.
    pub fn import_key(&self, rec: &KeyRecord, from_node: &str) -> Result<bool, KeyError> {
        let changed = self.keys.import(rec, from_node)?;
        if changed {
            metrics::counter!(m::AUDIT_ENTRIES_TOTAL).increment(1);
            if rec.revoked_ms.is_some() {
                self.revocations.send_modify(|n| *n += 1);
            }
        }
        Ok(changed)
    }

    /// Whether the key behind `p` (if any) was revoked since it was checked.
    pub fn revoked(&self, p: &Principal) -> bool {
        p.key_id.as_deref().is_some_and(|id| self.keys.is_revoked(id))
    }

    /// Changes whenever a key is revoked.
    pub fn revocations(&self) -> watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// The events/s bucket shared by every connection of `p`'s identity.
    pub fn bucket(&self, p: &Principal) -> Arc<Mutex<limits::Bucket>> {
        self.buckets
            .entry(p.id.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(limits::Bucket::new(self.cfg.max_events_per_sec_per_key, Instant::now())))
            })
            .clone()
    }

    /// Appends to the audit log; a failure is logged, never fatal to the action it records.
    pub fn audit(&self, e: AuditEntry) {
        match self.keys.audit(e) {
            Ok(()) => metrics::counter!(m::AUDIT_ENTRIES_TOTAL).increment(1),
            Err(err) => tracing::error!(error = %err, "cannot write the audit log"),
        }
    }
}

/// Why [`Auth::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthOpenError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("config: {0}")]
    Jwt(#[from] jwt::JwtConfigError),
}

fn principal(rec: &KeyRecord) -> Principal {
    Principal {
        id: Arc::from(rec.id.as_str()),
        role: Some(rec.role),
        scopes: rec.scopes.clone().into(),
        expires: None,
        key_id: Some(Arc::from(rec.id.as_str())),
    }
}

/// Which credential `token` is, for the backoff: an API key's id, else its digest's start.
pub fn credential_tag(token: &str) -> limits::CredentialTag {
    let named = token.strip_prefix(keys::KEY_PREFIX).and_then(|k| k.split('_').next());
    let d = match named {
        Some(id) => digest(&format!("{}{id}", keys::KEY_PREFIX)),
        None => digest(token),
    };
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&d[..8]);
    tag
}

/// The first 4 bytes of a digest in hex: a name for a static token.
fn hex8(d: &[u8; 32]) -> String {
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn digest(s: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// Digests (fixed length) compared without an early exit.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
