//! `opensports keys create | list | revoke`: API keys on a data dir, offline (the server holds
//! the key file while it runs: use `POST /v1/keys`, `GET /v1/keys`, `DELETE /v1/keys/{id}`
//! with an admin key then).

use std::path::Path;

use anyhow::Context;

use crate::auth::Role;
use crate::auth::keys::{KeyRecord, KeyStore, NewKey};

/// Creates a key and prints it (once: only its digest is kept).
pub fn create(data_dir: &Path, name: &str, role: Role, scopes: Vec<String>) -> anyhow::Result<()> {
    let store = open(data_dir)?;
    let (key, rec) = store.create(NewKey { name: name.into(), role, scopes }, "cli", None)?;
    eprintln!("created {} key {} ({}); it is shown once, keep it now:", rec.role.as_str(), rec.id, rec.name);
    println!("{key}");
    Ok(())
}

pub fn list(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let keys = open(data_dir)?.list();
    if json {
        let views: Vec<_> = keys.iter().map(crate::auth::keys::public_view).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    println!("{:<12}  {:<10}  {:<8}  {:<20}  scopes", "id", "role", "state", "name");
    for k in &keys {
        println!("{}", line(k));
    }
    if keys.is_empty() {
        eprintln!("no keys yet: opensports keys create --name NAME --role publisher --scope 'nba-*'");
    }
    Ok(())
}

fn line(k: &KeyRecord) -> String {
    let state = if k.revoked_ms.is_some() { "revoked" } else { "active" };
    format!("{:<12}  {:<10}  {:<8}  {:<20}  {}", k.id, k.role.as_str(), state, k.name, k.scopes.join(" "))
}

pub fn revoke(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let rec = open(data_dir)?.revoke(id, "cli", None)?;
    println!("{}", line(&rec));
    Ok(())
}

fn open(data_dir: &Path) -> anyhow::Result<KeyStore> {
    KeyStore::open(data_dir).with_context(|| format!("data dir {}", data_dir.display()))
}
