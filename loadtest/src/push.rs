//! `--push N`: N devices (webhook provider) following one soccer game, and 1,000 WebSocket
//! subscribers of the same game's triggers; one home goal. Reports, side by side:
//!
//! - pushes: the goal's event sent → the outbox holds N entries (the dispatch), → the first
//!   and the last of the N requests reached a local stand-in backend (an HTTP/1.1 server in
//!   this process that answers 200 at once), pushes/s, and the process's RSS growth;
//! - WebSocket: the same goal's firing reaching every one of the 1,000 subscribers.
//!
//! The server runs in this process (`opensports-tests`' `TestServer`, a real QUIC publisher,
//! real redb files); registration goes through `POST /v1/devices` like an app's.
//!
//! ```sh
//! cargo run --release -p opensports-loadtest -- --push 100000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opensports_proto::soccer::Event as Sc;
use opensports_proto::{Body, Side, Sport};
use opensports_tests::{SIM_START_US, TestServer, http_call, rss_kib, sim_events};

const SUBSCRIBERS: usize = 1000;

/// Requests the stand-in backend took, and when (µs since `start`) the first and last came.
#[derive(Debug, Default)]
struct Backend {
    count: AtomicU64,
    first_us: AtomicU64,
    last_us: AtomicU64,
}

async fn backend(start: Instant) -> anyhow::Result<(std::net::SocketAddr, Arc<Backend>)> {
    let seen = Arc::new(Backend::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let s = s.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                let mut have = 0;
                loop {
                    // One request: headers, then Content-Length bytes.
                    let Ok(n) = conn.read(&mut buf[have..]).await else { return };
                    if n == 0 {
                        return;
                    }
                    have += n;
                    while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if have < end + 4 + len {
                            break;
                        }
                        buf.copy_within(end + 4 + len..have, 0);
                        have -= end + 4 + len;
                        let us = start.elapsed().as_micros() as u64;
                        if s.count.fetch_add(1, Ordering::Relaxed) == 0 {
                            s.first_us.store(us, Ordering::Relaxed);
                        }
                        s.last_us.fetch_max(us, Ordering::Relaxed);
                        if conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok((addr, seen))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub async fn run(devices: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let (addr, seen) = backend(start).await?;
    let server = TestServer::start_with(|c| {
        c.push.webhook_secret = "bench".into();
        c.push.allow_private_endpoints = true;
        c.push.max_devices = devices + 10;
        c.push.max_devices_per_credential = devices + 10;
        c.push.max_per_game_per_minute = 100;
        c.auth.max_ws_per_address = SUBSCRIBERS + 10;
    })
    .await;
    let events = sim_events(Sport::Soccer, 7, SIM_START_US);
    let game = events[0].game.clone();
    let goal = events
        .iter()
        .position(|e| matches!(&e.body, Body::Soccer(Sc::Goal { side: Side::Home, .. })))
        .ok_or_else(|| anyhow::anyhow!("the simulated game has no home goal"))?;

    // Everything before the goal: the game is under way, nobody follows it yet.
    server.publish_all(&events[..goal]).await;
    let rss_before = rss_kib();
    let admin = server.admin_key();
    let body = serde_json::json!({"provider": "webhook", "url": format!("http://{addr}/push"),
        "games": [game], "kinds": ["home_goal"]})
    .to_string();
    let t = Instant::now();
    let http = server.running().http_addr;
    let registered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (body, admin, registered) = (body.clone(), admin.clone(), registered.clone());
            tokio::spawn(async move {
                for _ in (w..devices).step_by(16) {
                    let (status, _) = http_call(
                        http,
                        "POST",
                        "/v1/devices",
                        Some(("application/json", body.as_bytes())),
                        Some(&admin),
                    )
                    .await;
                    if status == 201 {
                        registered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let registered = registered.load(Ordering::Relaxed) as usize;
    anyhow::ensure!(registered == devices, "registered {registered} of {devices}");
    println!(
        "registered {devices} devices through POST /v1/devices in {:.1} s ({:.0}/s)",
        t.elapsed().as_secs_f64(),
        devices as f64 / t.elapsed().as_secs_f64()
    );

    let rss_devices = rss_kib();
    // 1,000 WebSocket subscribers of the triggers, subscribed and settled.
    let url = format!("{}?token={admin}", server.ws_url());
    let topic = format!("game/{game}/triggers");
    let ws_done = Arc::new(AtomicU64::new(0));
    let ws_last_us = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut s = opensports_client::Subscriber::connect(&url).await?;
        s.subscribe_and_wait(&[topic.as_str()], opensports_proto::ws::Mode::All).await?;
        subs.push(s);
    }
    for mut s in subs {
        let (done, last) = (ws_done.clone(), ws_last_us.clone());
        tokio::spawn(async move {
            while let Ok(m) = s.next().await {
                if let opensports_proto::ws::ServerMsg::Msg(p) = m
                    && p.data["rule"] == "home_goal"
                {
                    last.fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                    done.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        });
    }
    let rss_registered = rss_kib();

    // The goal.
    let sent_us = start.elapsed().as_micros() as u64;
    server.publish_all(&events[goal..=goal]).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut dispatched_us = None;
    let mut peak = rss_registered;
    while (seen.count.load(Ordering::Relaxed) as usize) < devices
        || (ws_done.load(Ordering::Relaxed) as usize) < SUBSCRIBERS
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out: {} pushes, {} WebSocket deliveries",
            seen.count.load(Ordering::Relaxed),
            ws_done.load(Ordering::Relaxed)
        );
        if dispatched_us.is_none() && server.metric("opensports_push_queued_total").await >= devices as f64 {
            dispatched_us = Some(start.elapsed().as_micros() as u64);
        }
        peak = peak.max(rss_kib());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ms = |us: u64| us.saturating_sub(sent_us) as f64 / 1000.0;
    let (first, last) = (seen.first_us.load(Ordering::Relaxed), seen.last_us.load(Ordering::Relaxed));
    println!("one goal, {devices} devices following the game (webhook, local stand-in backend):");
    if let Some(d) = dispatched_us {
        println!(
            "  outbox holds every push (seen by a 20 ms poll): {:>9.1} ms after the goal was sent",
            ms(d)
        );
    }
    println!("  first provider request:                        {:>9.1} ms", ms(first));
    println!("  last provider request:                         {:>9.1} ms", ms(last));
    println!(
        "  pushes/s (first to last request):               {:>9.0}",
        devices as f64 / ((last.saturating_sub(first)).max(1) as f64 / 1e6)
    );
    println!(
        "  WebSocket: the firing at all {SUBSCRIBERS} subscribers: {:>9.1} ms",
        ms(ws_last_us.load(Ordering::Relaxed))
    );
    println!(
        "  RSS (this process: server, backend, clients): {} MiB before devices, {} MiB with them, {} MiB with the \
         {SUBSCRIBERS} WebSocket subscribers too, {} MiB peak while sending",
        rss_before / 1024,
        rss_devices / 1024,
        rss_registered / 1024,
        peak / 1024
    );
    Ok(())
}
