//! OpenSports Edge server: QUIC ingest → sharded pipeline → WebSocket fan-out.
//!
//! ```text
//!  publishers ──QUIC──► ingest ──bounded queue per shard──► pipeline (shard threads)
//!                         │ (admission, sequencing)            │ core state → winprob → plugins
//!                         │                                    │ (topic, seq, JSON once)
//!                         ▼                                    ▼
//!                       store ◄──── game end, ratings ──── fanout (topics, history, outboxes)
//!                  (group commit,                              │
//!                   acks, replay)          model ◄── infer ────┤ (pipeline and plugin call it)
//!                                                              ▼
//!  subscribers ◄──── WebSocket, SSE, GraphQL ─────────────────── api (sessions, HTTP, /metrics)
//! ```
//!
//! Stage arrows point one way: `ingest` → `pipeline` → `fanout` → `api`. `plugin` is called by
//! the pipeline; `store` and `model` are leaves that stages call and that call no stage. Where
//! an upstream stage must hear of something (a game evicted), it hands a hook down at start.
//! Recovery is wired here, in [`start`]: the pipeline replays the log and feeds ingest's
//! sequencing through a closure.
//!
//! # Layout
//! - [`config`]: the TOML configuration, defaults and validation.
//! - [`auth`]: API keys, JWTs, roles and scopes, the audit log, per-client limits (a leaf).
//! - [`ingest`]: QUIC endpoint, hello/auth, admission rules (sans-IO), sequencing, event
//!   streams, datagrams, acks.
//! - [`pipeline`]: shard threads owning game state and its stages; the game directory, the
//!   `games` topic, win-probability features, start-up recovery.
//! - [`plugin`]: sandboxed WASM plugins (wasmtime), ABI v1 host side.
//! - [`builtin`]: the shipped plugins and models embedded in the binary (the defaults).
//! - [`model`]: ONNX models (tract): manifest, registry, inference, ratings, outcome scoring.
//! - [`fanout`]: topics, history rings, subscriber outboxes, the subscriber session core
//!   (sans-IO: ops, scopes, limits, lag, and the lifetime timers, for every transport).
//! - [`api`]: HTTP (axum): JSON API, `/metrics`, dashboard, and the session core's transport
//!   adapters: `/ws`, `/v1/sse`, `/graphql` (queries and `graphql-transport-ws`).
//! - [`store`]: the durable event log (redb): group commit, acks, replay reads, export, backup.
//! - [`feeds`]: real provider feeds (NBA live, ...) → our events, for `replay`.
//! - [`sim`]: deterministic simulated games for the four sports.
//! - [`cluster`]: several nodes over NATS JetStream: replication of committed events, the
//!   follower applying other nodes' events, shared API keys, membership.
//! - [`cli`]: the `demo` and `watch` commands used by the `opensports` binary.
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`tasks`]: the tracker shutdown waits on (connection, stream and session tasks).
//!
//! Entry points: [`start`] returns a [`Running`] server (tests use it with port-0 listeners);
//! [`run`] serves until a shutdown future resolves.

pub mod api;
pub mod auth;
pub mod builtin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod fanout;
pub mod feeds;
pub mod graphics;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod push;
pub mod report;
pub mod seqs;
pub mod sim;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod triggers;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use config::Config;

/// How long shutdown waits for connection and session tasks to end.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often loaded plugin files are checked for a new version.
pub const PLUGIN_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] ingest::tls::TlsError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Auth(#[from] auth::AuthOpenError),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
}

/// The sockets the server serves on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    pub quic: UdpSocket,
    pub http: TcpListener,
}

impl Listeners {
    /// Binds the addresses of `config.server`.
    pub fn bind(config: &Config) -> Result<Listeners, StartError> {
        let quic = UdpSocket::bind(config.server.quic_listen)
            .map_err(|source| StartError::Io { what: "binding the QUIC (UDP) address", source })?;
        let http = TcpListener::bind(config.server.http_listen)
            .map_err(|source| StartError::Io { what: "binding the HTTP (TCP) address", source })?;
        Ok(Listeners { quic, http })
    }

    /// Binds both on 127.0.0.1 with ports chosen by the OS.
    pub fn loopback() -> Result<Listeners, StartError> {
        let quic = UdpSocket::bind("127.0.0.1:0")
            .map_err(|source| StartError::Io { what: "binding UDP", source })?;
        let http = TcpListener::bind("127.0.0.1:0")
            .map_err(|source| StartError::Io { what: "binding TCP", source })?;
        Ok(Listeners { quic, http })
    }
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// SHA-256 of the QUIC certificate, lowercase hex: publishers pin it.
    pub fingerprint: String,
    /// DER of the QUIC leaf certificate.
    pub cert_der: Vec<u8>,
    pub fanout: Arc<fanout::Fanout>,
    pub pipeline: Arc<pipeline::Pipeline>,
    pub plugins: Arc<plugin::PluginSet>,
    /// The durable log (`None` when disabled).
    pub store: Option<Arc<store::Store>>,
    /// API keys, JWT keys, audit log.
    pub auth: Arc<auth::Auth>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Resolves once every connection, stream and session task has ended.
    drained: tasks::Drained,
}

