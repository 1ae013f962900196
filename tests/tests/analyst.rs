//! The game analyst (`game/{id}/analyst`): every real replay in `OPENSPORTS_DATA` gives
//! storylines, and every fact of every published note re-derives from the log: this test folds
//! the events again on its own (the core state's pure fold for the score, its own tallies for
//! everything the analyst keeps) and checks each fact's value after the event it names and
//! after the event it was published at. Model numbers (win probability, xG) must be values the
//! model's topic published. A second replay of the same events gives the same notes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use opensports_proto::football::{Event as Fb, PlayResult, PlayType};
use opensports_proto::soccer::Event as Sc;
use opensports_proto::{Body, Event, f1};
use opensports_server::pipeline::state::{Detail, GameState};
use opensports_tests::{TestServer, history_data, real_events};

/// The numbers the analyst quotes, folded from the events by this test alone.
struct Derived {
    state: GameState,
    pts: HashMap<(String, u8), u32>,
    streak: HashMap<String, u32>,
    goals: HashMap<String, u32>,
    score: [u32; 2],
    leader: Option<usize>,
    lead_changes: u32,
    max_lead: [u32; 2],
    trailed: [u32; 2],
    overcame: [u32; 2],
    run: Option<(usize, u32)>,
    turnovers: [u32; 2],
    longest: i16,
    fastest: Option<(u32, u16)>,
    sc: Option<(u16, HashMap<String, u8>)>,
    under_sc: bool,
}

impl Derived {
    fn new(first: &Event) -> Derived {
        Derived {
            state: GameState::new(&first.game, first.sport()),
            pts: HashMap::new(),
            streak: HashMap::new(),
            goals: HashMap::new(),
            score: [0, 0],
            leader: None,
            lead_changes: 0,
            max_lead: [0, 0],
            trailed: [0, 0],
            overcame: [0, 0],
            run: None,
            turnovers: [0, 0],
            longest: 0,
            fastest: None,
            sc: None,
            under_sc: false,
        }
    }

    fn apply(&mut self, ev: &Event) {
        self.state.apply(ev);
        if let Some(s) = self.state.score {
            let now = [s.home, s.away];
            let (dh, da) = (now[0] as i64 - self.score[0] as i64, now[1] as i64 - self.score[1] as i64);
            if dh < 0 || da < 0 || (dh > 0 && da > 0) {
                self.run = None;
            } else if dh > 0 || da > 0 {
                let (side, n) = if dh > 0 { (0, dh as u32) } else { (1, da as u32) };
                self.run = Some(match self.run {
                    Some((s, r)) if s == side => (side, r + n),
                    _ => (side, n),
                });
            }
            self.score = now;
            if now[0] != now[1] {
                let l = if now[0] > now[1] { 0 } else { 1 };
                if self.leader != Some(l) {
                    self.overcame[l] = self.trailed[l];
                }
                self.trailed[l] = 0;
                self.trailed[1 - l] = self.trailed[1 - l].max(now[l] - now[1 - l]);
                if self.leader.is_some_and(|o| o != l) {
                    self.lead_changes += 1;
                }
                self.leader = Some(l);
                self.max_lead[l] = self.max_lead[l].max(now[l] - now[1 - l]);
            }
        }
        match &ev.body {
            Body::Basketball(b) => {
                if let opensports_proto::basketball::Event::Shot { player, made, .. } = b {
                    let s = self.streak.entry(player.clone()).or_default();
                    *s = if *made { *s + 1 } else { 0 };
                }
                if let (Some((_, n)), [Some(p), _]) = (b.points(), b.people()) {
                    *self.pts.entry((p.to_string(), self.state.period.max(1))).or_default() += u32::from(n);
                }
            }
            Body::Football(Fb::Play(p)) => {
                if matches!(p.result, PlayResult::Interception | PlayResult::FumbleLost) {
                    self.turnovers[p.possession.index()] += 1;
                }
                if matches!(p.play_type, PlayType::Run | PlayType::Pass) {
                    self.longest = self.longest.max(p.yards);
                }
            }
            Body::Soccer(Sc::Goal { player, own_goal: false, .. }) => {
                *self.goals.entry(player.clone()).or_default() += 1
            }
            Body::F1(f1::Event::Lap(l)) => {
                if let Some(ms) = l.lap_ms
                    && self.fastest.is_none_or(|(b, _)| ms < b)
                {
                    self.fastest = Some((ms, l.lap));
                }
            }
            Body::F1(f1::Event::RaceControl { flag, .. }) => match flag {
                f1::Flag::SafetyCar | f1::Flag::VirtualSafetyCar => {
                    if !self.under_sc {
                        let Detail::F1(f) = &self.state.detail else { unreachable!() };
                        self.sc =
                            Some((f.lap, f.cars.iter().map(|c| (c.driver.clone(), c.position)).collect()));
                    }
                    self.under_sc = true;
                }
                f1::Flag::Green | f1::Flag::Clear => self.under_sc = false,
                _ => {}
            },
            _ => {}
        }
    }

