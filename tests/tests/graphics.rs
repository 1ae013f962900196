//! Graphics outputs (issue 29, part 3): `GET /v1/graphics/{game}.json|.xml|.csv` and the file
//! drop, on a real server running the built-in plugins over a real NBA feed (or a simulated
//! game without `OPENSPORTS_DATA`). Every value is re-derived from the topics it comes from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use opensports_proto::{Event, Sport};
use opensports_server::feeds;
use opensports_tests::{SIM_START_US, TestServer, sim_events};

fn nba_game() -> Vec<Event> {
    let Some(dir) = std::env::var_os("OPENSPORTS_DATA").map(PathBuf::from) else {
        return sim_events(Sport::Basketball, 61, SIM_START_US);
    };
    let bytes = std::fs::read(dir.join("nba/nba_live_pbp_0022000001.json")).unwrap();
    let format = feeds::detect(&bytes).unwrap();
    let opts = feeds::Options { file_stem: Some("nba_live_pbp_0022000001"), ..Default::default() };
    feeds::parse(format, &bytes, &opts).unwrap().game.events.into_iter().map(|t| t.event).collect()
}

async fn start(drop_dir: Option<PathBuf>) -> TestServer {
    TestServer::start_with(move |c| {
        c.plugins.builtin = true;
        c.graphics.drop_dir = drop_dir;
    })
    .await
}

