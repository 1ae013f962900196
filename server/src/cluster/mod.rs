//! Several edge nodes sharing ingest through NATS JetStream (DESIGN.md, "Cluster").
//!
//! # Layout
//! - [`Cluster::start`]: connects, makes sure the stream exists, starts the tasks below.
//! - [`replicate`]: as a node logs an event a publisher sent it, the event goes to
//!   JetStream (subject `opensports.events.{game}`, `Nats-Msg-Id` `{game}:{seq}`); with
//!   `cluster.ack = "cluster"` the publisher's ack waits for JetStream's.
//! - [`follow`]: every node reads the whole stream through its own durable consumer
//!   (`node-{node_id}`) and applies the other nodes' events through the same sequencing, log
//!   and shards as its own, so every node's outputs are the same bytes.
//! - membership: each node keeps a key in the `opensports_nodes` KV bucket (15 s TTL).
//! - [`keys`]: API keys (create, revoke) shared through the `opensports_keys` KV bucket.
//! - [`push`]: push devices shared through `opensports_devices`, and each firing's pushes sent
//!   by the one node that claims it first (`opensports_push_claims`).
//!
//! A publisher's hello waits until the node has applied everything the stream held when the
//! hello came ([`Cluster::settle`]): a publisher failing over resumes exactly after its last
//! ack, in order.

pub mod follow;
pub mod keys;
pub mod push;
pub mod replicate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::config::ClusterConfig;
use crate::ingest::{IngestCtx, ReplicatedStream, Replication};
use crate::metrics as m;
use crate::store::{AckSink, Store};

pub use replicate::StreamAck;

/// Subject prefix of the events stream.
pub const SUBJECT_PREFIX: &str = "opensports.events.";
/// Header naming the node that ingested an event.
pub const NODE_HEADER: &str = "Opensports-Node";
/// Header naming the publisher identity that sent it (the game's owner on every node).
pub const OWNER_HEADER: &str = "Opensports-Owner";
/// KV bucket of live nodes.
const MEMBERS_BUCKET: &str = "opensports_nodes";
const MEMBER_TTL: Duration = Duration::from_secs(15);
const MEMBER_BEAT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.urls: {0}")]
    Url(String),
    #[error("connecting to NATS ({urls}): {reason}")]
    Connect { urls: String, reason: String },
    #[error("JetStream stream {stream}: {reason}")]
    Stream { stream: String, reason: String },
}

/// A node's view of the cluster, shared by ingest (hello gate, acks) and the HTTP API.
#[derive(Debug)]
pub struct Cluster {
    pub node_id: String,
    cfg: ClusterConfig,
    js: jetstream::Context,
    /// Committed local events waiting for JetStream.
    backlog: Arc<replicate::Backlog>,
    /// This node's consumer of the stream, until [`Cluster::follow`] starts reading it.
    consumer: parking_lot::Mutex<Option<jetstream::consumer::PullConsumer>>,
    /// Highest stream sequence this node has applied (its own events count when seen back).
    applied: AtomicU64,
    /// Messages the consumer had still to deliver, as of the last one it delivered.
    pending: AtomicU64,
    /// The consumer has reached the end of the stream at least once since start.
    caught_up: AtomicBool,
    applied_changed: tokio::sync::Notify,
    members: RwLock<Vec<String>>,
}