/// Starts ingest, pipeline and HTTP on `listeners`. Must be called inside a tokio runtime.
pub async fn start(mut config: Config, listeners: Listeners) -> Result<Running, StartError> {
    config.validate()?;
    raise_open_files(&config);
    let builtin = builtin::apply(&mut config)
        .map_err(|source| StartError::Io { what: "writing the built-in plugins and models", source })?;
    for what in builtin {
        tracing::info!("using {what}");
    }
    let prometheus = metrics::install();
    let telemetry = telemetry::Telemetry::start(&config.telemetry)
        .map_err(|source| StartError::Io { what: "starting the OTLP exporter", source })?;
    let tls = ingest::tls::load_or_generate(&config.server)?;
    if tls.generated {
        tracing::info!(dir = %config.server.data_dir.join("tls").display(), "generated a self-signed certificate");
    }
    let Bound { endpoint, http, quic_addr, http_addr } = bind(&config, &tls, listeners)?;
    let auth = open_auth(&config).await?;
    let fanout = fanout::Fanout::new(config.fanout.clone());
    let (models, plugins) = load_models_and_plugins(&config).await?;
    let store = open_log(&config).await?;
    let ratings = Arc::new(model::ratings::Ratings::load(&config.models.dir, store.clone()));
    // Ingest's sequencing: fed by recovery, consulted by admission, and told by the shards when
    // a game leaves memory (the pipeline cannot call ingest; this hook is how it is told).
    let ingest_games = Arc::new(ingest::GameMemory::new(&config.ingest));
    let on_evict: pipeline::EvictHook = {
        let games = ingest_games.clone();
        Box::new(move |game: &str| games.forget(game))
    };
    let parts = pipeline::Parts {
        fanout: fanout.clone(),
        plugins: plugins.clone(),
        models: models.clone(),
        store: store.clone(),
        ratings,
        on_evict,
        trigger_edits: stored_trigger_edits(&auth),
        telemetry: telemetry.clone(),
    };
    let pipeline = pipeline::Pipeline::start(&config, parts)
        .map_err(|source| StartError::Io { what: "starting shard threads", source })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    // Push's dispatcher subscribes before the log is replayed: a firing whose push was not
    // recorded before a stop is queued now (the outbox's keys make the rest no-ops).
    let dir = config.server.data_dir.clone();
    let push_cfg = config.push.clone();
    let push = blocking("opening the push store", move || push::Push::open(&dir, push_cfg)).await?.map_err(
        |source| StartError::Io { what: "opening the push store", source: std::io::Error::other(source) },
    )?;
    let push_dispatcher = tokio::spawn(push.clone().dispatcher(fanout.clone(), shutdown_rx.clone()));
    if let Some(store) = &store {
        // Replay the log before anyone can connect: subscribers then resume exactly.
        let ttl = std::time::Duration::from_secs(config.pipeline.ended_game_ttl_secs);
        let snapshots = config.store.snapshot_every > 0;
        recover_log(store.clone(), pipeline.clone(), ingest_games.clone(), ttl, snapshots).await?;
    }
    // Connection, stream and session tasks: shutdown waits for every one of them.
    let (tracker, drained) = tasks::tracker();

    // The cluster (replication) is handed to ingest as it is built; its follower then applies
    // the other nodes' events through ingest. Ingest never names the cluster.
    let cluster = match config.cluster.enabled {
        true => Some(
            cluster::Cluster::start(
                &config.cluster,
                auth.clone(),
                push.clone(),
                store.clone(),
                http_addr,
                shutdown_rx.clone(),
            )
            .await?,
        ),
        false => None,
    };
    let wiring = ingest::Wiring {
        pipeline: pipeline.clone(),
        fanout: fanout.clone(),
        store: store.clone(),
        games: ingest_games,
        tasks: tracker.clone(),
        auth: auth.clone(),
        replication: cluster.clone().map(|c| c as Arc<dyn ingest::Replication>),
        telemetry,
    };
    let ingest_ctx = ingest::IngestCtx::new(config.ingest.clone(), wiring);
    if let Some(c) = &cluster {
        c.follow(ingest_ctx.clone(), shutdown_rx.clone());
    }
    let mut tasks = vec![tokio::spawn(ingest::serve(endpoint, ingest_ctx, shutdown_rx.clone()))];
    let graphics = graphics::Graphics::new(&config.graphics.fields)
        .map_err(|problem| config::ConfigError::Invalid { field: "graphics.fields", problem })?;
    let graphics = Arc::new(graphics);
    if let Some(dir) = config.graphics.drop_dir.clone() {
        let (g, f, d, stop) =
            (graphics.clone(), fanout.clone(), pipeline.directory().clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(graphics::drop::run(dir, g, f, d, stop)));
    }
    tasks.push(push_dispatcher);
    tasks.push(tokio::spawn(push.clone().run_sender(shutdown_rx.clone())));
    let app = api::AppState {
        fanout: fanout.clone(),
        push,
        graphics,
        pipeline: pipeline.clone(),
        plugins: plugins.clone(),
        models: models.clone(),
        store: store.clone(),
        prometheus: prometheus.clone(),
        ws_permits: Arc::new(Semaphore::new(config.fanout.max_connections)),
        auth: auth.clone(),
        tasks: tracker,
        shutdown: shutdown_rx.clone(),
        certificate: ingest::tls::pem_chain(&tls.certs).into(),
        cluster,
        console: Arc::new(api::console::Console {
            cfg: config.console.clone(),
            secure: config.server.http_tls,
            ..Default::default()
        }),
    };
    let (http_cfg, http_shutdown, http_tasks) =
        (config.server.clone(), shutdown_rx.clone(), app.tasks.clone());
    let http_tls = match config.server.http_tls {
        true => Some(ingest::tls::http_config(&tls)?),
        false => None,
    };
    tasks.push(tokio::spawn(async move {
        api::serve::serve(http, api::router(app), &http_cfg, http_tls, http_shutdown, http_tasks).await;
    }));
    let upkeep = tokio::spawn(metrics::upkeep(prometheus));
    let watcher =
        (!plugins.is_empty()).then(|| tokio::spawn(plugin::watch(plugins.clone(), PLUGIN_WATCH_INTERVAL)));
    let mut upkeep_shutdown = shutdown_rx;
    tasks.push(tokio::spawn(async move {
        let _ = upkeep_shutdown.changed().await;
        upkeep.abort();
        if let Some(w) = watcher {
            w.abort();
        }
    }));
    let cert_der = tls.certs.first().map(|c| c.to_vec()).unwrap_or_default();
    tracing::info!(%quic_addr, %http_addr, fingerprint = %tls.fingerprint, "serving");
    Ok(Running {
        quic_addr,
        http_addr,
        fingerprint: tls.fingerprint,
        cert_der,
        fanout,
        pipeline,
        plugins,
        store,
        auth,
        shutdown,
        tasks,
        drained,
    })
}

