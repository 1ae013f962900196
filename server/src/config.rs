//! Server configuration: one TOML file into these structs (`deny_unknown_fields`), validated
//! once at start. Every field has a documented default; `opensports.example.toml` at the repo
//! root shows them all.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("config: {field}: {problem}")]
    Invalid { field: &'static str, problem: String },
}

mod analyst;
pub use analyst::{AnalystConfig, LlmConfig};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub ingest: IngestConfig,
    pub pipeline: PipelineConfig,
    pub fanout: FanoutConfig,
    pub plugins: PluginsConfig,
    pub models: ModelsConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub cluster: ClusterConfig,
    pub graphics: GraphicsConfig,
    pub triggers: TriggersConfig,
    pub push: crate::push::PushConfig,
    pub quality: QualityConfig,
    pub analyst: AnalystConfig,
    pub telemetry: crate::telemetry::TelemetryConfig,
    pub console: crate::api::console::ConsoleConfig,
}

/// `[quality]`: the feed-quality monitor (`game/{id}/quality`, PROTOCOL.md; `pipeline/quality.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// A live game silent this long in play (not after a timeout or between periods) is
    /// `stale`: its health is `failing` until the next event. Default 120000.
    pub stale_after_ms: u64,
    /// How far a game clock may move the wrong way within a period before it counts as
    /// `clock_backwards` (feeds re-time plays by a second or two). Default 2000.
    pub clock_slack_ms: u32,
    /// An issue keeps the game `degraded` for this many events. Default 200.
    pub recent_events: u64,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig { stale_after_ms: 120_000, clock_slack_ms: 2000, recent_events: 200 }
    }
}

/// `[triggers]`: rules that fire moments on `game/{id}/triggers` (PROTOCOL.md §3.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggersConfig {
    /// Run the default rules of each sport (lead changes, 30 points, win-probability swings,
    /// scores, goals, red cards, safety car, fastest lap, leader). Default true.
    pub defaults: bool,
    /// `[[triggers.rules]]` tables: `name`, `sport`, `value`, `when`, `hysteresis`,
    /// `cooldown_ms`, `text`; one with a default's name and sport replaces it. Default none.
    pub rules: Vec<crate::triggers::RuleSpec>,
}

impl Default for TriggersConfig {
    fn default() -> Self {
        TriggersConfig { defaults: true, rules: Vec::new() }
    }
}

/// `[graphics]`: flat documents for graphics engines (`GET /v1/graphics/{game}.json|xml|csv`,
/// and a file drop). See `graphics` and README.md, "Graphics outputs".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphicsConfig {
    /// Write every game's documents here (atomically, on change). Default none (off).
    pub drop_dir: Option<PathBuf>,
    /// Extra or replaced fields per sport: `[graphics.fields.basketball]`,
    /// `home_pts = "basketball-boxscore/team/home:/pts"` (`topic:/json/pointer`, optionally
    /// `|mmss`, `|pct` or `|ordinal`).
    pub fields: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

/// `[cluster]`: several nodes sharing ingest through NATS JetStream (DESIGN.md, "Cluster").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join the cluster. Default false (a single node).
    pub enabled: bool,
    /// NATS server URLs; the client fails over between them. Default `["nats://127.0.0.1:4222"]`.
    pub urls: Vec<String>,
    /// This node's name, unique in the cluster (its durable consumer is `node-{node_id}`).
    /// Default the host name.
    pub node_id: String,
    /// NATS user and password, or token, or a `.creds` file. Default none.
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub creds_file: Option<PathBuf>,
    /// JetStream stream holding every game's events (subjects `opensports.events.{game}`).
    /// Default `OPENSPORTS`.
    pub stream: String,
    /// Copies JetStream keeps of each event (1..=5; the NATS cluster needs that many servers).
    /// Default 3.
    pub replicas: usize,
    /// When publishers hear their ack: `"cluster"` (default) after the local commit and
    /// JetStream's ack, so a publisher failing over to another node resumes without a gap;
    /// `"local"` after the local commit alone (lower latency; an acked event can be missing from
    /// the cluster until its node restarts, see DESIGN.md).
    pub ack: ClusterAck,
    /// Window in which JetStream drops a second copy of the same `{game}:{seq}`, in seconds.
    /// Default 120.
    pub dedupe_window_secs: u64,
    /// Events held in memory for JetStream. Past it, with `ack = "cluster"`,
    /// publishers' streams wait before logging more (backpressure; the log writer never waits);
    /// with `ack = "local"` nothing waits: further events are replicated later, read back from
    /// the local log. Default 65536.
    pub max_pending: usize,
    /// How long a publisher's hello waits for this node to apply what the cluster already
    /// holds before it is welcomed (a failover resumes in order). Default 10 s.
    pub catch_up_timeout_secs: u64,
    /// Seconds JetStream waits for this node's ack of an event before delivering it again
    /// (the consumer's `ack_wait`; set when the consumer is first created). This node acks an
    /// event, and any redelivery of it, only once the event is committed here. Default 30.
    pub redeliver_after_secs: u64,
}

