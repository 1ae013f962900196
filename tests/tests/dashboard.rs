//! The dashboard in a real browser (Debian chromium driven by playwright-core): it goes live,
//! and the scores it shows for four simulated games are the server's final states.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in tests/browser (`.ci/run` does both). Outside CI,
//! when either is missing, the test says so and passes without running; under CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use opensports_proto::{Body, Sport, basketball as bk};
use opensports_server::sim;
use opensports_tests::{TestServer, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The browser driver's directory, or `None` (test skipped, outside CI only) when chromium or
/// playwright-core is missing.
fn browser_dir() -> Option<std::path::PathBuf> {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = [
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium)"),
        (!browser_dir.join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci in tests/browser)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide {missing:?}");
        eprintln!("SKIPPED dashboard browser test: missing {missing:?}");
        return None;
    }
    Some(browser_dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_scores_in_chromium() {
    let Some(browser_dir) = browser_dir() else { return };

    let server = TestServer::start().await;
    let url = format!("http://{}/", server.running().http_addr);
    let shot = std::env::temp_dir().join("opensports-dashboard.png");
    let mut node = tokio::process::Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .arg(&url)
        .arg("4")
        .arg(&shot)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));

    // Publish after the page is live: it must follow the games as they happen.
    let mut games: Vec<_> = Sport::ALL.iter().map(|s| sim::generate(*s, 11, 0)).collect();
    // Stored XSS (finding 10): a team name that is markup must show as text and run nothing.
    let payload = r#"<img src=x onerror="window.__xss=1">"#;
    for t in &mut games[0].events {
        if let Body::Basketball(bk::Event::GameStart { home, .. }) = &mut t.event.body {
            *home = payload.into();
        }
    }
    let mut publisher = server.publisher().await;
    sim::publish(&mut publisher, &games, sim::Speed::Max, |_, _| {}).await.unwrap();
    publisher.flush(WAIT).await.unwrap();

    let out =
        tokio::time::timeout(Duration::from_secs(90), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(node.wait().await.unwrap().success());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"], serde_json::json!([]), "no JavaScript errors");
    assert_eq!(v["xss"], false, "markup in a team name ran");
    assert!(
        v["cards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["home"].as_str().is_some_and(|h| h.starts_with(payload))),
        "the markup shows as text: {}",
        v["cards"]
    );
    let cards = v["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 4);
    for g in &games {
        let (_, body) = server.get(&format!("/v1/games/{}", g.id)).await;
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        let card = cards
            .iter()
            .find(|c| c["game"] == g.id.as_str())
            .unwrap_or_else(|| panic!("no card for {}", g.id));
        if g.sport == Sport::F1 {
            assert_eq!(card["leader"], state["f1"]["cars"][0]["driver"], "{card}");
        } else {
            let home = format!("{} {}", state["home"].as_str().unwrap(), state["score"]["home"]);
            let away = format!("{} {}", state["score"]["away"], state["away"].as_str().unwrap());
            assert_eq!(card["home"].as_str(), Some(home.as_str()), "{card}");
            assert_eq!(card["away"].as_str(), Some(away.as_str()), "{card}");
        }
    }
    // The page is served with a strict Content-Security-Policy.
    let mut tcp = tokio::net::TcpStream::connect(server.running().http_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut raw).await.unwrap();
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let csp = head.lines().find(|l| l.starts_with("content-security-policy:")).unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self' 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    server.shutdown().await;
}

/// A page per game, per sport, fed live: each shows its sport's panels with data (charts have
/// points), FINAL at the end with the server's final score, and a connection dropped
/// mid-game catches up with no gap and no duplicate. Screenshots of each page are saved in
/// `target/test-artifacts/game-{sport}.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sport_has_a_live_game_page_that_resumes_without_a_gap() {
    let Some(browser_dir) = browser_dir() else { return };
    let plugins = opensports_tests::shipped_plugins().to_vec();
    let server = TestServer::start_with(|c| {
        c.plugins.load = plugins.into_iter().map(opensports_server::config::PluginEntry::new).collect();
    })
    .await;
    let games: Vec<_> = Sport::ALL.iter().map(|s| sim::generate(*s, 12, 0)).collect();
    let out_dir = opensports_tests::workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut node = tokio::process::Command::new("node");
    node.arg(browser_dir.join("game.mjs"))
        .arg(format!("http://{}", server.running().http_addr))
        .arg(&out_dir);
    for g in &games {
        node.arg(format!("{}:{}", g.id, g.sport));
    }
    let mut node = node.stdout(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(ready.as_deref(), Some("ready"));

    // The first fifth of each game; then, once every page has dropped its connection, the rest
    // (published while the pages reconnect, so each has something to catch up on).
    let mut publisher = server.publisher().await;
    let split: Vec<usize> = games.iter().map(|g| g.events.len() / 5).collect();
    for (g, &n) in games.iter().zip(&split) {
        for t in &g.events[..n] {
            publisher.send(&t.event).await.unwrap();
        }
    }
    publisher.flush(WAIT).await.unwrap();
    let dropped = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap().unwrap();
    assert_eq!(dropped.as_deref(), Some("dropped"));
    for (g, &n) in games.iter().zip(&split) {
        for t in &g.events[n..] {
            publisher.send(&t.event).await.unwrap();
        }
    }
    publisher.flush(WAIT).await.unwrap();

    let mut pages = Vec::new();
    for _ in &games {
        let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line()).await.unwrap().unwrap();
        pages.push(serde_json::from_str::<serde_json::Value>(&line.expect("a result per page")).unwrap());
    }
    assert!(node.wait().await.unwrap().success());
    for p in &pages {
        let sport = p["sport"].as_str().unwrap();
        let game = games.iter().find(|g| g.id == p["id"].as_str().unwrap()).unwrap();
        assert_eq!(p["errors"], serde_json::json!([]), "{sport}: no JavaScript errors");
        assert_eq!(p["reconnects"], 1, "{sport}: the dropped connection came back");
        let seqs: Vec<u64> = p["seqs"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        let last = game.events.last().unwrap().event.seq;
        assert!(p["droppedAt"].as_u64().unwrap() < last, "{sport}: dropped before the end");
        assert_eq!(seqs, (seqs[0]..=last).collect::<Vec<_>>(), "{sport}: every state once, in order");
        assert_eq!(p["clock"], "FINAL", "{sport}");
        let (_, body) = server.get(&format!("/v1/games/{}", game.id)).await;
        let state: serde_json::Value = serde_json::from_str(&body).unwrap();
        let points = |chart: &str| p["points"][chart].as_u64().unwrap_or(0);
        match game.sport {
            Sport::F1 => {
                let cars = state["f1"]["cars"].as_array().unwrap().len() as u64;
                assert_eq!(p["tower"].as_u64(), Some(cars), "{sport}: the whole field in the tower");
                assert!(p["control"].as_u64().unwrap() > 0, "{sport}: race control has entries");
                // Each driver's win chance (f1_win) beside the timing: the race is over, the
                // leader has won.
                let win: Vec<&str> =
                    p["win"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(win.first(), Some(&"100%"), "{sport}: the winner's chance in the tower: {win:?}");
                assert!(win.iter().skip(1).all(|w| *w == "0%"), "{sport}: {win:?}");
                // Lap times as timing screens show them: m:ss.mmm (or s.mmm under a minute).
                let laps: Vec<&str> =
                    p["lastLaps"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                let lap_like = |t: &str| {
                    let (m, rest) = t.split_once(':').unwrap_or(("0", t));
                    let (sec, ms) = rest.split_once('.').unwrap_or(("", ""));
                    m.parse::<u32>().is_ok() && (t.contains(':') == (sec.len() == 2)) && ms.len() == 3
                };
                assert!(laps.iter().any(|t| t.contains(':')), "{sport}: race laps over a minute: {laps:?}");
                assert!(laps.iter().all(|t| t.is_empty() || lap_like(t)), "{sport}: {laps:?}");
            }
            _ => {
                let title = format!(
                    "{} {} – {} {}",
                    state["home"].as_str().unwrap(),
                    state["score"]["home"],
                    state["score"]["away"],
                    state["away"].as_str().unwrap()
                );
                assert_eq!(p["title"].as_str(), Some(title.as_str()), "{sport}: the final score");
            }
        }
        match game.sport {
            Sport::Basketball => {
                assert!(points("wp") > 10, "{sport}: win-probability chart {}", p["points"]);
                assert_eq!(
                    p["wpRange"],
                    serde_json::json!([0, 1]),
                    "{sport}: win probability on a fixed 0–100% axis"
                );
                assert!(p["box"].as_u64().unwrap() >= 10, "{sport}: box score rows");
                // Team totals rows, whose +/- is the final margin.
                let margin =
                    state["score"]["home"].as_i64().unwrap() - state["score"]["away"].as_i64().unwrap();
                let totals: Vec<&str> =
                    p["totals"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
                assert_eq!(
                    totals,
                    [margin.to_string(), (-margin).to_string()],
                    "{sport}: team +/- is the margin"
                );
                assert!(p["court"].as_i64().unwrap() > 50, "{sport}: shot chart {}", p["court"]);
            }
            Sport::Football => {
                assert!(points("wp") > 10 && points("epa") > 10, "{sport}: charts {}", p["points"]);
                assert!(p["drives"].as_u64().unwrap() > 3, "{sport}: drive chart");
                // Each drive once, by number, whatever order the drives' topics arrived in.
                let numbers: Vec<u64> =
                    p["driveNumbers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
                assert!(
                    numbers.windows(2).all(|w| w[0] < w[1]),
                    "{sport}: drives in order, once each: {numbers:?}"
                );
                // Down and distance as a broadcast says them: "GB ball, 3rd & 4 at DAL 35".
                let (home, away) = (state["home"].as_str().unwrap(), state["away"].as_str().unwrap());
                let situations = p["situations"].as_array().unwrap();
                assert!(!situations.is_empty(), "{sport}: no down and distance shown");
                for s in situations {
                    let s = s.as_str().unwrap();
                    let (ball, rest) = s.split_once(" ball, ").unwrap_or_else(|| panic!("{s}"));
                    let (_, at) = rest.split_once(" at ").unwrap_or_else(|| panic!("{s}"));
                    assert!(ball == home || ball == away, "{s}");
                    let spot = at.rsplit_once(' ').map_or(at, |(t, n)| {
                        assert!(t == home || t == away, "{s}");
                        n
                    });
                    assert!(spot.parse::<u32>().is_ok_and(|n| (1..=50).contains(&n)), "{s}");
                }
            }
            Sport::Soccer => {
                assert!(points("xg") > 0, "{sport}: xG timeline {}", p["points"]);
                assert!(p["shots"].as_u64().unwrap() > 0, "{sport}: shot map");
                assert!(p["possession"].as_str().unwrap().starts_with("Possession"), "{sport}");
            }
            Sport::F1 => {}
        }
        println!("{sport}: {} (screenshot {})", p["title"], p["screenshot"]);
    }
    server.shutdown().await;
}

/// The dashboards' shared formatting (`format.js`) under `node --test`: lap times, the names
/// of the breaks between periods.
#[test]
fn the_pages_format_lap_times_and_period_breaks_as_fans_read_them() {
    let out = std::process::Command::new("node")
        .args(["--test", "tests/browser/format.test.mjs"])
        .current_dir(opensports_tests::workspace())
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
