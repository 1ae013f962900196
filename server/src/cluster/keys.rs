//! API keys shared through the JetStream KV bucket `opensports_keys`: a key created or revoked
//! on any node is put there as `{node, record}` (its digest, never the key), and every node
//! imports what the others put ([`crate::auth::Auth::import_key`]: unknown keys are added,
//! revocations applied, nothing un-revoked), each import audited as the original action with
//! the node it came from. At start a node shares the keys it already holds.

use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::auth::{Auth, KeyRecord};

const KEYS_BUCKET: &str = "opensports_keys";

#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    node: String,
    record: KeyRecord,
}

pub(super) async fn run(
    js: jetstream::Context,
    node: String,
    replicas: usize,
    auth: Arc<Auth>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Subscribed first: keys made while the bucket is being opened are shared too.
    let mut changes = auth.key_changes();
    let store = loop {
        let config = kv::Config { bucket: KEYS_BUCKET.into(), history: 5, ..Default::default() };
        if let Some(s) = super::bucket(&js, config, replicas, "retrying; keys stay per node meanwhile").await
        {
            break s;
        }
        if pause(&mut shutdown).await {
            return;
        }
    };
    for rec in auth.keys().list() {
        share(&store, &node, rec).await;
    }
    // The watch replays the bucket's latest records, then follows it; after an error (a NATS
    // server going away, a missed heartbeat) it is opened again and replays (imports are
    // idempotent).
    loop {
        let mut watch = match store.watch_all().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the cluster key bucket; retrying");
                if pause(&mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(rec) => share(&store, &node, rec).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for rec in auth.keys().list() {
                            share(&store, &node, rec).await;
                        }
                    }
                    Err(_) => return,
                },
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => import(&auth, &node, entry).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cluster key watch failed; watching again");
                        break;
                    }
                    None => break,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Waits a second; true when the node is shutting down instead.
pub(super) async fn pause(shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => false,
        _ = shutdown.changed() => true,
    }
}

/// Imports another node's record.
async fn import(auth: &Arc<Auth>, node: &str, entry: kv::Entry) {
    if entry.operation != kv::Operation::Put {
        return;
    }
    let Ok(shared) = serde_json::from_slice::<Shared>(&entry.value) else {
        tracing::warn!(key = %entry.key, "unreadable record in the cluster key bucket");
        return;
    };
    if shared.node == node {
        return;
    }
    let auth = auth.clone();
    let imported = tokio::task::spawn_blocking(move || auth.import_key(&shared.record, &shared.node)).await;
    if let Ok(Err(e)) = imported {
        tracing::warn!(error = %e, key = %entry.key, "cannot import a cluster key");
    }
}

/// Puts a record unless the bucket already holds it revoked (a revocation is never undone).
async fn share(store: &kv::Store, node: &str, record: KeyRecord) {
    if let Ok(Some(bytes)) = store.get(&record.id).await
        && let Ok(held) = serde_json::from_slice::<Shared>(&bytes)
        && (held.record.revoked_ms.is_some() || held.record == record)
    {
        return;
    }
    let id = record.id.clone();
    let Ok(value) = serde_json::to_vec(&Shared { node: node.to_string(), record }) else { return };
    let value = bytes::Bytes::from(value);
    // A put can time out while a NATS server goes away: a few tries, then say so.
    for attempt in 1..=5u64 {
        match store.put(&id, value.clone()).await {
            Ok(_) => return,
            Err(e) if attempt == 5 => {
                tracing::warn!(error = %e, key = %id, "cannot share a key with the cluster")
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await,
        }
    }
}
