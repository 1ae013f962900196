//! Helpers for the integration tests: a real server on loopback ports chosen by the OS, in a
//! temporary data dir, with clients pinned to its self-signed certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod nats;
pub mod sse_client;

use std::time::Duration;

use opensports_client::{Publisher, PublisherConfig, Subscriber, Trust};
use opensports_proto::ws::{Publication, ServerMsg};
use opensports_proto::{Event, Sport};
use opensports_server::auth::{NewKey, Role};
use opensports_server::{Config, Listeners, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "test-token";

/// How long a test waits for something the server is expected to do. A guard against hangs on
/// a shared, noisy machine, never a performance threshold.
pub const WAIT: Duration = Duration::from_secs(60);

/// This process's resident memory in KiB (in-process tests: the server runs in it), for the
/// flood tests' memory bounds.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Source time the simulated games of the tests start at (2023-11-14).
pub const SIM_START_US: i64 = 1_700_000_000_000_000;

/// The events of the simulated `sport` game from `seed`, starting at source time `start_us`.
pub fn sim_events(sport: Sport, seed: u64, start_us: i64) -> Vec<Event> {
    opensports_server::sim::generate(sport, seed, start_us).events.into_iter().map(|t| t.event).collect()
}

/// Every real game feed in `OPENSPORTS_DATA` (relative to it), one per provider format.
pub const REAL_FEEDS: &[&str] = &[
    "nba/nba_live_pbp_0022000001.json",
    "nba/nba_stats_playbyplayv2_0021900001.json",
    "nfl/nfl_gamecenter_2019090500_GB_at_CHI.json",
    "soccer/statsbomb_15986_events.json",
    "soccer/wyscout_v2_match_2499773_events.json",
    "f1/fastf1test_2020_70thAnniv_FP2_timing_data.raw",
];

/// The events of a real game in `OPENSPORTS_DATA` (`file` relative to it, parsed as the server
/// parses a feed), or `None` without the data.
pub fn real_events(file: &str) -> Option<Vec<Event>> {
    let dir = std::path::PathBuf::from(std::env::var_os("OPENSPORTS_DATA")?);
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let format = opensports_server::feeds::detect(&bytes).unwrap();
    let stem = std::path::Path::new(file).file_stem().and_then(|s| s.to_str());
    let opts = opensports_server::feeds::Options { file_stem: stem, ..Default::default() };
    let parsed = opensports_server::feeds::parse(format, &bytes, &opts).unwrap();
    Some(parsed.game.events.into_iter().map(|t| t.event).collect())
}

/// [`real_events`], or the simulated `sport` game from `seed` without the data.
pub fn real_or_sim(file: &str, sport: Sport, seed: u64) -> Vec<Event> {
    real_events(file).unwrap_or_else(|| sim_events(sport, seed, SIM_START_US))
}

/// A running server and its data dir (removed on drop).
#[derive(Debug)]
pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    config: Config,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test defaults (2 shards, token [`TOKEN`]) changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.ingest.tokens = vec![TOKEN.into()];
        // Most tests read anonymously; the auth tests set their own `public_topics`.
        config.auth.public_topics = vec!["#".into()];
        config.pipeline.shards = 2;
        config.models.dir = workspace().join("models");
        // Tests name the plugins they load (the built-in four are tested on their own).
        config.plugins.builtin = false;
        // One compiled-plugin cache for every test server: a component is compiled once.
        config.plugins.cache_dir = Some(workspace().join("target/plugin-cache"));
        // Test machines are shared and noisy: a 1 ms wall-clock deadline would flag preemption,
        // not plugins. The deadline itself is tested by the hostile tests with their own value.
        config.plugins.deadline_us = 50_000;
        tweak(&mut config);
        let running = opensports_server::start(config.clone(), Listeners::loopback().unwrap()).await.unwrap();
        TestServer { running: Some(running), dir, config }
    }

    /// Graceful shutdown, then a new server on the same data dir (new ports).
    pub async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        let running =
            opensports_server::start(self.config.clone(), Listeners::loopback().unwrap()).await.unwrap();
        self.running = Some(running);
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn publisher_config(&self) -> PublisherConfig {
        PublisherConfig::new(
            self.running().quic_addr,
            Trust::Fingerprint(self.running().fingerprint.clone()),
            TOKEN,
        )
    }

    pub async fn publisher(&self) -> Publisher {
        Publisher::connect(self.publisher_config()).await.unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running().http_addr)
    }

    pub async fn subscriber(&self) -> Subscriber {
        Subscriber::connect(&self.ws_url()).await.unwrap()
    }

    /// Publishes `events` (one game) on a new connection, waits for every ack and for the
    /// game's state to reach the last one.
    pub async fn publish_all(&self, events: &[Event]) {
        let mut publisher = self.publisher().await;
        for e in events {
            publisher.send(e).await.unwrap();
        }
        publisher.flush(WAIT).await.unwrap();
        self.wait_for_seq(&events[0].game, events.last().unwrap().seq).await;
    }

    /// GET a path on the HTTP port; returns (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.running().http_addr, path).await
    }

    /// POST `body` with `content_type` to a path on the HTTP port; returns (status, body).
    pub async fn post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        http_request(self.running().http_addr, "POST", path, Some((content_type, body))).await
    }

    /// Creates an API key on the running server; returns the key.
    pub fn key(&self, role: Role, scopes: &[&str]) -> String {
        let new =
            NewKey { name: "test".into(), role, scopes: scopes.iter().map(|s| s.to_string()).collect() };
        self.running().auth.create_key(new, "test", None).unwrap().0
    }

    /// A new admin key.
    pub fn admin_key(&self) -> String {
        self.key(Role::Admin, &[])
    }

    /// A request with `Authorization: Bearer {key}`; returns (status, body as text).
    pub async fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> (u16, String) {
        let (status, bytes) = http_call(self.running().http_addr, method, path, body, Some(key)).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// GET as admin.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        self.call(&self.admin_key(), "GET", path, None).await
    }

    /// POST as admin.
    pub async fn admin_post(&self, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        self.call(&self.admin_key(), "POST", path, Some((content_type, body))).await
    }

    /// The value of one Prometheus sample, e.g. `opensports_ingest_rejected_total{reason="bad_json"}`.
    /// 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        parse_metric(&body, sample)
    }

    /// The latest publication of `topic` as JSON, if it has one.
    pub fn latest_json(&self, topic: &str) -> Option<serde_json::Value> {
        serde_json::from_str(self.running().fanout.latest(topic)?.data()).ok()
    }

    /// Polls `GET /v1/games/{id}` until the state's `last_seq` reaches `seq`.
    pub async fn wait_for_seq(&self, game: &str, seq: u64) {
        self.poll_seq(None, game, seq).await;
    }

    /// [`TestServer::wait_for_seq`] reading with `key` (servers without public topics).
    pub async fn wait_for_seq_as(&self, key: &str, game: &str, seq: u64) {
        self.poll_seq(Some(key), game, seq).await;
    }

    async fn poll_seq(&self, key: Option<&str>, game: &str, seq: u64) {
        let path = format!("/v1/games/{game}");
        for _ in 0..500 {
            let (status, body) = match key {
                Some(k) => self.call(k, "GET", &path, None).await,
                None => self.get(&path).await,
            };
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if v["last_seq"].as_u64() >= Some(seq) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("game {game} never reached seq {seq}");
    }

    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub fn parse_metric(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, "GET", path, None).await
}