/// See [`ClusterConfig::ack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterAck {
    Cluster,
    Local,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            urls: vec!["nats://127.0.0.1:4222".into()],
            node_id: std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "node-1".into()),
            user: None,
            password: None,
            token: None,
            creds_file: None,
            stream: "OPENSPORTS".into(),
            replicas: 3,
            ack: ClusterAck::Cluster,
            dedupe_window_secs: 120,
            max_pending: 65_536,
            catch_up_timeout_secs: 10,
            redeliver_after_secs: 30,
        }
    }
}

/// `[auth]`: who may read without credentials, JWT verification keys, per-key and per-address
/// limits. API keys themselves live in `data_dir/auth.redb` (`opensports keys`, `/v1/keys`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Topic patterns anyone may subscribe to without credentials. Default `[]`: every read
    /// needs a subscriber key or JWT (`opensports demo` makes it `["#"]`).
    pub public_topics: Vec<String>,
    /// HS256 secret (at least 32 bytes) for subscriber JWTs. Default none.
    pub jwt_hs256_secret: Option<String>,
    /// PEM public key for RS256 subscriber JWTs. Default none.
    pub jwt_rs256_public_key: Option<PathBuf>,
    /// PEM public key for EdDSA (Ed25519) subscriber JWTs. Default none.
    pub jwt_eddsa_public_key: Option<PathBuf>,
    /// When set, a JWT must carry this `aud` (or list it). Default none: `aud` not checked.
    pub jwt_audience: Option<String>,
    /// When set, a JWT must carry this `iss`. Default none: `iss` not checked.
    pub jwt_issuer: Option<String>,
    /// Events per second one publisher key may send, all its connections together; past it
    /// the server stops reading its streams until the rate allows (QUIC flow control slows
    /// the publisher; nothing is dropped). Default 50000.
    pub max_events_per_sec_per_key: u32,
    /// Games one publisher key may have in memory at once (each game brings its topics);
    /// a further new game is rejected `game_quota`. Admin keys are exempt. Default 64.
    pub max_games_per_key: usize,
    /// WebSocket connections open at once from one source address. Default 256.
    pub max_ws_per_address: usize,
    /// Origins allowed to call the HTTP API from a browser (CORS); `["*"]` allows any.
    /// Default `[]`: no CORS headers (same-origin pages, like the dashboard, need none).
    pub cors_origins: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            public_topics: Vec::new(),
            jwt_hs256_secret: None,
            jwt_rs256_public_key: None,
            jwt_eddsa_public_key: None,
            jwt_audience: None,
            jwt_issuer: None,
            max_events_per_sec_per_key: 50_000,
            max_games_per_key: 64,
            max_ws_per_address: 256,
            cors_origins: Vec::new(),
        }
    }
}

