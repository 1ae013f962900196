//! What operators scrape: `/metrics` passes `promtool check metrics` (Debian's prometheus
//! package), carries the process and build lines, and has every metric the shipped Grafana
//! dashboard (`deploy/grafana/opensports.json`) names, after a real game with plugins, a
//! failing plugin, a rejected event and live subscribers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write as _;

use bytes::Bytes;
use opensports_proto::Sport;
use opensports_proto::ws::Mode;
use opensports_server::config::PluginEntry;
use opensports_tests::{TestServer, WAIT, hostile_fixture, plugin_wasm, sim_events, workspace};

/// Metric names in PromQL text: `opensports_*` and `process_*` identifiers.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if starts_word && (expr[i..].starts_with("opensports_") || expr[i..].starts_with("process_")) {
            let end =
                expr[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(b.len(), |n| i + n);
            names.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let e =
        "histogram_quantile(0.99, sum by (le) (rate(opensports_x_seconds_bucket[1m]))) / process_open_fds";
    assert_eq!(metric_names(e), ["opensports_x_seconds_bucket", "process_open_fds"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_cover_every_metric_of_the_grafana_dashboard() {
    let server = TestServer::start_with(|c| {
        c.plugins.load = vec![
            PluginEntry::new(plugin_wasm("basketball-boxscore")),
            PluginEntry {
                name: Some("hostile".into()),
                ..PluginEntry::new(hostile_fixture("explicit_trap"))
            },
        ];
        c.plugins.quarantine_after = 1_000_000;
    })
    .await;
    let events = sim_events(Sport::Basketball, 21, 0);
    let game = events[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&["game/+/state"], Mode::Latest).await.unwrap();
    let mut publisher = server.publisher().await;
    for e in &events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, events.len() as u64).await;
    // One event the server refuses (a reject, counted by reason).
    let bad = Bytes::from_static(b"\x00\x00\x00\x03\x01{}");
    publisher.send_frame(&game, events.len() as u64 + 1, bad).await.unwrap();
    for _ in 0..3000 {
        if server.metric("opensports_ingest_rejected_total{reason=\"bad_event\"}").await > 0.0
            || server.get("/metrics").await.1.contains("opensports_ingest_rejected_total{")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A wrong credential and an anonymous admin call (auth failures and denials).
    assert_eq!(server.call("osk_000000000000_wrong", "GET", "/v1/keys", None).await.0, 401);
    assert_eq!(server.get("/v1/keys").await.0, 401);

    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "opensports_build_info",
    ] {
        assert!(body.lines().any(|l| l.starts_with(name)), "{name} missing");
    }

    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (bash tests/run installs Debian's prometheus package)");
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics:\n{said}");

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("deploy/grafana/opensports.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let named: BTreeSet<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .flat_map(|t| metric_names(t["expr"].as_str().unwrap()))
        .collect();
    let served: BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let missing: Vec<&String> = named.iter().filter(|n| !served.contains(n.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard names metrics /metrics does not have: {missing:?}");
    server.shutdown().await;
}