/// GET with headers; returns (status, headers, body).
async fn get(server: &TestServer, path: &str, etag: Option<&str>) -> (u16, BTreeMap<String, String>, String) {
    let addr = server.running().http_addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra = etag.map(|e| format!("If-None-Match: {e}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    // Bodies here are small and sent whole (content-length), never chunked.
    (status, headers, body.to_string())
}

async fn latest(server: &TestServer, topic: &str) -> serde_json::Value {
    let (status, body) = server.get(&format!("/v1/topics/{topic}/latest")).await;
    assert_eq!(status, 200, "{topic}: {body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_reconcile_with_the_topics_in_three_formats() {
    let events = nba_game();
    let id = events[0].game.clone();
    let server = start(None).await;
    server.publish_all(&events[..events.len() / 2]).await;

    // The topics first, then the document: nothing is published in between.
    let state = latest(&server, &format!("game/{id}/state")).await;
    let team = latest(&server, &format!("game/{id}/basketball-boxscore/team/home")).await;
    let winprob = latest(&server, &format!("game/{id}/winprob")).await;
    let (status, headers, body) = get(&server, &format!("/v1/graphics/{id}.json"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&body).unwrap();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    assert_eq!(doc["game"], id);
    assert_eq!(doc["home"], text(&state["home"]));
    assert_eq!(doc["home_score"], text(&state["score"]["home"]));
    assert_eq!(doc["away_score"], text(&state["score"]["away"]));
    assert_eq!(doc["period"], text(&state["period"]));
    assert_eq!(doc["last_seq"], text(&state["last_seq"]));
    assert_eq!(doc["home_fouls"], text(&state["basketball"]["team_fouls"]["home"]));
    assert_eq!(doc["home_fg"], text(&team["fgm"]));
    assert_eq!(doc["home_ast"], text(&team["ast"]));
    let pct = (winprob["home"].as_f64().unwrap() * 100.0).round() as i64;
    assert_eq!(doc["home_win_pct"], pct.to_string());
    let clock = state["clock_ms"].as_u64().unwrap();
    let want_clock = if clock < 60_000 {
        format!("{}.{}", clock / 1000, clock % 1000 / 100)
    } else {
        format!("{}:{:02}", clock / 60_000, clock / 1000 % 60)
    };
    assert_eq!(doc["clock"], want_clock);
    let etag = headers["etag"].clone();

    // XML: well-formed, the same fields in the same order with the same values.
    let (status, headers, xml) = get(&server, &format!("/v1/graphics/{id}.xml"), None).await;
    assert_eq!((status, headers["content-type"].as_str()), (200, "application/xml"));
    assert_eq!(headers["etag"], etag, "one ETag whatever the format");
    let parsed = roxmltree::Document::parse(&xml).unwrap();
    let fields: Vec<(String, String)> = parsed
        .root_element()
        .children()
        .filter(|n| n.is_element())
        .map(|n| (n.tag_name().name().to_string(), n.text().unwrap_or("").to_string()))
        .collect();
    assert_eq!(fields.len(), doc.len());
    let mut at = 0;
    for (key, value) in &fields {
        assert_eq!(doc[key].as_str(), Some(value.as_str()), "{key}");
        // The JSON keeps the field order too.
        let pos = body.find(&format!("\"{key}\":")).unwrap();
        assert!(pos >= at, "{key} out of order in {body}");
        at = pos;
    }

    // CSV: a header row of the keys and one row of the values.
    let (status, headers, csv) = get(&server, &format!("/v1/graphics/{id}.csv"), None).await;
    assert_eq!((status, headers["content-type"].as_str()), (200, "text/csv"));
    let rows: Vec<&str> = csv.split("\r\n").filter(|r| !r.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    let keys: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(keys, fields.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>());

    // Unchanged: 304. A long-poll wakes on the next change with the new document.
    let (status, _, body) = get(&server, &format!("/v1/graphics/{id}.json"), Some(&etag)).await;
    assert_eq!((status, body.as_str()), (304, ""));
    let poll = {
        let path = format!("/v1/graphics/{id}.json?wait=20");
        let (addr, etag) = (server.running().http_addr, etag.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let r = http_request_with_etag(addr, &path, &etag).await;
            (r, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the long-poll waits while nothing changes");
    server.publish_all(&events[events.len() / 2..events.len() / 2 + 1]).await;
    let ((status, body), waited) = poll.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(waited < Duration::from_secs(20), "woke on the change, not the timeout");
    let after: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(after["last_seq"], events[events.len() / 2].seq.to_string());

    // Errors.
    let (status, _, body) = get(&server, "/v1/graphics/no-such-game.json", None).await;
    assert_eq!(status, 404);
    assert!(body.contains("no_such_game"), "{body}");
    let (status, _, body) = get(&server, &format!("/v1/graphics/{id}.pdf"), None).await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"), "{body}");
    server.shutdown().await;
}

async fn http_request_with_etag(addr: std::net::SocketAddr, path: &str, etag: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The file drop: while a game is published, a reader polling the files only ever sees whole
/// documents (write + rename), and the last files are the HTTP documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_drop_is_atomic_and_ends_on_the_http_document() {
    let events = sim_events(Sport::Football, 62, SIM_START_US);
    let id = events[0].game.clone();
    let dir = tempfile::tempdir().unwrap();
    let server = start(Some(dir.path().to_path_buf())).await;
    let json = dir.path().join(format!("{id}.json"));
    let xml = dir.path().join(format!("{id}.xml"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (json, xml, done) = (json.clone(), xml.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let (mut reads, mut distinct) = (0, std::collections::BTreeSet::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(text) = std::fs::read_to_string(&json) {
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("a half-written file: {e}: {text:?}"));
                    distinct.insert(v["last_seq"].as_str().unwrap().to_string());
                    reads += 1;
                }
                if let Ok(text) = std::fs::read_to_string(&xml) {
                    roxmltree::Document::parse(&text)
                        .unwrap_or_else(|e| panic!("a half-written file: {e}: {text:?}"));
                }
                std::thread::yield_now();
            }
            (reads, distinct.len())
        })
    };
    let mut publisher = server.publisher().await;
    for e in &events {
        publisher.send(e).await.unwrap();
        // Paced, so the drop writes several versions while the reader reads.
        if e.seq % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    publisher.flush(Duration::from_secs(30)).await.unwrap();
    server.wait_for_seq(&id, events.last().unwrap().seq).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reads, distinct) = reader.await.unwrap();
    assert!(reads > 0 && distinct > 1, "the reader saw {distinct} documents in {reads} reads");

    // The drop catches up with the last change within a few of its 100 ms rounds.
    let (_, _, http) = get(&server, &format!("/v1/graphics/{id}.json"), None).await;
    let mut last = String::new();
    for _ in 0..100 {
        last = std::fs::read_to_string(&json).unwrap();
        if last == http {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, http);
    assert!(server.metric("opensports_graphics_files_written_total").await >= 3.0);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    server.shutdown().await;
}