/// `[store]`: the durable event log (redb, `data_dir/opensports.redb`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Log every accepted event and ack publishers only after the commit. Off: events are acked
    /// when queued and lost on a crash (for benchmarks). Default true.
    pub enabled: bool,
    /// Longest time the writer waits to fill a group commit, in microseconds. Default 2000.
    pub commit_window_us: u64,
    /// Most events in one commit. Default 8192.
    pub max_batch: usize,
    /// Bounded queue in front of the writer; a full queue pauses reading from publishers.
    /// Default 65536.
    pub queue_len: usize,
    /// Hours an ended game's events stay in the log before retention deletes them; 0 keeps
    /// them forever. Default 168 (a week).
    pub retention_hours: u64,
    /// MiB of redb's page cache (reads and writes of the log). Default 16: at `relay` 16 and
    /// 64 cost the same CPU and latency, and 64 is 40 MiB more RSS; redb's own default, 1 GiB,
    /// let the server's memory grow with the log.
    pub cache_mib: usize,
    /// A game's state is snapshotted into the log every this many of its events (and when it
    /// ends), so a restart restores the snapshot and replays only the events after it. 0: no
    /// snapshots, and recovery replays every game from its first event. Default 2000.
    pub snapshot_every: u64,
    /// `[store.encryption]`: the log and its backups sealed at rest (`store/seal.rs`).
    pub encryption: EncryptionConfig,
}

/// `[store.encryption]`: where the key ring comes from, at most one of the three; none: the
/// log is not encrypted. A key ring is lines `ID HEX` (ID 1-65535, 32 bytes as 64 hex digits),
/// the last one sealing new writes (README "Encryption at rest").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// A file holding the key ring (readable by the server only).
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key ring.
    pub key_env: Option<String>,
    /// A command (run with `sh -c`) that prints the key ring: a secrets manager's CLI.
    pub key_command: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            commit_window_us: 2000,
            max_batch: 8192,
            queue_len: 65_536,
            retention_hours: 168,
            cache_mib: 16,
            snapshot_every: 2000,
            encryption: EncryptionConfig::default(),
        }
    }
}

/// `[models]`: ONNX models.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Directory holding `manifest.toml` and the `.onnx` files. Default `./models`. A missing
    /// directory means no models (win probability and model-backed plugin outputs fall back).
    pub dir: PathBuf,
    /// When `dir` has no `manifest.toml`, serve the models built into the binary (written to
    /// `data_dir/builtin/models`). Default true.
    pub builtin: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig { dir: PathBuf::from("./models"), builtin: true }
    }
}