/// One HTTP/1.1 request (`body`: content type and bytes); returns (status, body as text).
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> (u16, String) {
    let (status, bytes) = http_request_bytes(addr, method, path, body).await;
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// [`http_request`] with the body as bytes (binary bodies: backups).
pub async fn http_request_bytes(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
) -> (u16, Vec<u8>) {
    http_call(addr, method, path, body, None).await
}

/// One HTTP/1.1 request, with `Authorization: Bearer` when `bearer` is given.
pub async fn http_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    bearer: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(key) = bearer {
        req.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        req.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    if let Some((_, bytes)) = body {
        s.write_all(bytes).await.unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = &raw[split..];
    let body = if head.contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_vec() };
    (status, body)
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&s[..eol]).unwrap_or("0");
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest.get(n + 2..).unwrap_or_default();
    }
    out
}

/// Reads messages until `pred` holds for one, with an overall deadline; returns all read.
pub async fn read_until(
    sub: &mut Subscriber,
    deadline: Duration,
    mut pred: impl FnMut(&ServerMsg) -> bool,
) -> Vec<ServerMsg> {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let m = sub
            .next_timeout(left)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("timed out; got {} messages", got.len()));
        let done = pred(&m);
        got.push(m);
        if done {
            return got;
        }
    }
}

