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
    let config = kv::Config { bucket: KEYS_BUCKET.into(), history: 5, ..Default::default() };
    let Some(store) = super::bucket(&js, config, replicas, "keys stay per node").await else { return };
    let mut changes = auth.key_changes();
    for rec in auth.keys().list() {
        share(&store, &node, rec).await;
    }
    let mut watch = match store.watch_all().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the cluster key bucket; keys stay per node");
            return;
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
            entry = watch.next() => {
                let Some(Ok(entry)) = entry else { return };
                if entry.operation != kv::Operation::Put {
                    continue;
                }
                let Ok(shared) = serde_json::from_slice::<Shared>(&entry.value) else {
                    tracing::warn!(key = %entry.key, "unreadable record in the cluster key bucket");
                    continue;
                };
                if shared.node == node {
                    continue;
                }
                let auth = auth.clone();
                let imported = tokio::task::spawn_blocking(move || auth.import_key(&shared.record, &shared.node)).await;
                if let Ok(Err(e)) = imported {
                    tracing::warn!(error = %e, key = %entry.key, "cannot import a cluster key");
                }
            }
            _ = shutdown.changed() => return,
        }
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
    if let Err(e) = store.put(&id, value.into()).await {
        tracing::warn!(error = %e, "cannot share a key with the cluster");
    }
}