impl Running {
    /// Graceful shutdown: stop accepting, close publishers (they resend what was not acked),
    /// let the shards drain their queues, close WebSocket sessions.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Connections were closed and sessions told to stop; their tasks end within moments.
        if !self.drained.wait(SHUTDOWN_GRACE).await {
            tracing::warn!("some connection tasks were still running at shutdown");
        }
        let (pipeline, store) = (self.pipeline.clone(), self.store.clone());
        let _ = tokio::task::spawn_blocking(move || {
            pipeline.shutdown();
            if let Some(s) = store {
                s.shutdown();
            }
        })
        .await;
    }
}

/// The listeners as the endpoints the server serves on.
struct Bound {
    endpoint: quinn::Endpoint,
    http: tokio::net::TcpListener,
    quic_addr: SocketAddr,
    http_addr: SocketAddr,
}

/// Start-up step: the QUIC endpoint and the HTTP listener on `listeners`.
fn bind(config: &Config, tls: &ingest::tls::TlsMaterial, listeners: Listeners) -> Result<Bound, StartError> {
    let quic_config = ingest::tls::server_config(tls, config.ingest.max_streams_per_connection)?;
    let quic_addr =
        listeners.quic.local_addr().map_err(|source| StartError::Io { what: "UDP address", source })?;
    let http_addr =
        listeners.http.local_addr().map_err(|source| StartError::Io { what: "TCP address", source })?;
    let endpoint = quinn::Endpoint::new(
        ingest::tls::endpoint_config(&config.server.data_dir)?,
        Some(quic_config),
        listeners.quic,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|source| StartError::Io { what: "starting the QUIC endpoint", source })?;
    listeners.http.set_nonblocking(true).map_err(|source| StartError::Io { what: "TCP listener", source })?;
    let http = tokio::net::TcpListener::from_std(listeners.http)
        .map_err(|source| StartError::Io { what: "TCP listener", source })?;
    Ok(Bound { endpoint, http, quic_addr, http_addr })
}