/// Subscribes `sub` to `topic` with `since: 0` (its whole kept history, in `all` mode) and
/// returns everything up to and with `subscribed`.
pub async fn from_start(sub: &mut Subscriber, topic: &str) -> Vec<ServerMsg> {
    let since = std::collections::BTreeMap::from([(topic.to_string(), 0)]);
    let mode = opensports_proto::ws::Mode::All;
    let op = opensports_proto::ws::ClientOp::Sub {
        topics: vec![topic.into()],
        mode,
        since,
        delay_ms: 0,
        id: None,
    };
    sub.send_op(&op).await.unwrap();
    read_until(sub, WAIT, |m| matches!(m, ServerMsg::Subscribed { .. })).await
}

/// The publications (msg or snapshot) among `msgs`.
/// The data of every `msg` kept on `topic`, oldest first (a `from_start` subscription).
pub async fn history_data(sub: &mut Subscriber, topic: &str) -> Vec<serde_json::Value> {
    from_start(sub, topic)
        .await
        .into_iter()
        .filter_map(|m| if let ServerMsg::Msg(p) = m { Some(p.data) } else { None })
        .collect()
}

/// Polls `f` every 50 ms until it gives a value; panics after `limit`.
pub async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn publications(msgs: &[ServerMsg]) -> Vec<&Publication> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Msg(p) | ServerMsg::Snapshot(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The repository root.
pub fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The shipped plugins (every crate in plugins/), built for wasm32 once per test process with
/// the same code as `opensports plugin build`.
pub fn shipped_plugins() -> &'static [std::path::PathBuf] {
    static BUILT: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let ws = workspace();
        let names = opensports_server::cli::plugin::shipped(&ws);
        let files = opensports_server::cli::plugin::build(&ws, &names, None, true)
            .expect("building the shipped plugins");
        assert_eq!(files.len(), names.len(), "one .wasm per plugin crate: {files:?}");
        files
    })
}

/// The built `.wasm` of one shipped plugin (`basketball-boxscore`, ...).
pub fn plugin_wasm(name: &str) -> std::path::PathBuf {
    let file = format!("{}.wasm", name.replace('-', "_"));
    shipped_plugins().iter().find(|p| p.ends_with(&file)).cloned().unwrap_or_else(|| panic!("no {file}"))
}

/// A hostile fixture from tests/fixtures/hostile.
pub fn hostile_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile").join(format!("{name}.wat"))
}

/// The server as a child process (`test-server`), for tests that `kill -9` it. Ports are
/// chosen once, so a restart on the same data dir listens where clients reconnect.
#[derive(Debug)]
pub struct ChildServer {
    pub data_dir: std::path::PathBuf,
    pub quic_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
    pub fingerprint: String,
    /// An admin key, made offline in the data dir before the first start.
    pub admin_key: String,
    config: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl ChildServer {
    /// `extra` is appended to the TOML config (e.g. `[[plugins.load]]` tables).
    pub fn new(data_dir: &std::path::Path, extra: &str) -> ChildServer {
        let quic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = data_dir.with_extension("toml");
        let models = workspace().join("models");
        // Tests name the plugins they load (unless `extra` has its own `[plugins]`). Ended games
        // stay in memory for the whole test (a long crash-cycle run outlasts the default TTL,
        // and recovery rightly skips games that ended longer ago).
        let plugins = if extra.contains("[plugins]") { "" } else { "[plugins]\nbuiltin = false\n" };
        // One compiled-plugin cache for every test server (a component is compiled once).
        let cache =
            format!("cache_dir = {:?}\n", workspace().join("target/plugin-cache").display().to_string());
        let (plugins, extra) = if plugins.is_empty() {
            ("".to_string(), extra.replacen("[plugins]\n", &format!("[plugins]\n{cache}"), 1))
        } else {
            (format!("{plugins}{cache}"), extra.to_string())
        };
        let text = format!(
            "[server]\ndata_dir = {:?}\nquic_listen = \"{quic}\"\nhttp_listen = \"{http}\"\n\
             [ingest]\ntokens = [\"{TOKEN}\"]\n[pipeline]\nshards = 2\nended_game_ttl_secs = 86400\n[models]\ndir = {:?}\n\
             [auth]\npublic_topics = [\"#\"]\n{plugins}{extra}",
            data_dir.display().to_string(),
            models.display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        let keys = opensports_server::auth::KeyStore::open(data_dir).unwrap();
        let admin = NewKey { name: "test-admin".into(), role: Role::Admin, scopes: vec![] };
        let admin_key = keys.create(admin, "test", None).unwrap().0;
        drop(keys);
        ChildServer {
            admin_key,
            data_dir: data_dir.into(),
            quic_addr: quic,
            http_addr: http,
            fingerprint: String::new(),
            config,
            child: None,
        }
    }

    /// Starts the process and waits for it to serve; `Err(stderr)` if it exits instead.
    pub async fn start(&mut self) -> Result<(), String> {
        use tokio::io::AsyncBufReadExt;
        // Cargo builds the package's binaries next to the test binaries' `deps/` directory.
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("test-server");
        // The log goes to a file beside the data dir (a pipe nobody reads could fill and stall
        // the server); a failed start returns it.
        let log_path = self.data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let mut child = tokio::process::Command::new(bin)
            .arg(&self.config)
            .env("RUST_LOG", std::env::var("OPENSPORTS_CHILD_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await;
        match line {
            Ok(Ok(Some(l))) if l.starts_with("ready ") => {
                self.fingerprint = l["ready ".len()..].trim().to_string();
                self.child = Some(child);
                Ok(())
            }
            _ => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(std::fs::read_to_string(&log_path).unwrap_or_default())
            }
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    pub fn publisher_config(&self) -> PublisherConfig {
        PublisherConfig::new(self.quic_addr, Trust::Fingerprint(self.fingerprint.clone()), TOKEN)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http_addr)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.http_addr, path).await
    }

    /// GET with the admin key.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let (status, bytes) = http_call(self.http_addr, "GET", path, None, Some(&self.admin_key)).await;
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The seqs of `game` in the log, in the log's order, over HTTP (export).
    pub async fn logged_seqs(&self, game: &str) -> Vec<u64> {
        let (status, body) = self.admin_get(&format!("/v1/games/{game}/events")).await;
        if status == 404 && body.contains("no_such_game") {
            // Nothing of the game committed yet (legitimate before its first ack).
            return Vec::new();
        }
        assert_eq!(status, 200, "{body}");
        body.lines().map(|l| serde_json::from_str::<Event>(l).unwrap().seq).collect()
    }
}

/// A compact JWS: `header.payload.signature`, each base64url.
pub fn jws(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    sign: impl Fn(&[u8]) -> Vec<u8>,
) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let signing_input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&sig))
}