    /// A fact's value by this test's fold; `None` for the model numbers (checked elsewhere).
    fn value(&self, f: &serde_json::Value) -> Option<f64> {
        let stat = f["stat"].as_str().unwrap();
        let subject = f["subject"].as_str();
        let side = || match subject.unwrap() {
            "home" => 0,
            "away" => 1,
            s => panic!("side {s}"),
        };
        let car = || {
            let Detail::F1(d) = &self.state.detail else { panic!("not F1") };
            d.cars.iter().find(|c| Some(c.driver.as_str()) == subject).unwrap().clone()
        };
        let soccer = || match &self.state.detail {
            Detail::Soccer(s) => s.clone(),
            _ => panic!("not soccer"),
        };
        let pick = |p: opensports_server::pipeline::state::PerSide| f64::from([p.home, p.away][side()]);
        Some(match stat {
            "wp" | "wp_before" | "xg" => return None,
            "score" => f64::from(self.score[side()]),
            "max_lead" => f64::from(self.max_lead[side()]),
            "overcame" => f64::from(self.overcame[side()]),
            "run" => f64::from(self.run.filter(|(s, _)| *s == side()).map_or(0, |(_, n)| n)),
            "turnovers" => f64::from(self.turnovers[side()]),
            "shots" => pick(soccer().shots),
            "shots_on_target" => pick(soccer().shots_on_target),
            "red_cards" => pick(soccer().red_cards),
            "lead_changes" => f64::from(self.lead_changes),
            "longest_play" => f64::from(self.longest),
            "period" => f64::from(self.state.period),
            "lap" => match &self.state.detail {
                Detail::F1(d) => f64::from(d.lap),
                _ => panic!(),
            },
            "fastest_lap_ms" => f64::from(self.fastest.unwrap().0),
            "fastest_lap_lap" => f64::from(self.fastest.unwrap().1),
            "sc_lap" => f64::from(self.sc.as_ref().unwrap().0),
            "max_period_pts" => f64::from(*self.pts.values().max().unwrap()),
            "max_pts" => {
                let mut totals: HashMap<&str, u32> = HashMap::new();
                for ((p, _), n) in &self.pts {
                    *totals.entry(p).or_default() += n;
                }
                f64::from(*totals.values().max().unwrap())
            }
            "pts" => {
                let p = subject.unwrap();
                f64::from(match f["period"].as_u64() {
                    Some(per) => self.pts.get(&(p.to_string(), per as u8)).copied().unwrap_or(0),
                    None => self.pts.iter().filter(|((q, _), _)| q == p).map(|(_, n)| n).sum(),
                })
            }
            "goals" => f64::from(self.goals[subject.unwrap()]),
            "fg_streak" => f64::from(self.streak[subject.unwrap()]),
            "pos" => f64::from(car().position),
            "grid" => f64::from(car().grid),
            "sc_pos" => f64::from(self.sc.as_ref().unwrap().1[subject.unwrap()]),
            "best_lap_ms" => f64::from(car().best_lap_ms.unwrap()),
            s => panic!("a fact this test does not know: {s}"),
        })
    }
}

