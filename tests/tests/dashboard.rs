//! The dashboard in a real browser (Debian chromium driven by playwright-core): it goes live,
//! and the scores it shows for four simulated games are the server's final states.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in tests/browser (`.ci/run` does both). Outside CI,
//! when either is missing, the test says so and passes without running; under CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use opensports_proto::{Body, Sport, basketball as bk};
use opensports_server::sim;
use opensports_tests::{TestServer, WAIT};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_scores_in_chromium() {
    let Some(browser_dir) = opensports_tests::browser_dir("dashboard") else { return };

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

/// A page per game, per sport, fed live: each shows its sport's panels with data, FINAL at the
/// end with the server's final score, and a connection dropped mid-game catches up with no gap
/// and no duplicate. A second page opened mid-game draws exactly the charts of the page that
/// saw the game from the start (from history). axe-core finds no serious or critical
/// accessibility violation; the JavaScript bytes and the frames drawn while the rest of the
/// game streams in at 100 events/s are printed. Screenshots of each sport at the start,
/// mid-game (loaded mid-game) and final, and of arena mode at 1080p and 4K, are saved in
/// `target/test-artifacts/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sport_has_a_live_game_page_that_resumes_without_a_gap() {
    let Some(browser_dir) = opensports_tests::browser_dir("dashboard") else { return };
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

    // The first fifth of each game; then, once every page has dropped its connection and a
    // second page per game is open, the rest at 100 events/s per game (one event of each game
    // every 10 ms; published while the first pages reconnect, so each has something to catch up on).
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
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let longest = games.iter().zip(&split).map(|(g, &n)| g.events.len() - n).max().unwrap();
    for i in 0..longest {
        tick.tick().await;
        for (g, &n) in games.iter().zip(&split) {
            if let Some(t) = g.events.get(n + i) {
                publisher.send(&t.event).await.unwrap();
            }
        }
    }
    publisher.flush(WAIT).await.unwrap();

    let mut pages = Vec::new();
    for _ in &games {
        let line = tokio::time::timeout(Duration::from_secs(240), lines.next_line()).await.unwrap().unwrap();
        pages.push(serde_json::from_str::<serde_json::Value>(&line.expect("a result per page")).unwrap());
    }
    assert!(node.wait().await.unwrap().success());
    for p in &pages {
        check_game_page(&server, &games, p).await;
    }
    // Arena mode: large type, only the panels a crowd reads, accessible at both sizes.
    let arena = &pages[0]["arena"];
    for size in ["1080p", "4k"] {
        let a = &arena[size];
        assert_eq!(a["arena"], true, "{size}: {a}");
        assert_eq!(a["errors"], serde_json::json!([]), "{size}");
        assert_eq!(a["axe"], serde_json::json!([]), "{size}: accessibility");
        assert!(
            !a["panels"].as_array().unwrap().iter().any(|p| p == "p-box"),
            "{size}: the box score is not for a crowd"
        );
        assert!(a["panels"].as_array().unwrap().iter().any(|p| p == "p-wp"), "{size}: {a}");
    }
    let (hd, uhd) = (arena["1080p"]["titlePx"].as_f64().unwrap(), arena["4k"]["titlePx"].as_f64().unwrap());
    assert!(
        hd >= 48.0 && uhd > hd * 1.5,
        "arena type scales with the screen: {hd}px at 1080p, {uhd}px at 4K"
    );
    println!("arena: title {hd}px at 1080p, {uhd}px at 4K (screenshots arena-1080p.png, arena-4k.png)");
    server.shutdown().await;
}