impl Cluster {
    /// Connects to NATS, creates the stream if needed and starts replication (reading events
    /// that spilled back from `store`), shared keys and the membership beat; the follower
    /// starts with [`Cluster::follow`] once ingest exists. Fails when NATS or JetStream cannot
    /// be reached.
    pub async fn start(
        cfg: &ClusterConfig,
        auth: Arc<crate::auth::Auth>,
        push: Arc<crate::push::Push>,
        store: Option<Arc<Store>>,
        http_addr: std::net::SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let urls = cfg
            .urls
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>().map_err(|e| ClusterError::Url(format!("{u:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let connect_err = |reason: String| ClusterError::Connect { urls: cfg.urls.join(","), reason };
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("opensports-{}", cfg.node_id))
            .connection_timeout(Duration::from_secs(5));
        if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        if let Some(t) = &cfg.token {
            opts = opts.token(t.clone());
        }
        if let Some(f) = &cfg.creds_file {
            opts = opts.credentials_file(f).await.map_err(|e| connect_err(e.to_string()))?;
        }
        let client = opts.connect(urls).await.map_err(|e| connect_err(e.to_string()))?;
        let js = jetstream::new(client);
        let stream_err = |reason: String| ClusterError::Stream { stream: cfg.stream.clone(), reason };
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![format!("{SUBJECT_PREFIX}>")],
                num_replicas: cfg.replicas,
                duplicate_window: Duration::from_secs(cfg.dedupe_window_secs),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        let ack_wait = Duration::from_secs(cfg.redeliver_after_secs.max(1));
        let consumer = follow::consumer(&stream, &cfg.node_id, ack_wait).await.map_err(stream_err)?;
        let backlog = replicate::Backlog::new(cfg.max_pending);
        let cluster = Arc::new(Cluster {
            node_id: cfg.node_id.clone(),
            cfg: cfg.clone(),
            js: js.clone(),
            backlog: backlog.clone(),
            consumer: parking_lot::Mutex::new(Some(consumer)),
            applied: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            caught_up: AtomicBool::new(false),
            applied_changed: tokio::sync::Notify::new(),
            members: RwLock::new(Vec::new()),
        });
        metrics::gauge!(m::CLUSTER_CAUGHT_UP).set(0.0);
        tokio::spawn(replicate::run(js.clone(), cfg.node_id.clone(), backlog, store, shutdown.clone()));
        tokio::spawn(keys::run(js.clone(), cfg.node_id.clone(), cfg.replicas, auth, shutdown.clone()));
        let keep = Duration::from_secs(push.keep_secs());
        push.join(Arc::new(push::PushClaims::new(js.clone(), cfg.node_id.clone(), cfg.replicas, keep)));
        tokio::spawn(push::run(js.clone(), cfg.node_id.clone(), cfg.replicas, push, shutdown.clone()));
        tokio::spawn(membership(cluster.clone(), http_addr, shutdown));
        tracing::info!(node = %cfg.node_id, stream = %cfg.stream, urls = %cfg.urls.join(","), "joined the cluster");
        Ok(cluster)
    }

    /// Starts applying the other nodes' events through `ingest` (once; later calls do nothing).
    pub fn follow(self: &Arc<Self>, ingest: Arc<IngestCtx>, shutdown: watch::Receiver<bool>) {
        if let Some(consumer) = self.consumer.lock().take() {
            tokio::spawn(follow::run(self.clone(), consumer, ingest, shutdown));
        }
    }

    /// Waits (up to `cluster.catch_up_timeout_secs`) until this node has applied everything the
    /// stream holds now. False on timeout or when JetStream cannot say.
    pub async fn settle(&self) -> bool {
        let target = match self.js.get_stream(&self.cfg.stream).await {
            Ok(mut s) => match s.info().await {
                Ok(info) => info.state.last_sequence,
                Err(_) => return false,
            },
            Err(_) => return false,
        };
        let wait = async {
            loop {
                let notified = self.applied_changed.notified();
                if self.applied.load(Ordering::Acquire) >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(self.cfg.catch_up_timeout_secs), wait).await.is_ok()
    }

    /// Ready to serve: the follower has read to the end of the stream once since start.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// `/readyz`'s `cluster` field: node, members, catch-up.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "node": self.node_id,
            "members": *self.members.read(),
            "stream": self.cfg.stream,
            "applied_stream_seq": self.applied.load(Ordering::Acquire),
            "pending": self.pending.load(Ordering::Acquire),
            "caught_up": self.caught_up(),
            "ack": match self.cfg.ack { crate::config::ClusterAck::Cluster => "cluster", crate::config::ClusterAck::Local => "local" },
        })
    }

    /// The follower applied (or skipped) stream message `seq`, with `pending` still to come.
    fn applied(&self, seq: u64, pending: u64) {
        self.applied.fetch_max(seq, Ordering::AcqRel);
        self.pending.store(pending, Ordering::Release);
        metrics::gauge!(m::CLUSTER_PENDING).set(pending as f64);
        if pending == 0 && !self.caught_up.swap(true, Ordering::AcqRel) {
            metrics::gauge!(m::CLUSTER_CAUGHT_UP).set(1.0);
            tracing::info!(stream_seq = seq, "caught up with the cluster");
        }
        self.applied_changed.notify_waiters();
    }
}

impl Replication for Cluster {
    /// Replicates each event as it is logged and acks the publisher as `cluster.ack` says.
    fn stream(&self, publisher: Arc<dyn AckSink>, owner: Arc<str>) -> Arc<dyn ReplicatedStream> {
        Arc::new(StreamAck::new(publisher, owner, self.backlog.clone(), self.cfg.ack))
    }

    fn settle(&self) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(Cluster::settle(self))
    }
}

/// Creates (or opens) a KV bucket with `replicas` copies; `None`, logged with what goes
/// without it, when JetStream refuses.
async fn bucket(
    js: &jetstream::Context,
    config: jetstream::kv::Config,
    replicas: usize,
    without: &str,
) -> Option<jetstream::kv::Store> {
    let name = config.bucket.clone();
    match js.create_key_value(jetstream::kv::Config { num_replicas: replicas, ..config }).await {
        Ok(kv) => Some(kv),
        Err(e) => {
            tracing::warn!(error = %e, bucket = %name, "cluster KV bucket unavailable; {without}");
            None
        }
    }
}

/// Keeps this node's key in the members bucket and the member list fresh.
async fn membership(
    cluster: Arc<Cluster>,
    http_addr: std::net::SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = jetstream::kv::Config {
        bucket: MEMBERS_BUCKET.into(),
        max_age: MEMBER_TTL,
        history: 1,
        ..Default::default()
    };
    let Some(kv) = bucket(&cluster.js, config, cluster.cfg.replicas, "membership not tracked").await else {
        return;
    };
    let me = serde_json::json!({"node": cluster.node_id, "http": http_addr.to_string()}).to_string();
    loop {
        if let Err(e) = kv.put(&cluster.node_id, me.clone().into()).await {
            tracing::warn!(error = %e, "cluster membership beat failed");
        }
        if let Ok(keys) = kv.keys().await {
            use futures_util::TryStreamExt;
            if let Ok(mut names) = keys.try_collect::<Vec<String>>().await {
                names.sort();
                metrics::gauge!(m::CLUSTER_NODES).set(names.len() as f64);
                *cluster.members.write() = names;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(MEMBER_BEAT) => {}
            _ = shutdown.changed() => {
                let _ = kv.delete(&cluster.node_id).await;
                return;
            }
        }
    }
}
