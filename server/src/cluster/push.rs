//! Push notifications across the cluster: one device registry and one sender per firing.
//!
//! - Devices: a registration or removal on any node is put in (deleted from) the JetStream KV
//!   bucket `opensports_devices` as `{node, device}`, and every node imports what the others
//!   put ([`Push::import`]). At start a node shares the devices it already holds.
//! - Send-once: every node queues the same outbox entries from the same firings (the same
//!   events, the same seqs, the same device ids). Before sending, a node claims the firing in
//!   the KV bucket `opensports_push_claims` with an atomic create (the key: the firing's
//!   SHA-256): the first node to claim a firing sends all of its pushes, whichever node saw it
//!   first; the others mark theirs superseded. An ownership rule on the moment rather than a
//!   work queue, because each node already holds every entry durably in its own outbox: a claim
//!   is one small KV write per firing, not one message per push. A claimer that dies sends the
//!   rest of its pushes when it restarts (its outbox is durable); they are not taken over.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::push::{Change, Claims, Device, Push};

const DEVICES_BUCKET: &str = "opensports_devices";
const CLAIMS_BUCKET: &str = "opensports_push_claims";

#[derive(serde::Serialize, serde::Deserialize)]
struct Shared {
    node: String,
    device: Device,
}

/// Claims on firings, in the claims bucket.
#[derive(Debug)]
pub struct PushClaims {
    js: jetstream::Context,
    node: String,
    replicas: usize,
    /// Claims are kept as long as the outbox keeps sent pushes.
    keep: Duration,
    kv: tokio::sync::OnceCell<kv::Store>,
}

impl PushClaims {
    pub fn new(js: jetstream::Context, node: String, replicas: usize, keep: Duration) -> Arc<PushClaims> {
        Arc::new(PushClaims { js, node, replicas, keep, kv: tokio::sync::OnceCell::new() })
    }

    async fn kv(&self) -> Result<&kv::Store, String> {
        self.kv
            .get_or_try_init(|| async {
                let config = kv::Config {
                    bucket: CLAIMS_BUCKET.into(),
                    history: 1,
                    max_age: self.keep,
                    num_replicas: self.replicas,
                    ..Default::default()
                };
                self.js.create_key_value(config).await.map_err(|e| format!("claims bucket: {e}"))
            })
            .await
    }
}

impl Claims for Arc<PushClaims> {
    fn claim(
        &self,
        firing: &str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'static>> {
        let me = self.clone();
        let digest = ring::digest::digest(&ring::digest::SHA256, firing.as_bytes());
        let key: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Box::pin(async move {
            let kv = me.kv().await?;
            match kv.create(&key, me.node.clone().into()).await {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    let held = kv.get(&key).await.map_err(|e| e.to_string())?;
                    Ok(held.as_deref() == Some(me.node.as_bytes()))
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Shares this node's device changes and imports the others', until shutdown.
pub(super) async fn run(
    js: jetstream::Context,
    node: String,
    replicas: usize,
    push: Arc<Push>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Subscribed first: devices registered while the bucket is being opened are shared too.
    let mut changes = push.changes();
    let store = loop {
        let config = kv::Config { bucket: DEVICES_BUCKET.into(), history: 1, ..Default::default() };
        if let Some(s) =
            super::bucket(&js, config, replicas, "retrying; devices stay per node meanwhile").await
        {
            break s;
        }
        if super::keys::pause(&mut shutdown).await {
            return;
        }
    };
    for d in push.devices(None) {
        share(&store, &node, Change::Put(Box::new(d))).await;
    }
    loop {
        let mut watch = match store.watch_all().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the cluster device bucket; retrying");
                if super::keys::pause(&mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(c) => share(&store, &node, c).await,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for d in push.devices(None) {
                            share(&store, &node, Change::Put(Box::new(d))).await;
                        }
                    }
                    Err(_) => return,
                },
                entry = watch.next() => match entry {
                    Some(Ok(entry)) => import(&push, &node, entry).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "cluster device watch failed; watching again");
                        break;
                    }
                    None => break,
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn import(push: &Arc<Push>, node: &str, entry: kv::Entry) {
    let change = match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<Shared>(&entry.value) {
            Ok(s) if s.node == node => return,
            Ok(s) => Change::Put(Box::new(s.device)),
            Err(_) => {
                return tracing::warn!(key = %entry.key, "unreadable record in the cluster device bucket");
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => Change::Removed(entry.key.clone()),
    };
    let push = push.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || push.import(change)).await {
        tracing::warn!(error = %e, key = %entry.key, "cannot import a cluster device");
    }
}

async fn share(store: &kv::Store, node: &str, change: Change) {
    for attempt in 1..=5u64 {
        let done = match &change {
            Change::Put(d) => {
                let Ok(value) = serde_json::to_vec(&Shared { node: node.to_string(), device: (**d).clone() })
                else {
                    return;
                };
                store.put(&d.id, value.into()).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Change::Removed(id) => store.delete(id).await.map_err(|e| e.to_string()),
        };
        match done {
            Ok(()) => return,
            Err(e) if attempt == 5 => {
                tracing::warn!(error = %e, "cannot share a device change with the cluster")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
        }
    }
}
