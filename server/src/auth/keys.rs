//! API keys and the audit log: one redb file, `data_dir/auth.redb`, apart from the event log
//! (keys work with `store.enabled = false`, and the offline `opensports keys` command opens
//! only this file).
//!
//! A key is `osk_{id}_{secret}`: a 12-hex-digit id (public: lists, audit and logs name it) and
//! 32 random bytes (base64url). Only the SHA-256 digest of the whole key is stored; checks
//! compare fixed-length digests without an early exit. The key itself is shown once, when it
//! is created. Keys are cached in memory (every check is a map look-up); every change is
//! written to the file first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::scope::{Role, valid_game_pattern};

/// key id → [`KeyRecord`] as JSON.
const KEYS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("keys");
/// Entry number → [`AuditEntry`] as JSON. Append-only: nothing deletes or rewrites an entry.
const AUDIT: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("audit");
/// Setting name → JSON: what operators change through the admin API and a restart must keep
/// (the trigger rules' edits). Each change is written with its audit entry, in one commit.
const SETTINGS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("settings");

/// File name inside the data dir.
pub const FILE_NAME: &str = "auth.redb";
/// Prefix of every API key.
pub const KEY_PREFIX: &str = "osk_";

/// One key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    /// A label for people ("venue-msg", "graphics-partner").
    pub name: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub created_ms: i64,
    /// Who created it (a key id, or `cli`).
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// SHA-256 of the whole key, hex.
    pub digest: String,
}

/// One audit entry: who did what, when, and the state before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(default)]
    pub id: u64,
    pub at_ms: i64,
    /// Key id (or `cli`, `jwt:{sub}`).
    pub actor: String,
    /// `key.create`, `key.revoke`, `plugin.replace`, `model.activate`, `model.shadow`,
    /// `backup`, `export`.
    pub action: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub before: serde_json::Value,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub after: serde_json::Value,
    /// Source address of the request, when it came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the key file {path} is in use by another process (is a server running on this data dir? \
         use the admin API: POST /v1/keys)"
    )]
    Locked { path: PathBuf },
    #[error("key file {path}: {source}")]
    Open { path: PathBuf, source: redb::DatabaseError },
    #[error("key file: {0}")]
    Db(#[from] redb::Error),
    #[error("key file: bad record: {0}")]
    Record(#[from] serde_json::Error),
    #[error("no key {0:?}")]
    NoSuchKey(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot generate a random key")]
    Random,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for KeyError {
            fn from(e: $t) -> KeyError {
                KeyError::Db(e.into())
            }
        }
    )*};
}
db_err!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// What [`KeyStore::create`] needs.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub scopes: Vec<String>,
}

