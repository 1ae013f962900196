//! The post-game report (`GET /v1/games/{id}/report`, `opensports report GAME --pdf`): each
//! real replay in `OPENSPORTS_DATA` gives a report whose final score, leaders and chart data
//! match the log (re-derived here from the events), a self-contained page (no script, no
//! request beyond itself, no serious or critical axe-core finding, screenshots in
//! `target/test-artifacts/`), and a PDF made by the CLI
//! without a browser whose text (`pdftotext`, from Debian's poppler-utils) holds them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use opensports_proto::{Body, Event, Side, basketball as bk, f1, soccer as sc};
use opensports_server::pipeline::state::{GameState, Status};
use opensports_tests::{TestServer, history_data, opensports_bin, real_events, workspace};

/// What the log says the report must show.
struct Expected {
    score: Option<[u32; 2]>,
    /// Basketball: each side's top scorers (ties) and their points.
    top: [(Vec<String>, u32); 2],
    /// Shots (basketball field goals, soccer shots) and how many went in.
    shots: (usize, usize),
    /// F1: the fastest lap's driver and time, and the last lap.
    fastest: Option<(String, u32)>,
    last_lap: u16,
    /// F1: each driver's place at the end of the last lap they completed.
    finish: BTreeMap<String, (u16, u8)>,
}

fn expected(events: &[Event]) -> Expected {
    let mut state = GameState::new(&events[0].game, events[0].sport());
    let mut pts: [HashMap<String, u32>; 2] = Default::default();
    let (mut shots, mut made) = (0, 0);
    let mut fastest: Option<(String, u32)> = None;
    let mut last_lap = 0;
    let mut finish = BTreeMap::new();
    for e in events {
        state.apply(e);
        match &e.body {
            Body::Basketball(b) => {
                if let bk::Event::Shot { made: m, .. } = b {
                    shots += 1;
                    made += usize::from(*m);
                }
                if let (Some((side, n)), [Some(p), _]) = (b.points(), b.people()) {
                    *pts[side.index()].entry(p.to_string()).or_default() += u32::from(n);
                }
            }
            Body::Soccer(sc::Event::Shot { outcome, .. }) => {
                shots += 1;
                made += usize::from(*outcome == sc::ShotOutcome::Goal);
            }
            Body::F1(f1::Event::Lap(l)) => {
                if let Some(ms) = l.lap_ms
                    && fastest.as_ref().is_none_or(|(_, b)| ms < *b)
                {
                    fastest = Some((l.driver.clone(), ms));
                }
                last_lap = last_lap.max(l.lap);
                finish.insert(l.driver.clone(), (l.lap, l.position));
            }
            _ => {}
        }
    }
    assert_eq!(state.status, Status::Ended);
    let top = |m: &HashMap<String, u32>| {
        let best = m.values().copied().max().unwrap_or(0);
        (m.iter().filter(|(_, v)| **v == best).map(|(k, _)| k.clone()).collect(), best)
    };
    Expected {
        score: state.score.map(|s| [s.home, s.away]),
        top: [top(&pts[0]), top(&pts[1])],
        shots: (shots, made),
        fastest,
        last_lap,
        finish,
    }
}