/// Start-up step: the operators' changes to the trigger rules, from the key file (none when
/// unreadable: the configured rules run, and the reason is logged).
fn stored_trigger_edits(auth: &auth::Auth) -> triggers::Edits {
    let stored = auth
        .keys()
        .setting(triggers::SETTING)
        .map_err(|e| e.to_string())
        .and_then(|b| b.map(|b| serde_json::from_slice(&b).map_err(|e| e.to_string())).transpose());
    match stored {
        Ok(edits) => edits.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "the stored trigger rule changes cannot be read: running the configured rules");
            triggers::Edits::default()
        }
    }
}

/// Start-up step: API keys and JWT settings (warns when no publisher could connect yet).
async fn open_auth(config: &Config) -> Result<Arc<auth::Auth>, StartError> {
    let (cfg, dir, tokens) =
        (config.auth.clone(), config.server.data_dir.clone(), config.ingest.tokens.clone());
    let auth =
        Arc::new(blocking("opening the key file", move || auth::Auth::open(&cfg, &dir, &tokens)).await??);
    let can_publish = |k: &auth::KeyRecord| k.revoked_ms.is_none() && k.role != auth::Role::Subscriber;
    if config.ingest.tokens.is_empty() && !auth.keys().list().iter().any(can_publish) {
        tracing::warn!(
            "no publisher can connect yet: create a key with `opensports keys create --name NAME --role publisher --scope 'GAME-PATTERN'` (server stopped) or POST /v1/keys"
        );
    }
    Ok(auth)
}

/// Start-up step: models checked and loaded, plugins compiled (CPU work, off the runtime's
/// threads).
async fn load_models_and_plugins(
    config: &Config,
) -> Result<(Arc<model::ModelRegistry>, Arc<plugin::PluginSet>), StartError> {
    let (cfg, dir, models_dir) =
        (config.plugins.clone(), config.server.data_dir.clone(), config.models.dir.clone());
    blocking("loading models and plugins", move || {
        let models = Arc::new(model::ModelRegistry::load(&models_dir).0);
        let plugins = plugin::PluginSet::load(&cfg, &dir, models.clone());
        (models, plugins)
    })
    .await
}

/// Start-up step: the event log, when `store.enabled`.
async fn open_log(config: &Config) -> Result<Option<Arc<store::Store>>, StartError> {
    if !config.store.enabled {
        return Ok(None);
    }
    let (cfg, dir) = (config.store.clone(), config.server.data_dir.clone());
    Ok(Some(blocking("opening the event log", move || store::Store::open(&cfg, &dir)).await??))
}

/// Start-up step: replays the log into the shards, and ingest's memory of each game (seqs,
/// people, owner) with it, so publishers resume and the per-game rules hold across restarts.
async fn recover_log(
    store: Arc<store::Store>,
    pipeline: Arc<pipeline::Pipeline>,
    games: Arc<ingest::GameMemory>,
    ttl: std::time::Duration,
    snapshots: bool,
) -> Result<(), StartError> {
    let r = blocking("replaying the event log", move || {
        let r = pipeline::recover::recover(&store, &pipeline, ttl, snapshots, &*games)?;
        // Owners come back with their games: the per-key game quota and who may write which
        // game hold across restarts.
        for (game, meta) in store.games()? {
            if let Some(owner) = meta.owner
                && pipeline.directory().contains(&game)
            {
                games.owners.claim(&game, &Arc::from(owner));
            }
        }
        Ok::<_, store::StoreError>(r)
    })
    .await??;
    tracing::info!(
        games = r.games,
        events = r.events,
        from_snapshots = r.from_snapshots,
        ended_games_left_in_log = r.skipped_games,
        ms = r.elapsed.as_millis() as u64,
        "recovered from the event log"
    );
    Ok(())
}

/// Runs start-up work that blocks (file I/O, compiling, replaying) off the runtime's threads;
/// a panic in it is a start error naming `what`.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StartError::Io { what, source: std::io::Error::other(e) })
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let running = start(config, listeners).await?;
    shutdown.await;
    running.shutdown().await;
    Ok(())
}

/// Raises the open-files soft limit to the hard one (every subscriber, publisher and HTTP
/// connection holds a descriptor; the common default soft limit of 1,024 would refuse
/// subscribers long before `fanout.max_connections`), and warns when even the hard limit is
/// below what the connection limits admit.
fn raise_open_files(config: &Config) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
        && soft < hard
    {
        match setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }) {
            Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit"),
        }
    }
    let need = (config.fanout.max_connections + config.ingest.max_connections + 256) as u64;
    if let Some(have) = getrlimit(Resource::Nofile).current
        && have < need
    {
        tracing::warn!(
            open_files = have,
            needed = need,
            "the open-files limit is below fanout.max_connections + ingest.max_connections + 256: \
             connections past it are refused (raise `ulimit -Hn` or systemd's LimitNOFILE)"
        );
    }
}