impl NewKey {
    /// Scopes must parse for the role: game-id patterns for publishers, topic patterns for
    /// subscribers; admin keys take none.
    pub fn check(&self) -> Result<(), KeyError> {
        let bad = |why: String| Err(KeyError::Invalid(why));
        if self.name.is_empty() || self.name.chars().count() > 64 {
            return bad("a key name is 1..=64 characters".into());
        }
        if self.scopes.len() > 64 {
            return bad("at most 64 scopes per key".into());
        }
        match self.role {
            Role::Admin if !self.scopes.is_empty() => bad("admin keys take no scopes".into()),
            Role::Admin => Ok(()),
            _ if self.scopes.is_empty() => {
                bad(format!("a {} key needs at least one scope", self.role.as_str()))
            }
            Role::Publisher => match self.scopes.iter().find(|s| !valid_game_pattern(s)) {
                Some(s) => {
                    bad(format!("publisher scope {s:?} is not a game-id pattern ([A-Za-z0-9_.-] and *)"))
                }
                None => Ok(()),
            },
            Role::Subscriber => {
                match self.scopes.iter().find(|s| opensports_proto::topic::Pattern::parse(s).is_err()) {
                    Some(s) => bad(format!("subscriber scope {s:?} is not a topic pattern")),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The key file and its in-memory copy.
#[derive(Debug)]
pub struct KeyStore {
    db: Database,
    keys: RwLock<HashMap<String, Arc<KeyRecord>>>,
}

impl KeyStore {
    pub fn open(data_dir: &Path) -> Result<KeyStore, KeyError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| KeyError::Invalid(format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join(FILE_NAME);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(KeyError::Locked { path }),
            Err(source) => return Err(KeyError::Open { path, source }),
        };
        let w = db.begin_write()?;
        w.open_table(KEYS)?;
        w.open_table(AUDIT)?;
        w.open_table(SETTINGS)?;
        w.commit()?;
        let mut keys = HashMap::new();
        {
            let r = db.begin_read()?;
            for row in r.open_table(KEYS)?.iter()? {
                let (id, json) = row?;
                let rec: KeyRecord = serde_json::from_slice(json.value())?;
                keys.insert(id.value().to_string(), Arc::new(rec));
            }
        }
        Ok(KeyStore { db, keys: RwLock::new(keys) })
    }

    /// Creates a key; returns the key (shown once) and its record.
    pub fn create(
        &self,
        new: NewKey,
        actor: &str,
        remote: Option<String>,
    ) -> Result<(String, KeyRecord), KeyError> {
        new.check()?;
        use ring::rand::SecureRandom as _;
        let rng = ring::rand::SystemRandom::new();
        let (mut id_bytes, mut secret) = ([0u8; 6], [0u8; 32]);
        rng.fill(&mut id_bytes).map_err(|_| KeyError::Random)?;
        rng.fill(&mut secret).map_err(|_| KeyError::Random)?;
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        use base64::Engine as _;
        let key =
            format!("{KEY_PREFIX}{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
        let rec = KeyRecord {
            id: id.clone(),
            name: new.name,
            role: new.role,
            scopes: new.scopes,
            created_ms: crate::store::now_ms(),
            created_by: actor.into(),
            revoked_ms: None,
            digest: hex_digest(&key),
        };
        let after = public_view(&rec);
        self.write(&rec, entry(actor, "key.create", &id, serde_json::Value::Null, after, remote))?;
        Ok((key, rec))
    }

    /// Revokes a key (idempotent); returns its record.
    pub fn revoke(&self, id: &str, actor: &str, remote: Option<String>) -> Result<KeyRecord, KeyError> {
        let Some(old) = self.keys.read().get(id).cloned() else {
            return Err(KeyError::NoSuchKey(id.into()));
        };
        if old.revoked_ms.is_some() {
            return Ok((*old).clone());
        }
        let mut rec = (*old).clone();
        rec.revoked_ms = Some(crate::store::now_ms());
        let audit = entry(actor, "key.revoke", id, public_view(&old), public_view(&rec), remote);
        self.write(&rec, audit)?;
        Ok(rec)
    }

    fn write(&self, rec: &KeyRecord, audit: AuditEntry) -> Result<(), KeyError> {
        let w = self.db.begin_write()?;
        w.open_table(KEYS)?.insert(rec.id.as_str(), serde_json::to_vec(rec)?.as_slice())?;
        append(&w, audit)?;
        w.commit()?;
        self.keys.write().insert(rec.id.clone(), Arc::new(rec.clone()));
        Ok(())
    }

    /// Takes a record another cluster node holds: an unknown key is added, a revocation is
    /// applied; nothing is ever un-revoked. Audited as the original actor, with the node it came
    /// from as the remote. Returns whether anything changed.
    pub fn import(&self, rec: &KeyRecord, from_node: &str) -> Result<bool, KeyError> {
        let old = self.keys.read().get(&rec.id).cloned();
        let remote = Some(format!("cluster node {from_node}"));
        let (merged, audit) = match old {
            None => {
                let rec = rec.clone();
                let after = public_view(&rec);
                let action = if rec.revoked_ms.is_some() { "key.revoke" } else { "key.create" };
                let e = entry(&rec.created_by, action, &rec.id, serde_json::Value::Null, after, remote);
                (rec, e)
            }
            Some(old) if old.revoked_ms.is_none() && rec.revoked_ms.is_some() && old.digest == rec.digest => {
                let mut new = (*old).clone();
                new.revoked_ms = rec.revoked_ms;
                let e = entry("cluster", "key.revoke", &rec.id, public_view(&old), public_view(&new), remote);
                (new, e)
            }
            Some(_) => return Ok(false),
        };
        self.write(&merged, audit)?;
        Ok(true)
    }

    /// The live (not revoked) record of `key`, if it is one of ours.
    pub fn verify(&self, key: &str) -> Option<Arc<KeyRecord>> {
        let id = key.strip_prefix(KEY_PREFIX)?.split('_').next()?;
        let rec = self.keys.read().get(id).cloned()?;
        let same = super::ct_eq(rec.digest.as_bytes(), hex_digest(key).as_bytes());
        (same && rec.revoked_ms.is_none()).then_some(rec)
    }

    pub fn is_revoked(&self, id: &str) -> bool {
        self.keys.read().get(id).is_none_or(|r| r.revoked_ms.is_some())
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<KeyRecord> {
        let mut all: Vec<KeyRecord> = self.keys.read().values().map(|r| (**r).clone()).collect();
        all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        all
    }

    /// Appends one audit entry (admin actions other than key changes).
    pub fn audit(&self, e: AuditEntry) -> Result<(), KeyError> {
        let w = self.db.begin_write()?;
        append(&w, e)?;
        w.commit()?;
        Ok(())
    }

    /// A setting's JSON, if it was ever set.
    pub fn setting(&self, name: &str) -> Result<Option<Vec<u8>>, KeyError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SETTINGS)?;
        Ok(t.get(name)?.map(|v| v.value().to_vec()))
    }

    /// Sets a setting and appends its audit entry, in one commit: either both are written or
    /// neither.
    pub fn put_setting(&self, name: &str, json: &[u8], e: AuditEntry) -> Result<(), KeyError> {
        let w = self.db.begin_write()?;
        w.open_table(SETTINGS)?.insert(name, json)?;
        append(&w, e)?;
        w.commit()?;
        Ok(())
    }

    /// Audit entries with id > `after`, oldest first, at most `limit`.
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, KeyError> {
        self.audit_log_where(after, limit, |_| true)
    }

    /// Like [`KeyStore::audit_log`], only the entries `keep` accepts (`limit` of those).
    pub fn audit_log_where(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>, KeyError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in t.range(after.saturating_add(1)..)? {
            let (id, json) = row?;
            let mut e: AuditEntry = serde_json::from_slice(json.value())?;
            e.id = id.value();
            if keep(&e) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

fn append(w: &redb::WriteTransaction, e: AuditEntry) -> Result<(), KeyError> {
    let mut t = w.open_table(AUDIT)?;
    let next = t.last()?.map_or(1, |(k, _)| k.value() + 1);
    t.insert(next, serde_json::to_vec(&e)?.as_slice())?;
    Ok(())
}

/// An audit entry stamped now.
pub fn entry(
    actor: &str,
    action: &str,
    target: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    remote: Option<String>,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: crate::store::now_ms(),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        before,
        after,
        remote,
    }
}

/// A key record as lists and the audit log show it (no digest).
pub fn public_view(rec: &KeyRecord) -> serde_json::Value {
    serde_json::json!({
        "id": rec.id, "name": rec.name, "role": rec.role, "scopes": rec.scopes,
        "created_ms": rec.created_ms, "created_by": rec.created_by, "revoked_ms": rec.revoked_ms,
    })
}

fn hex_digest(key: &str) -> String {
    super::digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(role: Role, scopes: &[&str]) -> NewKey {
        NewKey { name: "t".into(), role, scopes: scopes.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn keys_verify_revoke_persist_and_audit() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::open(dir.path()).unwrap();
        let (k, rec) = store.create(key(Role::Publisher, &["nba-*"]), "cli", None).unwrap();
        assert!(k.starts_with("osk_") && !rec.digest.contains(&k));
        assert_eq!(store.verify(&k).unwrap().id, rec.id);
        let mut wrong = k.clone();
        wrong.pop();
        wrong.push(if k.ends_with('A') { 'B' } else { 'A' });
        assert!(store.verify(&wrong).is_none());
        assert!(store.verify("osk_nothere_x").is_none() && store.verify("demo-token").is_none());
        store.revoke(&rec.id, "cli", None).unwrap();
        assert!(store.verify(&k).is_none() && store.is_revoked(&rec.id));
        drop(store);
        let store = KeyStore::open(dir.path()).unwrap();
        assert!(store.verify(&k).is_none(), "revocation survives a restart");
        let log = store.audit_log(0, 10).unwrap();
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["key.create", "key.revoke"]);
        assert_eq!(log[1].before["revoked_ms"], serde_json::Value::Null);
        assert!(log[1].after["revoked_ms"].is_i64());
        assert_eq!(store.audit_log(1, 10).unwrap().len(), 1);
    }

    #[test]
    fn scopes_are_checked_per_role() {
        assert!(key(Role::Publisher, &["nba-*"]).check().is_ok());
        assert!(key(Role::Publisher, &["game/#"]).check().is_err());
        assert!(key(Role::Publisher, &[]).check().is_err());
        assert!(key(Role::Subscriber, &["game/nba-1/#"]).check().is_ok());
        assert!(key(Role::Subscriber, &["game/#/x"]).check().is_err());
        assert!(key(Role::Admin, &["x"]).check().is_err());
        assert!(key(Role::Admin, &[]).check().is_ok());
    }
}