/// The numbers a note's text may show: its facts as printed (whole, one decimal), as
/// percentages, differences of two, lap times, players left (11 - red cards), the period, the
/// names of its subjects (F1 car numbers, provider ids), and 0 (of a run).
fn said_numbers(n: &serde_json::Value) -> std::collections::HashSet<String> {
    let facts = n["facts"].as_array().unwrap();
    let values: Vec<f64> = facts.iter().map(|f| f["value"].as_f64().unwrap()).collect();
    let mut ok: std::collections::HashSet<String> = ["0".to_string()].into();
    ok.insert(n["period"].to_string());
    let add = |ok: &mut std::collections::HashSet<String>, v: f64| {
        ok.insert(format!("{v}"));
        ok.insert(format!("{v:.1}"));
    };
    for (i, &v) in values.iter().enumerate() {
        add(&mut ok, v);
        add(&mut ok, (v * 100.0).round());
        add(&mut ok, 11.0 - v);
        for &w in &values[i + 1..] {
            add(&mut ok, (v - w).abs());
        }
        let ms = v as u64;
        add(&mut ok, (ms / 60_000) as f64);
        ok.insert(format!("{:02}.{:03}", ms / 1000 % 60, ms % 1000));
    }
    for f in facts.iter().chain([n]) {
        if let Some(s) = f["subject"].as_str() {
            ok.extend(s.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).map(str::to_string));
        }
    }
    ok
}

/// The fold after every event up to and including `seq`.
fn derived_at(events: &[Event], seq: u64) -> Derived {
    let mut d = Derived::new(&events[0]);
    for e in events.iter().filter(|e| e.seq <= seq) {
        d.apply(e);
    }
    d
}

