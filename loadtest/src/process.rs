//! The server under test in its own process, like nats-server: the load test starts itself
//! again with `--serve ours|floor --data-dir DIR`, and that child runs OpenSports (or the floor
//! relay) on its own tokio runtime, prints `READY <quic> <http> <fingerprint>` on stdout and
//! serves until its stdin closes. So the server's CPU and RSS are measured apart from the load
//! generator's, every run starts with fresh metrics, and neither side's tasks queue behind the
//! other's on one runtime.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Plan, Target, floor};

/// What the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Ours,
    Floor,
}

impl Server {
    fn arg(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::Floor => "floor",
        }
    }
}

/// A server child process; killed on drop, its data directory removed (unless it was given).
pub struct ServerProcess {
    child: Child,
    pub quic: SocketAddr,
    pub http: SocketAddr,
    pub fingerprint: String,
    _dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn target(&self) -> Target {
        Target::Ours { quic: self.quic, http: self.http, fingerprint: self.fingerprint.clone() }
    }

    /// The server's Prometheus text from `GET /metrics` (OpenSports only).
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let mut tcp = tokio::net::TcpStream::connect(self.http).await?;
        tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: loadtest\r\n\r\n").await?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP body from /metrics")?;
        anyhow::ensure!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "GET /metrics: {head}");
        Ok(body.to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `server` for `plan` in a child process and waits until it listens.
pub async fn spawn(server: Server, plan: &Plan) -> anyhow::Result<ServerProcess> {
    spawn_node(server, plan, None).await
}

/// Like [`spawn`]; with `cluster` (NATS URLs, node id) the node joins that cluster.
pub async fn spawn_node(
    server: Server,
    plan: &Plan,
    cluster: Option<(&str, &str)>,
) -> anyhow::Result<ServerProcess> {
    let dir = tempfile::tempdir()?;
    let mut p = spawn_in(server, plan, cluster, dir.path()).await?;
    p._dir = Some(dir);
    Ok(p)
}

/// Like [`spawn_node`] on an existing data directory (kept when the process ends).
pub async fn spawn_in(
    server: Server,
    plan: &Plan,
    cluster: Option<(&str, &str)>,
    dir: &Path,
) -> anyhow::Result<ServerProcess> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(&exe);
    if let Some(mib) = plan.cache_mib {
        cmd.arg("--cache-mib").arg(mib.to_string());
    }
    if let Some((urls, node)) = cluster {
        cmd.args(["--cluster-urls", urls, "--node-id", node]);
    }
    if plan.encrypt {
        cmd.arg("--encrypt");
    }
    if let Some((endpoint, ratio)) = &plan.trace {
        cmd.arg("--trace-endpoint").arg(endpoint).arg("--trace-ratio").arg(ratio.to_string());
    }
    let mut child = cmd
        .args(["--serve", server.arg(), "--preset", &plan.name, "--subscribers"])
        .arg(plan.subs.to_string())
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {} as the server process", exe.display()))?;
    let stdout = child.stdout.take().context("child stdout")?;
    // Blocking read of one line; the `full` preset builds the plugins first (minutes when cold).
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        lines
            .find(|l| l.as_ref().map_or(true, |l| l.starts_with("READY ")))
            .transpose()
            .map(Option::unwrap_or_default)
    })
    .await??;
    let mut it = line.split_whitespace();
    let (Some("READY"), Some(quic), Some(http), Some(fp)) = (it.next(), it.next(), it.next(), it.next())
    else {
        let _ = child.kill();
        let _ = child.wait();
        anyhow::bail!("the server process did not start (it printed {line:?})");
    };
    Ok(ServerProcess {
        quic: quic.parse()?,
        http: http.parse()?,
        fingerprint: fp.to_string(),
        child,
        _dir: None,
    })
}

/// The child's side: runs the server until stdin closes.
pub async fn serve(
    server: Server,
    plan: &Plan,
    data_dir: &Path,
    cluster: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let (quic, http, fingerprint, running, _floor) = match server {
        Server::Ours => {
            let mut config = config(plan, data_dir)?;
            if let Some((urls, node)) = cluster {
                config.cluster.enabled = true;
                config.cluster.urls = urls.split(',').map(str::to_string).collect();
                config.cluster.node_id = node.to_string();
                config.cluster.replicas = config.cluster.urls.len().min(3);
            }
            let s = opensports_server::start(config, opensports_server::Listeners::loopback()?).await?;
            (s.quic_addr, s.http_addr, s.fingerprint.clone(), Some(s), None)
        }
        Server::Floor => {
            let f = floor::start(data_dir).await?;
            (f.quic_addr, f.http_addr, f.fingerprint.clone(), None, Some(f))
        }
    };
    println!("READY {quic} {http} {fingerprint}");
    // The parent holds our stdin: EOF (or its death) ends the run.
    let _ =
        tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new()))
            .await;
    if let Some(s) = running {
        s.shutdown().await;
    }
    Ok(())
}

/// OpenSports for a preset: loopback, the durable log on in `data_dir`, room for every
/// subscriber; every shipped plugin and model in `full` and `soak`, the built-in ones for
/// `--restart` (as `serve` runs), none otherwise (a pure relay).
fn config(plan: &Plan, data_dir: &Path) -> anyhow::Result<opensports_server::Config> {
    let mut config = opensports_server::Config::default();
    config.server.data_dir = data_dir.to_path_buf();
    config.ingest.tokens = vec!["loadtest".into()];
    config.fanout.max_connections = config.fanout.max_connections.max(plan.subs + 16);
    // Every subscriber comes from loopback (`scale` spreads them over loopback addresses, so
    // the per-address limits keep their defaults), and reads without a key.
    if plan.name != "scale" {
        config.auth.max_ws_per_address = config.auth.max_ws_per_address.max(plan.subs + 16);
    } else {
        // SSE streams are HTTP connections for their whole life: room for all of them.
        config.server.max_http_connections = config.server.max_http_connections.max(plan.subs + 1024);
    }
    config.auth.public_topics = vec!["#".into()];
    if let Some(mib) = plan.cache_mib {
        config.store.cache_mib = mib;
    }
    if plan.encrypt {
        // A fresh key ring of one random key, beside the log.
        let mut key = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let ring = data_dir.join("keyring");
        std::fs::write(&ring, format!("1 {hex}\n"))?;
        config.store.encryption.key_file = Some(ring);
    }
    if let Some((endpoint, ratio)) = &plan.trace {
        config.telemetry.endpoint = endpoint.clone();
        config.telemetry.sample_ratio = *ratio;
    }
    if plan.name == "soak" {
        // Ended games leave memory sooner, so the steady state comes within minutes.
        config.pipeline.ended_game_ttl_secs = 60;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if plan.processing {
        config.models.dir = workspace.join("models");
        let names = opensports_server::cli::plugin::shipped(&workspace);
        let built = opensports_server::cli::plugin::build(&workspace, &names, None, true)?;
        config.plugins.load = built.into_iter().map(opensports_server::config::PluginEntry::new).collect();
    } else if plan.name == "restart" {
        // What `serve` runs by default: the plugins and models built into the binary.
        config.models.dir = data_dir.join("no-models");
    } else {
        // A pure relay, as the baselines are: neither the plugins nor the models built into
        // the binary (the defaults of `serve`) run (before, every relay run had them on).
        config.models.dir = data_dir.join("no-models");
        config.models.builtin = false;
        config.plugins.builtin = false;
    }
    Ok(config)
}
