//! OpenTelemetry traces (`[telemetry]`, README "Tracing"): a real server exports spans over
//! OTLP/HTTP to `tests/otlp/receiver.py`, which decodes them with the OpenTelemetry project's
//! own protobuf definitions (PyPI `opentelemetry-proto`; JSON through protobuf's strict JSON
//! parser) and prints each span. The receiver also plays a collector under pressure (503 with
//! `Retry-After` first), which the exporter must ride out.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use opensports_proto::codec::{Codec, write_frame};
use opensports_proto::ws::Mode;
use opensports_proto::{Event, Sport};
use opensports_tests::{TestServer, WAIT, sim_events, wait_for, workspace};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// The receiver process and every line it printed.
struct Receiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(fail_first: u32) -> Receiver {
        let script = workspace().join("tests/otlp/receiver.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--fail-first", &fail_first.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 tests/otlp/receiver.py (pip install opentelemetry-proto)");
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = out.next().unwrap().unwrap();
        let port = first.strip_prefix("LISTENING ").expect(&first).parse().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.map_while(Result::ok) {
                sink.lock().unwrap().push(serde_json::from_str(&line).unwrap());
            }
        });
        Receiver { child, port, lines }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|l| l.get("span_id").is_some()).cloned().collect()
    }

    fn errors(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|l| l.get("error").is_some()).cloned().collect()
    }

    fn refused(&self) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| l.get("refused").is_some()).count()
    }
}

/// `event` as a JSON frame carrying a W3C `traceparent`.
fn traced_frame(event: &Event, traceparent: &str) -> Bytes {
    let mut v = serde_json::to_value(event).unwrap();
    v["traceparent"] = traceparent.into();
    let mut out = Vec::new();
    write_frame(&mut out, Codec::Json, &serde_json::to_vec(&v).unwrap());
    Bytes::from(out)
}