fn pdftotext(pdf: &Path) -> Option<String> {
    let out = std::process::Command::new("pdftotext").arg("-layout").arg(pdf).arg("-").output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8(o.stdout).unwrap()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide pdftotext (apt-get install poppler-utils)"
            );
            eprintln!("SKIPPED the PDF text check: no pdftotext (apt-get install poppler-utils)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_real_replay_has_a_report_page_and_a_pdf_that_match_the_log() {
    let server = TestServer::start_with(|c| c.plugins.builtin = true).await;
    let out_dir = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&out_dir).unwrap();
    let http = format!("http://{}", server.running().http_addr);
    let bin = opensports_bin();
    let mut pages = Vec::new();
    for file in opensports_tests::REAL_FEEDS {
        let Some(events) = real_events(file) else {
            eprintln!("skipped: OPENSPORTS_DATA is not set");
            return;
        };
        server.publish_all(&events).await;
        let game = events[0].game.clone();
        let want = expected(&events);
        let (status, body) = server.get(&format!("/v1/games/{game}/report?format=json")).await;
        assert_eq!(status, 200, "{body}");
        let r: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(r["status"], "Final", "{file}");
        let name = file.split('/').next_back().unwrap().split('.').next().unwrap().to_string();
        std::fs::write(out_dir.join(format!("report-{name}.json")), &body).unwrap();

        // The final score, in the title.
        let mut must_say: Vec<String> = Vec::new();
        if let Some([h, a]) = want.score {
            assert_eq!(r["score"], serde_json::json!([h, a]), "{file}");
            let title = r["title"].as_str().unwrap();
            assert!(title.contains(&format!("{h}–{a}")), "{file}: {title}");
            must_say.push(format!("{h}–{a}"));
        }
        let leaders: Vec<&str> =
            r["leaders"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let chart = &r["chart"];
        match events[0].sport() {
            opensports_proto::Sport::Basketball => {
                for (i, side) in [Side::Home, Side::Away].into_iter().enumerate() {
                    let team = r["teams"][i].as_str().unwrap();
                    let (names, pts) = &want.top[side.index()];
                    let line = leaders.iter().find(|l| l.starts_with(&format!("{team} points: "))).unwrap();
                    assert!(
                        names.iter().any(|n| *line == format!("{team} points: {n} {pts}")),
                        "{file}: {line} is not {names:?} with {pts}"
                    );
                    must_say.push(line.to_string());
                }
                let marks = chart["shots"].as_array().unwrap();
                let made = marks.iter().filter(|m| m["scored"] == true).count();
                assert_eq!(
                    (chart["kind"].as_str().unwrap(), marks.len(), made),
                    ("court", want.shots.0, want.shots.1)
                );
            }
            opensports_proto::Sport::Soccer => {
                let marks = chart["shots"].as_array().unwrap();
                let goals = marks.iter().filter(|m| m["scored"] == true).count();
                assert_eq!(
                    (chart["kind"].as_str().unwrap(), marks.len(), goals),
                    ("pitch", want.shots.0, want.shots.1)
                );
                assert_eq!(leaders.iter().filter(|l| l.starts_with("Goal ")).count(), want.shots.1, "{file}");
            }
            opensports_proto::Sport::Football => {
                // One bar per drive the drives plugin closed, in order.
                let drive = |i: usize| server.latest_json(&format!("game/{game}/football-drives/drive/{i}"));
                let n = (1..).take_while(|i| drive(*i).is_some()).count();
                assert!(n > 10, "{file}: {n} drives");
                assert_eq!(chart["kind"], "drives");
                assert_eq!(chart["drives"].as_array().unwrap().len(), n, "{file}");
            }
            opensports_proto::Sport::F1 => {
                let (driver, ms) = want.fastest.clone().unwrap();
                let time = format!("{}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000);
                let line = format!("Fastest lap: {driver} {time}");
                assert!(leaders.iter().any(|l| l.starts_with(&line)), "{file}: {leaders:?} lacks {line}");
                must_say.push(line);
                assert_eq!(chart["kind"], "laps");
                assert_eq!(chart["laps"].as_u64(), Some(u64::from(want.last_lap)), "{file}");
                for d in chart["drivers"].as_array().unwrap() {
                    let name = d["driver"].as_str().unwrap();
                    let last = d["positions"].as_array().unwrap().last().unwrap();
                    let (lap, pos) = want.finish[name];
                    assert_eq!(last, &serde_json::json!([lap, pos]), "{file}: {name}'s last lap");
                }
            }
        }
        // Win probability: one point per publication, the moments its biggest swings.
        if !r["wp"].is_null() {
            let mut sub = server.subscriber().await;
            let wp = history_data(&mut sub, &format!("game/{game}/winprob")).await;
            let points = r["wp"]["points"].as_array().unwrap();
            assert_eq!(points.len(), wp.len(), "{file}");
            for (p, w) in points.iter().zip(&wp) {
                assert_eq!(p[1], w["home"], "{file}");
            }
            let ys: Vec<f64> = wp.iter().map(|w| w["home"].as_f64().unwrap()).collect();
            let moments = r["wp"]["moments"].as_array().unwrap();
            let idx = opensports_server::report::swings(&ys, 3, 0.08);
            assert_eq!(moments.len(), idx.len());
            for (m, i) in moments.iter().zip(idx) {
                assert_eq!(
                    (m["before"].as_f64(), m["after"].as_f64()),
                    (Some(ys[i - 1]), Some(ys[i])),
                    "{file}"
                );
            }
        }
        // The storylines are the analyst's notes.
        let mut sub = server.subscriber().await;
        let notes = history_data(&mut sub, &format!("game/{game}/analyst")).await;
        let texts: Vec<&str> = notes.iter().map(|n| n["text"].as_str().unwrap()).collect();
        assert_eq!(r["notes"], serde_json::json!(texts), "{file}");
        assert_eq!(r["quality"]["status"], "ok", "{file}");

        // The page: self-contained, and it shows what the JSON says.
        let (status, html) = server.get(&format!("/v1/games/{game}/report")).await;
        assert_eq!(status, 200);
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("<link"), "{file}");
        for s in &must_say {
            assert!(html.contains(s.as_str()), "{file}: the page lacks {s}");
        }
        let marks =
            html.matches(r#"<circle class="shot""#).count() + html.matches(r#"<circle class="goal""#).count();
        if matches!(events[0].sport(), opensports_proto::Sport::Basketball | opensports_proto::Sport::Soccer)
        {
            assert_eq!(marks, want.shots.0, "{file}: a mark per shot");
        }
        pages.push(format!("{name}={http}/v1/games/{game}/report"));

        // The PDF, by the CLI, and its text.
        let pdf = out_dir.join(format!("report-{name}.pdf"));
        let status = std::process::Command::new(&bin)
            .args(["report", &game, "--url", &http, "--pdf"])
            .arg(&pdf)
            .env("RUST_LOG", "off")
            .status()
            .unwrap();
        assert!(status.success(), "{file}: opensports report");
        let bytes = std::fs::read(&pdf).unwrap();
        assert!(bytes.starts_with(b"%PDF-"), "{file}");
        if let Some(text) = pdftotext(&pdf) {
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            for s in must_say.iter().chain([&r["title"].as_str().unwrap().to_string()]) {
                assert!(flat.contains(s.as_str()), "{file}: the PDF's text lacks {s:?}:\n{flat}");
            }
            let first_note =
                texts.first().map(|t| t.split_whitespace().take(4).collect::<Vec<_>>().join(" "));
            if let Some(n) = first_note {
                assert!(flat.contains(&n), "{file}: the PDF's text lacks the storyline {n:?}");
            }
            println!(
                "{file}: report {} bytes of HTML, PDF {} bytes ({} pages of text)",
                html.len(),
                bytes.len(),
                text.matches('\u{c}').count().max(1)
            );
        }
    }
    screenshots(&out_dir, &pages).await;
    server.shutdown().await;
}

/// Each page in chromium: a screenshot, and no request beyond the page itself.
async fn screenshots(out_dir: &Path, pages: &[String]) {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() || !browser_dir.join("node_modules/playwright-core").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide chromium and playwright-core");
        eprintln!("SKIPPED report screenshots: no chromium or playwright-core");
        return;
    }
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("report.mjs"))
        .arg(out_dir)
        .args(pages)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), pages.len());
    for l in &lines {
        assert_eq!(l["requests"], serde_json::json!([]), "{l}");
        assert_eq!(l["consoleErrors"], serde_json::json!([]), "{l}");
        assert_eq!(l["axe"], serde_json::json!([]), "accessibility (axe-core, serious or critical): {l}");
        assert!(l["svgs"].as_u64().unwrap() >= 1, "{l}");
        println!("report-{}.png: {} ({} charts)", l["name"].as_str().unwrap(), l["title"], l["svgs"]);
    }
}