/// The analyst's notes of a replay, and the model numbers its topics published (win
/// probability for either side, xG totals).
async fn replay(server: &TestServer, events: &[Event]) -> (Vec<serde_json::Value>, Vec<f64>) {
    server.publish_all(events).await;
    let game = &events[0].game;
    let mut sub = server.subscriber().await;
    let notes = history_data(&mut sub, &format!("game/{game}/analyst")).await;
    let mut model = Vec::new();
    for wp in history_data(&mut sub, &format!("game/{game}/winprob")).await {
        model.extend([wp["home"].as_f64(), wp["away"].as_f64()].into_iter().flatten());
    }
    for xg in history_data(&mut sub, &format!("game/{game}/soccer-shots/xg")).await {
        model.extend([xg["home"].as_f64(), xg["away"].as_f64()].into_iter().flatten());
    }
    (notes, model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_replays_tell_storylines_whose_every_fact_rederives_from_the_log() {
    // The built-in plugins run: soccer notes quote soccer-shots' xG.
    let server = TestServer::start_with(|c| c.plugins.builtin = true).await;
    let mut total = 0;
    // Every note of every replay, for people to read: target/test-artifacts/analyst-notes.txt.
    let mut listing = String::new();
    for file in opensports_tests::REAL_FEEDS {
        let Some(events) = real_events(file) else {
            eprintln!("skipped: OPENSPORTS_DATA is not set");
            return;
        };
        let (notes, model) = replay(&server, &events).await;
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for n in &notes {
            *kinds.entry(n["kind"].as_str().unwrap()).or_default() += 1;
        }
        println!("{file}: {} notes {kinds:?}", notes.len());
        listing += &format!("\n{file}: {} notes\n", notes.len());
        for n in &notes {
            listing += &format!("  [{}] {}\n", n["kind"].as_str().unwrap(), n["text"].as_str().unwrap());
        }
        assert!(notes.len() >= 3, "{file}: {} notes", notes.len());
        assert_eq!(notes.last().unwrap()["kind"], "final", "{file}: the final note closes the game");
        let mut cache: HashMap<u64, Derived> = HashMap::new();
        for (i, n) in notes.iter().enumerate() {
            assert_eq!(n["id"].as_u64(), Some(i as u64 + 1), "{file}: ids in order");
            if i < 5 {
                println!("  [{}] {}", n["kind"].as_str().unwrap(), n["text"].as_str().unwrap());
            }
            let facts = n["facts"].as_array().unwrap();
            assert!(!facts.is_empty(), "{file}: a note without facts: {n}");
            for f in facts {
                let value = f["value"].as_f64().unwrap();
                for seq in [f["seq"].as_u64().unwrap(), n["at_seq"].as_u64().unwrap()] {
                    let d = cache.entry(seq).or_insert_with(|| derived_at(&events, seq));
                    match d.value(f) {
                        Some(v) => assert_eq!(v, value, "{file}: fact {f} after seq {seq} is {v}: {n}"),
                        None => assert!(
                            model.iter().any(|m| (m - value).abs() < 1e-9),
                            "{file}: {f} is no value the model published: {n}"
                        ),
                    }
                }
            }
            // Every number the text shows is one of the facts, or made from them (a
            // difference, a percentage, a lap time, players left after red cards), or the
            // period it names.
            let text = n["text"].as_str().unwrap();
            let said = said_numbers(n);
            for t in text.split(|c: char| !(c.is_ascii_digit() || c == '.')) {
                let t = t.trim_matches('.');
                if !t.is_empty() {
                    assert!(said.contains(t), "{file}: {t} in {text:?} is no fact of {n}");
                }
            }
        }
        // The rate and the cooldowns (server defaults), on the events' source time at which
        // each note went out: at most 3 a minute and 12 s apart, period ends and the final
        // aside; a kind of note about one subject at most once in 300 s.
        let out_at = |n: &serde_json::Value| {
            let at = n["at_seq"].as_u64().unwrap();
            events.iter().find(|e| e.seq == at).unwrap().ts
        };
        let paced: Vec<(i64, &serde_json::Value)> =
            notes.iter().filter(|n| n["priority"].as_u64().unwrap() < 90).map(|n| (out_at(n), n)).collect();
        for (i, (t, n)) in paced.iter().enumerate() {
            let in_minute = paced[..i].iter().filter(|(u, _)| t - u < 60_000_000).count();
            assert!(in_minute < 3, "{file}: a 4th note within a minute: {n}");
            if let Some((u, _)) = i.checked_sub(1).map(|j| paced[j]) {
                assert!(t - u >= 12_000_000, "{file}: notes {} s apart: {n}", (t - u) / 1_000_000);
            }
            let same = |m: &serde_json::Value| m["kind"] == n["kind"] && m["subject"] == n["subject"];
            assert!(
                !paced[..i].iter().any(|(u, m)| same(m) && t - u < 300_000_000),
                "{file}: said again within 300 s: {n}"
            );
        }
        total += notes.len();
    }
    assert!(total > 0);
    let dir = opensports_tests::workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("analyst-notes.txt"), listing).unwrap();
    let stale = server.metric("opensports_analyst_notes_total{outcome=\"stale\"}").await;
    let published = server.metric("opensports_analyst_notes_total{outcome=\"published\"}").await;
    println!("{total} notes published ({published} counted), {stale} dropped as stale");
    assert_eq!(published as usize, total);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_gives_the_same_notes() {
    let Some(events) = real_events("nba/nba_live_pbp_0022000001.json") else {
        eprintln!("skipped: OPENSPORTS_DATA is not set");
        return;
    };
    let server = TestServer::start().await;
    let (first, _) = replay(&server, &events).await;
    let again: Vec<Event> = events
        .iter()
        .cloned()
        .map(|mut e| {
            e.game = format!("{}-again", e.game);
            e
        })
        .collect();
    let (second, _) = replay(&server, &again).await;
    assert!(first.len() > 10, "{} notes", first.len());
    assert_eq!(first, second, "the same events give the same notes");
    server.shutdown().await;
}

/// The OpenAI-compatible stand-in (`tests/llm/openai_standin.py`): it speaks the
/// chat-completions contract and answers turn by turn faithfully, with a made-up number, with a
/// made-up name, too late, and with a 500.
struct StandIn {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl StandIn {
    async fn start() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let child = std::process::Command::new("python3")
            .arg(opensports_tests::workspace().join("tests/llm/openai_standin.py"))
            .arg(dir.path())
            .spawn()
            .expect("python3");
        let port = opensports_tests::wait_for(std::time::Duration::from_secs(30), || {
            std::fs::read_to_string(dir.path().join("port")).ok()
        })
        .await
        .trim()
        .parse()
        .unwrap();
        StandIn { child, dir, port }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("log.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_language_model_only_rephrases_what_the_facts_say() {
    let events = opensports_tests::real_or_sim(
        "nba/nba_live_pbp_0022000001.json",
        opensports_proto::Sport::Basketball,
        5,
    );
    let standin = StandIn::start().await;
    let server = TestServer::start_with(|c| {
        c.analyst.llm = Some(opensports_server::config::LlmConfig {
            url: format!("http://127.0.0.1:{}/v1", standin.port),
            model: "standin-1".into(),
            // Any variable the test process has: its value must arrive as the bearer token.
            api_key_env: Some("PATH".into()),
            timeout_ms: 3000,
            max_requests_per_minute: 10,
            max_tokens: 60,
            allow_private: true,
        })
    })
    .await;
    server.publish_all(&events).await;
    let metric = |outcome: &str| format!("opensports_analyst_llm_total{{outcome=\"{outcome}\"}}");
    let outcomes = ["rephrased", "refused", "timeout", "error", "budget", "busy"];
    let published = server.metric("opensports_analyst_notes_total{outcome=\"published\"}").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mut done = 0.0;
        for o in outcomes {
            done += server.metric(&metric(o)).await;
        }
        if done >= published {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{done} of {published} notes came back from the model");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let game = &events[0].game;
    let mut sub = server.subscriber().await;
    let notes = history_data(&mut sub, &format!("game/{game}/analyst")).await;
    assert_eq!(notes.len() as f64, published, "every note is published, rephrased or not");
    assert!(notes.len() > 10, "{} notes", notes.len());
    // Ten requests (the budget), five turns twice: two faithful answers, two made-up numbers,
    // two made-up names (refused), two too late, two 500s; the rest over budget.
    let requests = standin.requests();
    for o in outcomes {
        println!("{o}: {}", server.metric(&metric(o)).await);
    }
    assert_eq!(requests.len(), 10, "{requests:?}");
    assert_eq!(server.metric(&metric("rephrased")).await, 2.0);
    assert_eq!(server.metric(&metric("refused")).await, 4.0);
    assert_eq!(server.metric(&metric("timeout")).await, 2.0);
    assert_eq!(server.metric(&metric("error")).await, 2.0);
    assert_eq!(server.metric(&metric("budget")).await, published - 10.0);
    let path = std::env::var("PATH").unwrap();
    for r in &requests {
        assert_eq!(r["model"], "standin-1");
        assert_eq!(r["max_tokens"], 60);
        assert_eq!(r["authorization"], format!("Bearer {path}"));
        let user = r["user"].as_str().unwrap();
        assert!(user.starts_with("Facts:\n- "), "the model is given the facts: {user}");
    }
    let mut rephrased = 0;
    for n in &notes {
        let text = n["text"].as_str().unwrap();
        assert!(!text.contains("9999") && !text.contains("Jordan"), "a made-up number or name went out: {n}");
        if n["phrased_by"] == "standin-1" {
            rephrased += 1;
            assert_eq!(text, format!("{} right now", n["template"].as_str().unwrap()));
        } else {
            assert!(n.get("template").is_none(), "{n}");
        }
    }
    assert_eq!(rephrased, 2);
    server.shutdown().await;
}
