//! The clients for other languages, against a real server: each replays the golden
//! transcripts (`tests/fixtures/transcripts`) and runs its own test suite. This file starts the
//! server and hands its addresses to the Python (`pytest`) and JS (`node --test`) suites, so
//! one `cargo nextest run` covers all three; `tests/run` installs their dependencies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use opensports_proto::Event;
use opensports_proto::codec::Codec;
use opensports_tests::{TOKEN, TestServer, WAIT, workspace};

fn transcripts() -> Vec<(PathBuf, serde_json::Value)> {
    let dir = workspace().join("tests/fixtures/transcripts");
    let mut all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!all.is_empty(), "no transcripts in {}", dir.display());
    all
}

/// Whether `actual` has every field of `expected` (recursively; arrays element by element).
fn contains(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            e.iter().all(|(k, v)| a.get(k).is_some_and(|x| contains(x, v)))
        }
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| contains(x, y))
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        _ => actual == expected,
    }
}

/// The transcript's `publish` part with the Rust publisher (JSON codec, as other languages send).
async fn publish(server: &TestServer, script: &serde_json::Value) {
    let mut cfg = server.publisher_config();
    cfg.codec = Codec::Json;
    let mut publisher = opensports_client::Publisher::connect(cfg).await.unwrap();
    for e in script["publish"]["events"].as_array().unwrap() {
        let event: Event = serde_json::from_value(e.clone()).unwrap();
        publisher.send(&event).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    let ack = &script["publish"]["expect_ack"];
    assert_eq!(publisher.acked(ack["game"].as_str().unwrap()), ack["seq"].as_u64().unwrap());
    assert!(publisher.take_notices().is_empty(), "no reject, gap or error");
    let wait = &script["wait_latest"];
    let path = format!("/v1/topics/{}/latest", wait["topic"].as_str().unwrap());
    for _ in 0..3000 {
        let (status, body) = server.get(&path).await;
        if status == 200 && serde_json::from_str::<serde_json::Value>(&body).unwrap()["seq"] == wait["seq"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{path} never reached seq {}", wait["seq"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_replays_the_golden_transcripts() {
    for (path, script) in transcripts() {
        let server = TestServer::start().await;
        publish(&server, &script).await;
        let mut sub = server.subscriber().await;
        for (i, step) in script["ws"].as_array().unwrap().iter().enumerate() {
            if let Some(op) = step.get("send") {
                sub.send_text(op.to_string()).await.unwrap();
                continue;
            }
            let msg = sub.next_timeout(WAIT).await.unwrap().expect("a message in time");
            let actual = serde_json::to_value(&msg).unwrap();
            assert!(
                contains(&actual, &step["expect"]),
                "{}: step {i}: got {actual}, expected {}",
                path.display(),
                step["expect"]
            );
        }
        server.shutdown().await;
    }
}

/// Runs `program args` in `dir`, with the server's addresses (when given) and `vars` in the
/// environment; panics with its output unless it succeeds.
async fn run_suite(
    server: Option<&TestServer>,
    dir: &Path,
    (program, args): (&str, &[&str]),
    vars: &[(&str, String)],
    hint: &str,
) {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).current_dir(dir).kill_on_drop(true);
    if let Some(server) = server {
        let r = server.running();
        cmd.env("OPENSPORTS_HTTP", format!("http://{}", r.http_addr))
            .env("OPENSPORTS_WS", format!("ws://{}/ws", r.http_addr))
            .env("OPENSPORTS_QUIC", r.quic_addr.to_string())
            .env("OPENSPORTS_FINGERPRINT", &r.fingerprint)
            .env("OPENSPORTS_TOKEN", TOKEN);
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)))
        .env("PYTHONPATH", workspace().join("clients/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the suite finished in time")
        .unwrap_or_else(|e| panic!("could not run {program}: {e} ({hint})"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "{program} {args:?} failed ({hint}):\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_replays_the_transcripts_and_passes_its_suite() {
    let dir = workspace().join("clients/python");
    let hint = "bash tests/run installs clients/python[test]";
    // Each file on a server of its own: a transcript expects a server that has seen only it.
    for file in ["tests/test_golden.py", "tests/test_client.py"] {
        let server = TestServer::start().await;
        let pytest = ("python3", &["-m", "pytest", "-q", "-p", "no:cacheprovider", file][..]);
        run_suite(Some(&server), &dir, pytest, &[], hint).await;
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_replays_the_transcripts_and_passes_its_suite() {
    let dir = workspace().join("clients/js");
    let hint = "bash tests/run runs npm ci in clients/js";
    run_suite(None, &dir, ("npm", &["run", "--silent", "build"]), &[], hint).await;
    // The transcripts: their events published by the Rust client (this client only subscribes).
    let server = TestServer::start().await;
    for (_, script) in transcripts() {
        publish(&server, &script).await;
    }
    run_suite(Some(&server), &dir, ("node", &["--test", "test/golden.test.mjs"]), &[], hint).await;
    server.shutdown().await;

    // A live game published while the suite runs (paced, so a dropped connection misses some).
    let server = TestServer::start().await;
    let events =
        opensports_tests::sim_events(opensports_proto::Sport::Soccer, 5, opensports_tests::SIM_START_US);
    let events: Vec<Event> = events.into_iter().take(600).collect();
    let (game, last) = (events[0].game.clone(), events.last().unwrap().seq);
    let mut publisher = server.publisher().await;
    let live = tokio::spawn(async move {
        for e in &events {
            publisher.send(e).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        publisher.flush(WAIT).await.unwrap();
    });
    let vars = [("OPENSPORTS_LIVE_GAME", game), ("OPENSPORTS_LIVE_LAST", last.to_string())];
    run_suite(Some(&server), &dir, ("node", &["--test", "test/client.test.mjs"]), &vars, hint).await;
    live.await.unwrap();
    server.shutdown().await;
}

/// The Rust client names errors as the JS and Python clients do (PROTOCOL.md §2.6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_error_names_match_the_other_clients() {
    let server = TestServer::start().await;
    let url = format!("{}?token=osk_000000000000_wrong", server.ws_url());
    let refused = opensports_client::Subscriber::connect(&url).await.unwrap_err();
    assert_eq!(refused.code(), "unauthorized", "{refused}");
    let unreachable = opensports_client::Subscriber::connect("ws://127.0.0.1:9/ws").await.unwrap_err();
    assert_eq!(unreachable.code(), "connect_failed", "{unreachable}");
    server.shutdown().await;
}
