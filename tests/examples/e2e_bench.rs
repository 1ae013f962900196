//! First end-to-end benchmark (the full load generator is `loadtest/`): publishes simulated
//! basketball games over real QUIC through the pipeline to one WebSocket subscriber on loopback
//! and reports events/s and latency from the publisher's timestamp to the subscriber's receipt.
//!
//! `cargo run --release -p opensports-tests --example e2e_bench -- [EVENTS] [RATE] [durable|volatile]`
//! RATE 0 (default) = as fast as possible; otherwise an open-loop constant rate where each event
//! is stamped with its intended send time, so latency includes any coordinated omission.
//! Server, publisher and subscriber share this process (and its two cores).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use opensports_proto::Sport;
use opensports_proto::ws::{Mode, ServerMsg};
use opensports_server::sim;
use opensports_tests::TestServer;

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let rate: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0.0);
    // `volatile` turns the durable log off, to measure what it adds on the fan-out path.
    let durable = args.next().is_none_or(|a| a != "volatile");
    let server = TestServer::start_with(|c| {
        c.fanout.queue_len = 1 << 20;
        c.store.enabled = durable;
    })
    .await;

    let mut events = Vec::with_capacity(total);
    let mut seed = 0;
    while events.len() < total {
        events.extend(sim::generate(Sport::Basketball, seed, 0).events.into_iter().map(|t| t.event));
        seed += 1;
    }
    events.truncate(total);

    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/state"], Mode::All).await?;
    let reader = tokio::spawn(async move {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        let (mut got, mut lagged) = (0usize, 0u64);
        let mut last = Instant::now();
        while got < total {
            match sub.next_timeout(Duration::from_secs(10)).await {
                Ok(Some(ServerMsg::Msg(p))) => {
                    got += 1;
                    last = Instant::now();
                    hist.saturating_record((now_us() - p.ts).max(1) as u64);
                }
                Ok(Some(ServerMsg::Lagged { dropped })) => {
                    lagged += dropped;
                    got += dropped as usize;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        (hist, got, lagged, last, sub.frames_received())
    });

    let mut publisher = server.publisher().await;
    let start = Instant::now();
    for (i, e) in events.iter_mut().enumerate() {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            e.ts = now_us() - due.elapsed().as_micros() as i64;
        } else {
            e.ts = now_us();
        }
        publisher.send(e).await?;
    }
    publisher.flush(Duration::from_secs(60)).await?;
    let sent_in = start.elapsed();
    let (hist, got, lagged, last, frames) = reader.await?;
    let wall = last.duration_since(start).as_secs_f64();
    println!(
        "events sent      {total} in {:.2}s ({:.0}/s offered)",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64()
    );
    println!(
        "delivered        {} of {total} ({lagged} dropped as lagged) in {wall:.2}s = {:.0} events/s end to end",
        got - lagged as usize,
        (got - lagged as usize) as f64 / wall
    );
    println!(
        "ws frames        {frames} ({:.1} messages per frame)",
        (got - lagged as usize) as f64 / frames.max(1) as f64
    );
    for q in [50.0, 90.0, 99.0, 99.9] {
        println!("latency p{q:<5}   {:>8.3} ms", hist.value_at_percentile(q) as f64 / 1000.0);
    }
    println!("latency max      {:>8.3} ms", hist.max() as f64 / 1000.0);
    server.shutdown().await;
    Ok(())
}