/// HMAC-SHA256 signing with `secret`, for [`jws`].
pub fn hs256(secret: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    move |m| ring::hmac::sign(&key, m).as_ref().to_vec()
}

/// A basketball game's first `n` simulated events under the id `id`.
pub fn game_events(id: &str, n: usize) -> Vec<Event> {
    let mut evs = sim_events(Sport::Basketball, 7, SIM_START_US);
    evs.truncate(n);
    for e in &mut evs {
        e.game = id.into();
    }
    evs
}

/// [`game_events`] in which every named player is the same person: the box score plugin's
/// outputs then break its own rules, and it is quarantined for that game (and only that one).
pub fn boxscore_breaking_events(id: &str, n: usize) -> Vec<Event> {
    game_events(id, n)
        .into_iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e).unwrap();
            if v.get("player").is_some_and(|p| p.is_string()) {
                v["player"] = "John Smith".into();
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

/// A publisher connected to `server` with `token` (the error as text).
pub async fn publisher_with(server: &TestServer, token: &str) -> Result<Publisher, String> {
    let mut cfg = server.publisher_config();
    cfg.token = token.into();
    Publisher::connect(cfg).await.map_err(|e| e.to_string())
}

/// Sends `evs`, flushes, and returns the reject and error codes received.
pub async fn publish_codes(p: &mut Publisher, evs: &[Event]) -> Vec<String> {
    for e in evs {
        p.send(e).await.unwrap();
    }
    p.flush(WAIT).await.unwrap();
    p.take_notices()
        .into_iter()
        .filter_map(|n| match n {
            opensports_proto::control::Control::Reject { code, .. }
            | opensports_proto::control::Control::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

/// The `opensports` binary, built now from the current sources into this test's target dir
/// (another package's binary is not rebuilt for this crate's tests; a stale one would lie).
pub fn opensports_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap().to_path_buf();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "-q", "-p", "opensports-server", "--bin", "opensports", "--target-dir"])
        .arg(target_dir)
        .status()
        .unwrap();
    assert!(status.success(), "building the opensports binary");
    let bin = profile_dir.join("opensports");
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// The browser driver's directory (tests/browser), or `None` (the `what` test skipped,
/// outside CI only) when chromium or playwright-core is missing; under CI a missing one fails.
pub fn browser_dir(what: &str) -> Option<std::path::PathBuf> {
    use std::path::Path;
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = [
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!browser_dir.join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci in tests/browser)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide {missing:?}");
        eprintln!("SKIPPED {what} browser test: missing {missing:?}");
        return None;
    }
    Some(browser_dir)
}