/// A report after its game left memory (`pipeline.ended_game_ttl_secs`) and after a restart:
/// the one saved in the log as the game left, the same as the live one; it needs read access to
/// all of the game, not only its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_outlives_its_game_in_memory_and_a_restart() {
    let events = opensports_tests::real_or_sim(
        "nba/nba_live_pbp_0022000001.json",
        opensports_proto::Sport::Basketball,
        9,
    );
    let mut server = TestServer::start_with(|c| {
        c.plugins.builtin = true;
        c.pipeline.ended_game_ttl_secs = 1;
        // Anyone may read states (the test's publish waits on them); nothing else is public.
        c.auth.public_topics = vec!["game/+/state".into()];
    })
    .await;
    let game = events[0].game.clone();
    let all = server.key(opensports_server::auth::Role::Subscriber, &[&format!("game/{game}/#")]);
    let state_only = server.key(opensports_server::auth::Role::Subscriber, &["game/+/state"]);
    let path = format!("/v1/games/{game}/report?format=json");
    server.publish_all(&events).await;
    let (status, live) = server.call(&all, "GET", &path, None).await;
    assert_eq!(status, 200, "{live}");
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    // Gone from memory: the game's state answers 404.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.call(&all, "GET", &format!("/v1/games/{game}"), None).await.0 != 404 {
        assert!(std::time::Instant::now() < deadline, "the game never left memory");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for round in ["after eviction", "after a restart"] {
        let (status, saved) = server.call(&all, "GET", &path, None).await;
        assert_eq!(status, 200, "{round}: {saved}");
        let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
        assert_eq!(saved, live, "{round}: the saved report is the live one");
        let (status, html) = server.call(&all, "GET", &format!("/v1/games/{game}/report"), None).await;
        assert_eq!(status, 200);
        assert!(html.contains(live["title"].as_str().unwrap()), "{round}");
        let (status, body) = server.call(&state_only, "GET", &path, None).await;
        assert_eq!(status, 403, "{round}: the saved report holds more than the state: {body}");
        let (status, _) = server.call(&all, "GET", "/v1/games/no-such-game/report", None).await;
        assert_eq!(status, 404);
        server.restart().await;
    }
    server.shutdown().await;
}