/// `[server]`: where things live and listen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Data directory: TLS certificate, the event log (`opensports.redb`), the compiled-plugin
    /// cache. Default `./data`.
    pub data_dir: PathBuf,
    /// QUIC ingest address. Default `0.0.0.0:4433`.
    pub quic_listen: SocketAddr,
    /// HTTP + WebSocket address. Default `0.0.0.0:8080`.
    pub http_listen: SocketAddr,
    /// PEM certificate chain for QUIC; with `tls_key`. Default: self-signed in `data_dir/tls/`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// HTTP connections open at once (WebSocket sessions count apart, once upgraded); more
    /// are closed at accept. Default 1024.
    pub max_http_connections: usize,
    /// Of `max_http_connections`, how many one source address may hold at once (plain HTTP,
    /// SSE streams and WebSocket upgrades in progress together). Default 128.
    pub max_http_per_address: usize,
    /// Connections accepted beyond `max_http_connections` (2 per address at most), so health
    /// probes and admin calls still get in when the cap is full: each serves one request
    /// (no streaming: SSE and WebSocket are refused `503` on them) within 2 s. Default 64.
    pub http_reserve_connections: usize,
    /// Seconds a client has to send a request's headers; past it the connection is closed.
    /// Default 10.
    pub http_header_timeout_secs: u64,
    /// Seconds a client has, after its headers, to send the whole request body (every route,
    /// uploads included); past it the request is answered `408 body_timeout` and the
    /// connection closed. Default 30.
    pub http_body_timeout_secs: u64,
    /// Serve the HTTP port (API, dashboard, `/ws` → `wss://`) over TLS with the QUIC
    /// certificate (`tls_cert`/`tls_key`, or the self-signed one). Default false.
    pub http_tls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("./data"),
            max_http_connections: 1024,
            max_http_per_address: 128,
            http_reserve_connections: 64,
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            http_tls: false,
            quic_listen: SocketAddr::from(([0, 0, 0, 0], 4433)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[ingest]`: the QUIC publisher side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Static publisher tokens accepted in `hello` besides API keys, allowed to write every
    /// game (scope `*`); each is its own identity, `token-{first 8 hex of its SHA-256}`, with
    /// its own game quota, rate bucket and games. Default `[]`: only
    /// publisher keys (`opensports keys create --role publisher`).
    pub tokens: Vec<String>,
    /// Largest frame (codec byte + body) in bytes. Default 65536.
    pub max_frame_bytes: u32,
    /// Concurrent unidirectional (game) streams per connection. Default 256.
    pub max_streams_per_connection: u32,
    /// Concurrent publisher connections. Default 1024.
    pub max_connections: usize,
    /// Seconds a new connection has to finish its handshake, and then to send its hello.
    /// Default 5.
    pub hello_timeout_secs: u64,
    /// Connections in their handshake or hello at once; a publisher connection slot
    /// (`max_connections`) is taken only after the hello. While more than half are in use,
    /// new addresses are validated with a QUIC Retry first. Default 256.
    pub max_handshakes: usize,
    /// Seconds a started frame has to arrive whole; past it the stream is stopped with
    /// `frame_timeout` (a stream may idle between frames as long as it likes). Default 30.
    pub frame_timeout_secs: u64,
    /// Most tracking entities (distinct `game/{id}/tracking/{entity}` topics) per game. Default 256.
    pub max_tracking_entities_per_game: usize,
    /// Furthest an event's seq may jump past its game's highest seq (a new game's first seq
    /// counts from 0); beyond it the event is refused `seq_too_far`. Default 100000.
    pub max_seq_jump: u64,
}

/// Default of `ingest.max_seq_jump`.
pub const DEFAULT_MAX_SEQ_JUMP: u64 = 100_000;

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            tokens: Vec::new(),
            max_frame_bytes: opensports_proto::codec::DEFAULT_MAX_FRAME,
            max_streams_per_connection: 256,
            max_connections: 1024,
            hello_timeout_secs: 5,
            max_handshakes: 256,
            frame_timeout_secs: 30,
            max_tracking_entities_per_game: 256,
            max_seq_jump: DEFAULT_MAX_SEQ_JUMP,
        }
    }
}

/// `[pipeline]`: shard threads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Shard threads; 0 means one per core. Default 0.
    pub shards: usize,
    /// Bounded queue length per shard; a full queue stops reading the QUIC stream. Default 8192.
    pub queue_len: usize,
    /// Most games held at once; events of further new games are rejected. Default 10000.
    pub max_games: usize,
    /// Seconds an ended game stays in memory (state topic, games list). Default 600.
    pub ended_game_ttl_secs: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { shards: 0, queue_len: 8192, max_games: 10_000, ended_game_ttl_secs: 600 }
    }
}

/// `[fanout]`: topics and WebSocket subscribers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutConfig {
    /// Messages kept per topic for `since` resume. Default 1024.
    pub history_len: usize,
    /// Bytes of messages kept per topic for `since` resume (whichever of this and
    /// `history_len` is reached first; the latest value is always kept). Default 2 MiB.
    pub history_bytes: usize,
    /// Bounded queue per subscriber for `all`-mode subscriptions. Default 4096.
    pub queue_len: usize,
    /// Most topics held at once; publications to further new topics are dropped. Default 100000.
    pub max_topics: usize,
    /// Most patterns one WebSocket connection may subscribe. Default 256.
    pub max_subscriptions: usize,
    /// Bytes of publications one `all`-mode subscriber's queue holds at most (besides
    /// `queue_len` messages); past either it is `lagged`. Default 8 MiB.
    pub queue_bytes: usize,
    /// Seconds an SSE stream lasts at most; it then ends and the client resumes where it was
    /// (an `EventSource` reconnects with `Last-Event-ID` by itself). Default 1800.
    pub sse_max_lifetime_secs: u64,
    /// `since` keys (WebSocket `sub`, SSE resume points) one connection may hold at once, all
    /// its subscriptions together; more is `bad_since`. Default 4096.
    pub max_since_keys: usize,
    /// Largest client → server WebSocket message, bytes. Default 65536.
    pub max_client_message_bytes: usize,
    /// Largest batch frame (JSON array of queued messages), bytes. Default 16384: each session's
    /// socket write buffer holds about one frame past its 16 KiB, so this bounds per-subscriber
    /// memory (1,000 subscribers) as much as it batches.
    pub max_batch_bytes: usize,
    /// Concurrent WebSocket connections. Default 10000.
    pub max_connections: usize,
    /// A WebSocket session without any subscription for this long is closed (1008): an idle
    /// upgrade holds a connection slot and memory. Default 30.
    pub idle_timeout_secs: u64,
    /// Longest delay a subscriber may ask for (`delay_ms`, `?delay=`), milliseconds. Default
    /// 120000.
    pub max_delay_ms: u64,
    /// Bytes of publications one delay line (a topic at one delay) holds before releasing
    /// them; past it the oldest are dropped and its subscribers get `reset` and the next value.
    /// Default 4 MiB.
    pub delay_line_bytes: usize,
    /// Bytes all delay lines together hold, the same way. Default 256 MiB.
    pub delay_bytes: usize,
    /// Delay lines at once (one per topic and delay with subscribers). Default 10000.
    pub max_delay_lines: usize,
    /// The delay lines' clock thread asks for real-time priority (`SCHED_RR` 1) where the
    /// process may (root or `CAP_SYS_NICE`; otherwise it stays a normal thread, logged): on
    /// a machine whose cores are busy, a normal thread's wake-ups wait for a core and releases
    /// run late by that much. Its work per wake-up is bounded (one release of the lines then
    /// due). Default true.
    pub delay_clock_realtime: bool,
}

impl FanoutConfig {
    /// A delay (ms) a subscriber or an operator may ask for, or why not.
    pub fn check_delay(&self, ms: u64) -> Result<(), String> {
        match ms > self.max_delay_ms {
            true => Err(format!("a delay is at most {} ms (fanout.max_delay_ms)", self.max_delay_ms)),
            false => Ok(()),
        }
    }
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            history_len: 1024,
            history_bytes: 2 << 20,
            queue_len: 4096,
            max_topics: 100_000,
            max_subscriptions: 256,
            max_since_keys: 4096,
            sse_max_lifetime_secs: 1800,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            max_client_message_bytes: 64 * 1024,
            max_batch_bytes: 16 * 1024,
            max_connections: 10_000,
            idle_timeout_secs: 30,
            max_delay_ms: 120_000,
            delay_line_bytes: 4 << 20,
            delay_bytes: 256 << 20,
            max_delay_lines: 10_000,
            delay_clock_realtime: true,
        }
    }
}

/// Default of the byte bound of an `all`-mode queue (`fanout.queue_bytes`): 8 MiB.
pub const DEFAULT_QUEUE_BYTES: usize = 8 << 20;

/// `[plugins]`: sandboxed WASM analytics plugins and their limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Plugins to load: `[[plugins.load]]` tables with `path` (a `.wasm`), optional `name`
    /// (default: the file name, `_` → `-`) and optional `config` (a table handed to the
    /// plugin's `init` as JSON). Default: none.
    pub load: Vec<PluginEntry>,
    /// With no `load` entries, load the four shipped plugins built into the binary (written to
    /// `data_dir/builtin/plugins`). Default true.
    pub builtin: bool,
    /// CPU-time deadline per event per plugin on its shard thread, microseconds (a call is also
    /// cut after 100 times this in wall-clock time). Default 1000.
    pub deadline_us: u64,
    /// Linear memory cap per plugin instance, MiB. Default 16.
    pub memory_mib: usize,
    /// Emits per event per plugin. Default 64.
    pub max_emits_per_event: usize,
    /// Bytes per emit. Default 65536.
    pub max_emit_bytes: usize,
    /// Failures within a minute on one game's events after which a plugin is quarantined for
    /// that game (its other games keep it). Default 5.
    pub quarantine_after: usize,
    /// Games a plugin may be quarantined for before it is quarantined for every game (a bug
    /// in the plugin, not one game's data). Default 3.
    pub quarantine_games: usize,
    /// Events kept per game for rebuilding a plugin instance by replay. Default 100000. With
    /// the log on, an event keeps its bytes in memory only until the log has committed it (16
    /// bytes per event after that; a rebuild reads it back from the log).
    pub max_history_events: usize,
    /// Where compiled plugins are cached, keyed by the wasm's hash and the engine's
    /// (default `<data_dir>/plugin-cache`). Servers of one version may share one.
    pub cache_dir: Option<PathBuf>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            load: Vec::new(),
            builtin: true,
            deadline_us: 1000,
            memory_mib: 16,
            max_emits_per_event: 64,
            max_emit_bytes: 64 * 1024,
            quarantine_after: 5,
            quarantine_games: 3,
            max_history_events: 100_000,
            cache_dir: None,
        }
    }
}

/// One `[[plugins.load]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    pub path: PathBuf,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// This plugin's memory cap, MiB, instead of `plugins.memory_mib` (a TypeScript or Python
    /// plugin carries its language's runtime: plugin-sdk/README.md gives each one's size).
    #[serde(default)]
    pub memory_mib: Option<usize>,
    /// This plugin's CPU deadline per event, microseconds, instead of `plugins.deadline_us`.
    #[serde(default)]
    pub deadline_us: Option<u64>,
}

impl PluginEntry {
    pub fn new(path: PathBuf) -> PluginEntry {
        PluginEntry { path, name: None, config: None, memory_mib: None, deadline_us: None }
    }

    /// The plugin's name: configured, or the file stem with `_` as `-`.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|s| s.to_string_lossy().replace('_', "-"))
                .unwrap_or_else(|| "plugin".into())
        })
    }

    /// The `config` table as JSON (`{}` when absent).
    pub fn config_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.config.clone().unwrap_or_default()).unwrap_or_else(|_| b"{}".to_vec())
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let config: Config =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values the types cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, problem: &str| Err(ConfigError::Invalid { field, problem: problem.into() });
        if self.ingest.tokens.iter().any(|t| t.len() < 8) {
            return invalid("ingest.tokens", "a token is at least 8 bytes");
        }
        if let Err(e) = crate::triggers::Triggers::new(&self.triggers.rules, self.triggers.defaults) {
            return invalid("triggers.rules", &e);
        }
        if let Some(p) = self.telemetry.problem() {
            return invalid("telemetry", &p);
        }
        let enc = &self.store.encryption;
        if [enc.key_file.is_some(), enc.key_env.is_some(), enc.key_command.is_some()]
            .iter()
            .filter(|s| **s)
            .count()
            > 1
        {
            return invalid("store.encryption", "set one of key_file, key_env, key_command");
        }
        if let Err(e) = crate::graphics::Graphics::new(&self.graphics.fields) {
            return invalid("graphics.fields", &e);
        }
        if let Some(p) =
            self.auth.public_topics.iter().find(|p| opensports_proto::topic::Pattern::parse(p).is_err())
        {
            return invalid("auth.public_topics", &format!("{p:?} is not a topic pattern"));
        }
        if self.ingest.max_frame_bytes < 64 {
            return invalid("ingest.max_frame_bytes", "must be at least 64");
        }
        if self.cluster.enabled {
            if !self.store.enabled {
                return invalid(
                    "cluster.enabled",
                    "a cluster node needs the event log (store.enabled = true)",
                );
            }
            if !(1..=5).contains(&self.cluster.replicas) {
                return invalid("cluster.replicas", "JetStream keeps 1 to 5 copies");
            }
            if self.cluster.urls.is_empty() {
                return invalid("cluster.urls", "name at least one NATS server");
            }
            if !opensports_proto::event::valid_game_id(&self.cluster.node_id) {
                return invalid("cluster.node_id", "1..=64 bytes of [A-Za-z0-9_.-]");
            }
        }
        if let Err((field, problem)) = self.analyst.check() {
            return invalid(field, problem);
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid("server.tls_cert", "tls_cert and tls_key go together");
        }
        let positive: [(&'static str, usize); 34] = [
            ("analyst.max_per_minute", self.analyst.max_per_minute as usize),
            ("analyst.max_age_secs", self.analyst.max_age_secs as usize),
            ("quality.stale_after_ms", self.quality.stale_after_ms as usize),
            ("quality.recent_events", self.quality.recent_events as usize),
            ("auth.max_events_per_sec_per_key", self.auth.max_events_per_sec_per_key as usize),
            ("auth.max_games_per_key", self.auth.max_games_per_key),
            ("auth.max_ws_per_address", self.auth.max_ws_per_address),
            ("ingest.max_streams_per_connection", self.ingest.max_streams_per_connection as usize),
            ("ingest.max_connections", self.ingest.max_connections),
            ("ingest.max_seq_jump", self.ingest.max_seq_jump as usize),
            ("ingest.hello_timeout_secs", self.ingest.hello_timeout_secs as usize),
            ("server.max_http_connections", self.server.max_http_connections),
            ("server.max_http_per_address", self.server.max_http_per_address),
            ("server.http_header_timeout_secs", self.server.http_header_timeout_secs as usize),
            ("server.http_body_timeout_secs", self.server.http_body_timeout_secs as usize),
            ("ingest.max_handshakes", self.ingest.max_handshakes),
            ("ingest.frame_timeout_secs", self.ingest.frame_timeout_secs as usize),
            ("pipeline.queue_len", self.pipeline.queue_len),
            ("pipeline.max_games", self.pipeline.max_games),
            ("fanout.history_len", self.fanout.history_len),
            ("fanout.history_bytes", self.fanout.history_bytes),
            ("fanout.queue_len", self.fanout.queue_len),
            ("fanout.max_topics", self.fanout.max_topics),
            ("fanout.max_subscriptions", self.fanout.max_subscriptions),
            ("fanout.max_since_keys", self.fanout.max_since_keys),
            ("fanout.sse_max_lifetime_secs", self.fanout.sse_max_lifetime_secs as usize),
            ("fanout.queue_bytes", self.fanout.queue_bytes),
            ("fanout.max_connections", self.fanout.max_connections),
            ("fanout.idle_timeout_secs", self.fanout.idle_timeout_secs as usize),
            ("fanout.delay_line_bytes", self.fanout.delay_line_bytes),
            ("fanout.delay_bytes", self.fanout.delay_bytes),
            ("fanout.max_delay_lines", self.fanout.max_delay_lines),
            ("store.max_batch", self.store.max_batch),
            ("store.queue_len", self.store.queue_len),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(field, "must be greater than 0");
        }
        for entry in &self.plugins.load {
            if !entry.path.is_file() {
                return invalid(
                    "plugins.load.path",
                    &format!(
                        "{} is not a file (build it with `opensports plugin build`)",
                        entry.path.display()
                    ),
                );
            }
            let name = entry.name();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return invalid(
                    "plugins.load.name",
                    "plugin names are [A-Za-z0-9_-]+ (they are a topic level)",
                );
            }
        }
        if self.plugins.memory_mib == 0 || self.plugins.memory_mib > 256 {
            return invalid("plugins.memory_mib", "must be 1..=256");
        }
        if self.plugins.deadline_us == 0
            || self.plugins.quarantine_after == 0
            || self.plugins.quarantine_games == 0
        {
            return invalid(
                "plugins.deadline_us",
                "deadline_us, quarantine_after and quarantine_games must be greater than 0",
            );
        }
        if self.fanout.max_batch_bytes < 1024 {
            return invalid("fanout.max_batch_bytes", "must be at least 1024");
        }
        Ok(())
    }

    /// Shard count after resolving 0 to the number of cores.
    pub fn shard_count(&self) -> usize {
        match self.pipeline.shards {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../../opensports.example.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        parsed.validate().unwrap();
        let d = Config::default();
        assert_eq!(parsed.fanout.history_len, d.fanout.history_len);
        assert_eq!(parsed.ingest.max_frame_bytes, d.ingest.max_frame_bytes);
        assert_eq!(parsed.pipeline.queue_len, d.pipeline.queue_len);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("[fanout]\nhistory_lenn = 3\n").is_err());
        let c: Config = toml::from_str("[fanout]\nqueue_len = 0\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("fanout.queue_len"), "{err}");
        let c: Config = toml::from_str("[store.encryption]\nkey_file = \"a\"\nkey_env = \"B\"\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("store.encryption"));
    }

    #[test]
    fn a_plugin_file_that_does_not_exist_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("box.wasm");
        let text = format!("[[plugins.load]]\npath = {:?}\n", wasm.display().to_string());
        let c: Config = toml::from_str(&text).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("plugins.load.path") && err.contains("box.wasm"), "{err}");
        std::fs::write(&wasm, b"\0asm").unwrap();
        assert!(c.validate().is_ok(), "the file exists now");
    }
}