/// One game's page against the server's final state, and its mid-game twin against it.
async fn check_game_page(server: &TestServer, games: &[sim::SimGame], p: &serde_json::Value) {
    let sport = p["sport"].as_str().unwrap();
    let game = games.iter().find(|g| g.id == p["id"].as_str().unwrap()).unwrap();
    assert_eq!(p["errors"], serde_json::json!([]), "{sport}: no JavaScript errors");
    assert_eq!(p["reconnects"], 1, "{sport}: the dropped connection came back");
    let seqs: Vec<u64> = p["seqs"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    let last = game.events.last().unwrap().event.seq;
    assert!(p["droppedAt"].as_u64().unwrap() < last, "{sport}: dropped before the end");
    assert_eq!(seqs, (seqs[0]..=last).collect::<Vec<_>>(), "{sport}: every state once, in order");
    assert_eq!(p["clock"], "FINAL", "{sport}");
    assert_eq!(p["axe"], serde_json::json!([]), "{sport}: accessibility (axe-core, serious or critical)");
    // The feed-quality badge: a clean simulated feed is ok (the dropped connection is the
    // page's, not the feed's).
    assert_eq!(p["health"], "Feed ok", "{sport}");
    // Opened mid-game, a page draws the whole game so far exactly as one open from the start.
    let charts = p["charts"].as_object().unwrap();
    assert!(!charts.is_empty(), "{sport}: no charts");
    for (name, data) in charts {
        assert_eq!(&p["mid"]["charts"][name], data, "{sport}: the {name} chart of the page opened mid-game");
        assert!(data[0].as_array().unwrap().len() > 2, "{sport}: {name} has points");
    }
    assert_eq!(p["mid"]["moments"], p["moments"], "{sport}: key moments");
    assert_eq!(p["mid"]["momentum"], p["momentum"], "{sport}: momentum");
    // Storylines: the analyst's last notes, newest first, the same on the page opened mid-game,
    // and the last one the final.
    assert_eq!(p["mid"]["notes"], p["notes"], "{sport}: storylines");
    let notes = p["notes"].as_array().unwrap();
    assert!(!notes.is_empty(), "{sport}: no storylines");
    let analyst = server.latest_json(&format!("game/{}/analyst", game.id)).map(|n| n["text"].clone());
    assert_eq!(notes.first(), analyst.as_ref(), "{sport}: the newest storyline is the analyst's last note");
    // At the final the header links the post-game report, and it answers.
    let report = p["report"].as_str().unwrap_or_else(|| panic!("{sport}: no report link"));
    assert_eq!(report, format!("/v1/games/{}/report", game.id));
    let (status, html) = server.get(report).await;
    assert_eq!(status, 200, "{sport}: {html}");
    let panels: Vec<&str> = p["panels"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let expect: &[&str] = match game.sport {
        Sport::Basketball => &["p-wp", "p-lead", "p-stats", "p-box", "p-court", "p-notes"],
        Sport::Football => &["p-wp", "p-lead", "p-field", "p-stats", "p-epa", "p-drives", "p-notes"],
        Sport::Soccer => &["p-stats", "p-xg", "p-momentum", "p-shots", "p-notes"],
        Sport::F1 => &["p-tower", "p-laps", "p-gaps", "p-stints", "p-control", "p-notes"],
    };
    for e in expect {
        assert!(panels.contains(e), "{sport}: panel {e} missing from {panels:?}");
    }
    println!(
        "{sport}: {} · JavaScript {} bytes {} · frames while streaming {} · screenshots game-{sport}-{{start,mid,final}}.png",
        p["title"], p["jsBytes"], p["scripts"], p["frames"]
    );
    let (_, body) = server.get(&format!("/v1/games/{}", game.id)).await;
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    if game.sport == Sport::F1 {
        check_f1_page(sport, p, &state);
        return;
    }
    let title = format!(
        "{} {} – {} {}",
        state["home"].as_str().unwrap(),
        state["score"]["home"],
        state["score"]["away"],
        state["away"].as_str().unwrap()
    );
    assert_eq!(p["title"].as_str(), Some(title.as_str()), "{sport}: the final score");
    let margin = state["score"]["home"].as_i64().unwrap() - state["score"]["away"].as_i64().unwrap();
    if matches!(game.sport, Sport::Basketball | Sport::Football) {
        // Win probability on a fixed 0–100% axis; the game clock runs forward; the lead
        // tracker ends on the final margin; at most three key moments, each naming its play.
        assert_eq!(
            p["wpRange"],
            serde_json::json!([0, 1]),
            "{sport}: win probability on a fixed 0–100% axis"
        );
        let xs: Vec<f64> =
            p["charts"]["wp"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{sport}: win probability on the game clock");
        let regulation = if game.sport == Sport::Basketball { 48.0 } else { 60.0 };
        assert!(*xs.last().unwrap() >= regulation, "{sport}: the chart reaches the end of regulation");
        let lead = p["charts"]["lead"][1].as_array().unwrap();
        assert_eq!(lead.last().and_then(|v| v.as_i64()), Some(margin), "{sport}: lead tracker's last margin");
        // Key moments: the three biggest swings (8 points or more) of the chart, in time order,
        // each with its size and the play behind it (a shot or play is named, not just typed).
        let wp: Vec<f64> =
            p["charts"]["wp"][1].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let mut swings: Vec<(usize, f64)> =
            (1..wp.len()).map(|i| (i, wp[i] - wp[i - 1])).filter(|(_, d)| d.abs() >= 0.08).collect();
        swings.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        swings.truncate(3);
        swings.sort_by_key(|s| s.0);
        let moments: Vec<&str> =
            p["moments"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(moments.len(), swings.len(), "{sport}: {moments:?}");
        for (m, (_, delta)) in moments.iter().zip(&swings) {
            let size = format!("+{}%", (delta.abs() * 100.0).round());
            assert!(m.contains(&size), "{sport}: {m} should say {size}");
            assert!(!m.ends_with("· Shot") && !m.ends_with("· Play"), "{sport}: the play is named: {m}");
        }
    }
    match game.sport {
        Sport::Basketball => {
            assert!(p["box"].as_u64().unwrap() >= 10, "{sport}: box score rows");
            // Team totals rows, whose +/- is the final margin.
            let totals: Vec<&str> =
                p["totals"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(
                totals,
                [margin.to_string(), (-margin).to_string()],
                "{sport}: team +/- is the margin"
            );
            assert!(p["court"].as_i64().unwrap() > 50, "{sport}: shot chart {}", p["court"]);
            assert_eq!(p["hoops"], 2, "{sport}: a hoop at each end");
            assert!(p["stats"].as_array().unwrap().len() >= 8, "{sport}: team stats {}", p["stats"]);
        }
        Sport::Football => {
            assert!(p["drives"].as_u64().unwrap() > 3, "{sport}: drive chart");
            let numbers: Vec<u64> =
                p["driveNumbers"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{sport}: drives in order, once each: {numbers:?}"
            );
            assert_eq!(p["field"], 1, "{sport}: the line of scrimmage on the field");
            check_situations(sport, p, &state);
        }
        Sport::Soccer => {
            assert!(p["shots"].as_u64().unwrap() > 0, "{sport}: shot map");
            assert!(p["possession"].as_str().unwrap().starts_with("Possession"), "{sport}");
            // The momentum bars add up to each side's xG (the chart's last point).
            let xg = &p["charts"]["xg"];
            let bars = p["momentum"].as_array().unwrap();
            for (i, side) in [(1, "home"), (2, "away")] {
                let sum: f64 = bars.iter().map(|b| b[i].as_f64().unwrap()).sum();
                let total = xg[i].as_array().unwrap().last().unwrap().as_f64().unwrap();
                assert!(
                    (sum - total).abs() < 0.01 * bars.len() as f64,
                    "{sport}: {side} momentum {sum} vs xG {total}"
                );
            }
        }
        Sport::F1 => {}
    }
}

fn check_f1_page(sport: &str, p: &serde_json::Value, state: &serde_json::Value) {
    let cars = state["f1"]["cars"].as_array().unwrap();
    assert_eq!(p["tower"].as_u64(), Some(cars.len() as u64), "{sport}: the whole field in the tower");
    assert!(p["control"].as_u64().unwrap() > 0, "{sport}: race control has entries");
    // Each driver's win chance (f1_win) beside the timing: the race is over, the leader has won.
    let win: Vec<&str> = p["win"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(win.first(), Some(&"100%"), "{sport}: the winner's chance in the tower: {win:?}");
    assert!(win.iter().skip(1).all(|w| *w == "0%"), "{sport}: {win:?}");
    // Lap times as timing screens show them: m:ss.mmm (or s.mmm under a minute).
    let laps: Vec<&str> = p["lastLaps"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let lap_like = |t: &str| {
        let (m, rest) = t.split_once(':').unwrap_or(("0", t));
        let (sec, ms) = rest.split_once('.').unwrap_or(("", ""));
        m.parse::<u32>().is_ok() && (t.contains(':') == (sec.len() == 2)) && ms.len() == 3
    };
    assert!(laps.iter().any(|t| t.contains(':')), "{sport}: race laps over a minute: {laps:?}");
    assert!(laps.iter().all(|t| t.is_empty() || lap_like(t)), "{sport}: {laps:?}");
    // Tyres lettered (S, M, H, I, W; – where the feed has not said) with the stint's age.
    for t in p["tyres"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        assert!(["S", "M", "H", "I", "W", "–"].iter().any(|c| t.starts_with(c)), "{sport}: tyre {t:?}");
    }
    // The lap chart: the last lap's positions are the final classification.
    let chart = &p["charts"]["laps"];
    let total = chart[0].as_array().unwrap().len();
    assert_eq!(
        chart[0][total - 1],
        state["f1"]["cars"][0]["lap"],
        "{sport}: the lap chart reaches the last lap"
    );
    // A line per driver (sorted by name); on the last lap each finisher sits at its final place.
    let mut drivers: Vec<&str> = cars.iter().map(|c| c["driver"].as_str().unwrap()).collect();
    drivers.sort_unstable();
    for c in cars.iter().filter(|c| c["lap"] == chart[0][total - 1]) {
        let i = drivers.iter().position(|d| *d == c["driver"].as_str().unwrap()).unwrap();
        assert_eq!(
            chart[i + 1][total - 1],
            c["position"],
            "{sport}: {} on the lap chart's last lap",
            c["driver"]
        );
    }
    assert!(p["stints"].as_u64().unwrap() >= cars.len() as u64, "{sport}: a stint per car at least");
}

/// Down and distance as a broadcast says them: "GB ball, 3rd & 4 at DAL 35".
fn check_situations(sport: &str, p: &serde_json::Value, state: &serde_json::Value) {
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