fn by_name<'a>(spans: &'a [Value], trace: &str, name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["trace_id"] == trace && s["name"] == name).collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishers_trace_continues_through_every_stage_to_the_first_flush() {
    // The collector refuses the first request (503, Retry-After: 0): the exporter tries again.
    let receiver = Receiver::start(1);
    let url = receiver.url();
    let server = TestServer::start_with(|c| {
        c.telemetry.endpoint = url;
        c.telemetry.export_interval_ms = 50;
        // Only what publishers sample, and errors.
        c.telemetry.sample_ratio = 0.0;
        c.plugins.load = vec![opensports_server::config::PluginEntry::new(opensports_tests::plugin_wasm(
            "basketball-boxscore",
        ))];
    })
    .await;
    let events = sim_events(Sport::Basketball, 5, 0);
    let game = events[0].game.clone();
    let mut sub = server.subscriber().await;
    sub.subscribe_and_wait(&[&format!("game/{game}/state")], Mode::All).await.unwrap();
    let mut publisher = server.publisher().await;
    for e in &events[..9] {
        publisher.send(e).await.unwrap();
    }
    let traced = &events[9];
    let frame = traced_frame(traced, &format!("00-{TRACE}-{PARENT}-01"));
    publisher.send_frame(&game, traced.seq, frame).await.unwrap();
    // An event that says "not sampled" is not traced.
    let quiet = &events[10];
    let other = "0af7651916cd43dd8448eb211c80319c";
    publisher
        .send_frame(&game, quiet.seq, traced_frame(quiet, &format!("00-{other}-b7ad6b7169203331-00")))
        .await
        .unwrap();
    for e in &events[11..20] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 20).await;
    // A refused event (a seq of 0) is an error span, sampled or not.
    let mut bad = serde_json::to_value(&events[20]).unwrap();
    bad["seq"] = 0.into();
    let mut out = Vec::new();
    write_frame(&mut out, Codec::Json, &serde_json::to_vec(&bad).unwrap());
    publisher.send_frame(&game, 21, Bytes::from(out)).await.unwrap();

    let names = ["event", "admission", "commit", "queue", "shard", "state", "winprob", "publish", "flush"];
    let spans = wait_for(WAIT, || {
        let spans = receiver.spans();
        let tree_done = names.iter().all(|name| !by_name(&spans, TRACE, name).is_empty());
        let error_seen = spans.iter().any(|s| s["status"] == 2 && s["attributes"]["error.code"].is_string());
        (tree_done && error_seen).then_some(spans)
    })
    .await;
    assert!(receiver.errors().is_empty(), "the receiver could not decode: {:?}", receiver.errors());
    assert!(receiver.refused() >= 1, "the 503 was never met");

    // One span tree: `event` under the publisher's span, every stage under `event`, the
    // shard's stages (each plugin's call among them) under `shard`.
    let one = |name: &str| {
        let found = by_name(&spans, TRACE, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0].clone()
    };
    let root = one("event");
    assert_eq!(root["parent"], PARENT);
    assert_eq!(root["service"], "opensports");
    assert_eq!(root["attributes"]["game"], game.as_str());
    assert_eq!(root["attributes"]["seq"], traced.seq);
    let root_id = root["span_id"].as_str().unwrap();
    for name in ["admission", "commit", "queue", "shard", "publish", "flush"] {
        let s = one(name);
        assert_eq!(s["parent"], root_id, "{name}");
        assert!(n(&s["start"]) <= n(&s["end"]), "{name}: {s}");
        assert!(n(&s["start"]) >= n(&root["start"]), "{name} starts before the event: {s}");
    }
    let shard = one("shard");
    let shard_id = shard["span_id"].as_str().unwrap();
    let plugins: Vec<&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == TRACE && s["name"].as_str().unwrap().starts_with("plugin "))
        .collect();
    assert_eq!(plugins.len(), 1, "one span per plugin call: {plugins:?}");
    let plugin = plugins[0].clone();
    for s in [one("state"), one("winprob"), plugin] {
        assert_eq!(s["parent"], shard_id, "{s}");
        assert!(
            n(&s["start"]) >= n(&shard["start"]) && n(&s["end"]) <= n(&shard["end"]),
            "{s} outside {shard}"
        );
    }
    // In order: read, queued, shard, published, flushed.
    let (admission, queue, publish, flush) = (one("admission"), one("queue"), one("publish"), one("flush"));
    assert!(n(&admission["end"]) <= n(&queue["start"]) + 1_000_000, "{admission} {queue}");
    assert!(n(&shard["end"]) <= n(&publish["end"]));
    assert_eq!(n(&publish["end"]), n(&root["end"]), "the event ends when its publications go out");
    // The flush span runs from the publication's making (inside `publish`) to the first
    // subscriber's flush.
    assert!(
        n(&flush["start"]) >= n(&publish["start"]) && n(&flush["start"]) <= n(&publish["end"]),
        "{flush} {publish}"
    );
    assert!(n(&flush["end"]) >= n(&flush["start"]));

    // The unsampled and the untraced events made no span; the refused one made an error span.
    assert!(spans.iter().all(|s| s["trace_id"] != other), "a not-sampled traceparent was traced");
    let traces: std::collections::HashSet<&str> =
        spans.iter().filter(|s| s["status"] != 2).map(|s| s["trace_id"].as_str().unwrap()).collect();
    assert_eq!(traces, std::collections::HashSet::from([TRACE]), "only the sampled event is traced");
    let err = spans.iter().find(|s| s["status"] == 2).unwrap();
    assert_eq!(err["name"], "event");
    assert_eq!(err["attributes"]["game"], game.as_str());
    assert!(!err["message"].as_str().unwrap().is_empty());
    assert!(server.metric("opensports_telemetry_spans_exported_total").await >= spans.len() as f64);
    assert!(server.metric("opensports_telemetry_export_retries_total").await >= 1.0);
    drop(sub);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_one_traces_every_event_and_connection_over_otlp_json() {
    let receiver = Receiver::start(0);
    let url = receiver.url();
    let server = TestServer::start_with(|c| {
        c.telemetry.endpoint = format!("{url}/v1/traces");
        c.telemetry.protocol = opensports_server::telemetry::Protocol::HttpJson;
        c.telemetry.export_interval_ms = 50;
        c.telemetry.sample_ratio = 1.0;
        c.telemetry.service_name = "arena-7".into();
    })
    .await;
    let events = sim_events(Sport::Soccer, 9, 0);
    let game = events[0].game.clone();
    let mut publisher = server.publisher().await;
    for e in &events[..30] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq(&game, 30).await;
    publisher.close(WAIT).await.unwrap();
    // A wrong token: the hello's error span.
    let mut cfg = server.publisher_config();
    cfg.token = "not-a-token-at-all".into();
    assert!(opensports_client::Publisher::connect(cfg).await.is_err());

    let spans = wait_for(WAIT, || {
        let spans = receiver.spans();
        let roots = spans.iter().filter(|s| s["name"] == "event").count();
        let conn = spans.iter().any(|s| s["name"] == "quic.connection");
        let refused = spans.iter().any(|s| s["name"] == "hello" && s["status"] == 2);
        (roots >= 30 && conn && refused).then_some(spans)
    })
    .await;
    assert!(receiver.errors().is_empty(), "strict OTLP JSON parse failed: {:?}", receiver.errors());
    assert!(spans.iter().all(|s| s["content_type"] == "application/json" && s["service"] == "arena-7"));
    // Every event its own trace, with its game and seq; every stage under its root.
    let roots: Vec<&Value> = spans.iter().filter(|s| s["name"] == "event").collect();
    let seqs: std::collections::BTreeSet<u64> = roots.iter().map(|r| n(&r["attributes"]["seq"])).collect();
    assert_eq!(seqs, (1..=30).collect(), "one root per event");
    let mut by_trace: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in &spans {
        by_trace.entry(s["trace_id"].as_str().unwrap()).or_default().push(s);
    }
    for r in &roots {
        assert_eq!(r["parent"], "", "a trace of the server's own has no parent: {r}");
        let tree = &by_trace[r["trace_id"].as_str().unwrap()];
        let ids: std::collections::HashSet<&str> =
            tree.iter().map(|s| s["span_id"].as_str().unwrap()).collect();
        for s in tree.iter().filter(|s| s["name"] != "event") {
            assert!(ids.contains(s["parent"].as_str().unwrap()), "orphan {s}");
        }
        assert!(tree.iter().any(|s| s["name"] == "commit"), "{tree:?}");
    }
    // The connection: `quic.connection` with its `hello`, and the refused hello's error.
    let conn = spans.iter().find(|s| s["name"] == "quic.connection").unwrap();
    assert!(conn["attributes"]["net.peer.address"].as_str().unwrap().starts_with("127.0.0.1:"));
    let hello = spans.iter().find(|s| s["name"] == "hello" && s["parent"] == conn["span_id"]).unwrap();
    assert!(n(&hello["end"]) <= n(&conn["end"]));
    let refused = spans.iter().find(|s| s["name"] == "hello" && s["status"] == 2).unwrap();
    assert_eq!(refused["attributes"]["error.code"], "bad_token", "{refused}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_costs_spans_not_events() {
    // Nothing listens on the endpoint: spans are dropped and counted, events flow as ever.
    let server = TestServer::start_with(|c| {
        c.telemetry.endpoint = "http://127.0.0.1:9".into();
        c.telemetry.export_interval_ms = 10;
        c.telemetry.sample_ratio = 1.0;
    })
    .await;
    let events = sim_events(Sport::Basketball, 8, 0);
    let game = events[0].game.clone();
    server.publish_all(&events[..50]).await;
    server.wait_for_seq(&game, 50).await;
    let mut dropped = 0.0;
    for _ in 0..600 {
        dropped = server.metric("opensports_telemetry_spans_dropped_total").await;
        if dropped > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dropped > 0.0);
    assert_eq!(server.metric("opensports_telemetry_spans_exported_total").await, 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_trace_id_of_a_refused_events_span() {
    let receiver = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opensports.toml");
    std::fs::write(
        &config,
        format!(
            "[ingest]\ntokens = [\"{}\"]\n[plugins]\nbuiltin = false\n[models]\nbuiltin = false\n\
             [telemetry]\nendpoint = \"{}\"\nexport_interval_ms = 50\n",
            opensports_tests::TOKEN,
            receiver.url()
        ),
    )
    .unwrap();
    let quic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = tokio::process::Command::new(opensports_tests::opensports_bin())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--quic-listen", &quic.to_string(), "--http-listen", &http.to_string()])
        .env("RUST_LOG", "info,opensports_server::ingest=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(http).await.is_ok()
            && opensports_tests::http_get(http, "/readyz").await.0 == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{}", std::fs::read_to_string(&log).unwrap());
    let fingerprint = wait_for(WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|l| l["fingerprint"].as_str().map(str::to_string))
    })
    .await;
    let cfg = opensports_client::PublisherConfig::new(
        quic,
        opensports_client::Trust::Fingerprint(fingerprint),
        opensports_tests::TOKEN,
    );
    let mut publisher = opensports_client::Publisher::connect(cfg).await.unwrap();
    let events = sim_events(Sport::Basketball, 4, 0);
    let mut bad = serde_json::to_value(&events[0]).unwrap();
    bad["seq"] = 0.into();
    let mut out = Vec::new();
    write_frame(&mut out, Codec::Json, &serde_json::to_vec(&bad).unwrap());
    publisher.send_frame(&events[0].game, 1, Bytes::from(out)).await.unwrap();

    let span = wait_for(WAIT, || receiver.spans().into_iter().find(|s| s["status"] == 2)).await;
    let line = wait_for(WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["message"] == "event refused")
    })
    .await;
    assert_eq!(line["trace_id"], span["trace_id"], "{line} / {span}");
    assert_eq!(line["level"], "DEBUG");
    // Every line is one JSON object.
    child.kill().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
}
