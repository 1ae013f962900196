use super::*;

fn rule(name: &str, value: &str, when: &str) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        sport: None,
        value: value.into(),
        when: when.into(),
        hysteresis: 0.0,
        cooldown_ms: 0,
        text: String::new(),
        texts: Default::default(),
    }
}

/// Feeds `(seq, topic, json)` publications one event each; returns every firing as JSON.
fn run(t: &Triggers, pubs: &[(u64, &str, &str)]) -> (Vec<Value>, GameTriggers) {
    let mut g = GameTriggers::default();
    let mut fired = Vec::new();
    for &(seq, topic, data) in pubs {
        let mut changed = Vec::new();
        if g.observe(&t.current(), Sport::Basketball, topic, data.as_bytes()) {
            changed.push(topic.to_string());
        }
        let ts = seq as i64 * 1_000_000;
        g.evaluate(t, &t.current(), ("g", Sport::Basketball), (seq, ts), &changed, &mut |b| {
            fired.push(serde_json::from_slice(b).unwrap())
        });
    }
    (fired, g)
}

fn seqs(fired: &[Value], name: &str) -> Vec<u64> {
    fired.iter().filter(|f| f["rule"] == name).map(|f| f["seq"].as_u64().unwrap()).collect()
}

#[test]
fn lead_changes_fire_on_a_sign_change_not_on_a_tie() {
    let mut r = rule("lead", "state:/score/home - state:/score/away", "sign");
    r.text = "{state:/home} {state:/score/home}-{state:/score/away} ({value})".into();
    let t = Triggers::new(&[r], false).unwrap();
    let s = |h: u32, a: u32| {
        format!(r#"{{"home":"BKN","score":{{"home":{h},"away":{a}}},"players":{{"p1":{{"pts":{h}}}}}}}"#)
    };
    let states = [s(0, 0), s(0, 1), s(2, 2), s(2, 5), s(7, 5), s(7, 7), s(9, 7)];
    let pubs: Vec<(u64, &str, &str)> =
        states.iter().enumerate().map(|(i, d)| (i as u64 + 1, "state", d.as_str())).collect();
    let (fired, game) = run(&t, &pubs);
    let kept = serde_json::to_string(&game).unwrap();
    assert!(
        kept.contains("BKN") && !kept.contains("players"),
        "a game keeps what the rules read (sources and texts), not the rest: {kept}"
    );
    assert_eq!(
        seqs(&fired, "lead"),
        [5],
        "away led from 2 (the first lead is no change), home took it at 5; ties and 9-7 after 7-7 (home again) do not"
    );
    assert_eq!(fired[0]["text"], "BKN 7-5 (2.0)");
    assert_eq!(fired[0]["facts"]["state:/score/home"], 7);
    assert_eq!(fired[0]["ts"], 5_000_000);
}

#[test]
fn crossings_fire_once_until_back_past_the_hysteresis_per_instance() {
    let mut r = rule("p30", "basketball-boxscore/player/+:/pts", "above 30");
    r.hysteresis = 5.0;
    let t = Triggers::new(&[r], false).unwrap();
    let pubs = [
        (1, "basketball-boxscore/player/a", r#"{"pts":28}"#),
        (2, "basketball-boxscore/player/a", r#"{"pts":30}"#),
        (3, "basketball-boxscore/player/b", r#"{"pts":31}"#),
        (4, "basketball-boxscore/player/a", r#"{"pts":27}"#),
        (5, "basketball-boxscore/player/a", r#"{"pts":32}"#),
        (6, "basketball-boxscore/player/a", r#"{"pts":24}"#),
        (7, "basketball-boxscore/player/a", r#"{"pts":30}"#),
        (8, "basketball-boxscore/team/home", r#"{"pts":99}"#),
    ];
    let (fired, _) = run(&t, &pubs);
    assert_eq!(seqs(&fired, "p30"), [2, 3, 7], "a at 2; b at 3; a again only after going under 25");
    assert_eq!(fired[1]["topic"], "basketball-boxscore/player/b");
}

#[test]
fn swings_use_a_source_time_window_and_cooldowns_hold() {
    let mut r = rule("swing", "winprob:/home", "swing 0.15 within 3");
    r.cooldown_ms = 4000;
    let t = Triggers::new(&[r], false).unwrap();
    let w = ["0.50", "0.55", "0.60", "0.70", "0.50", "0.52", "0.54", "0.56", "0.58", "0.75"];
    let data: Vec<String> = w.iter().map(|p| format!(r#"{{"home":{p}}}"#)).collect();
    let pubs: Vec<(u64, &str, &str)> =
        data.iter().enumerate().map(|(i, d)| (i as u64 + 1, "winprob", d.as_str())).collect();
    let (fired, _) = run(&t, &pubs);
    // 0.50 -> 0.70 within 3 s (seqs 1..4); 0.70 -> 0.50 at 5 is within the cooldown; the slow
    // climb never moves 0.15 in 3 s until 0.58 -> 0.75 at 10.
    assert_eq!(seqs(&fired, "swing"), [4, 10]);
}

#[test]
fn the_same_publications_fire_the_same_triggers_and_the_state_round_trips() {
    let t = Triggers::new(&[], true).unwrap();
    let s = |h: u32, a: u32| format!(r#"{{"home":"A","away":"B","score":{{"home":{h},"away":{a}}}}}"#);
    let states: Vec<String> = (0..40).map(|i| s(i * 2 % 7 + i, i * 3 % 5 + i)).collect();
    let pubs: Vec<(u64, &str, &str)> =
        states.iter().enumerate().map(|(i, d)| (i as u64 + 1, "state", d.as_str())).collect();
    let (a, ga) = run(&t, &pubs);
    let (b, _) = run(&t, &pubs);
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // Halfway through, the state saved and restored (a snapshot) fires the rest the same.
    let (first, g) = run(&t, &pubs[..20]);
    let mut g: GameTriggers = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    let mut rest = Vec::new();
    for &(seq, topic, data) in &pubs[20..] {
        let changed: Vec<String> = g
            .observe(&t.current(), Sport::Basketball, topic, data.as_bytes())
            .then(|| topic.to_string())
            .into_iter()
            .collect();
        g.evaluate(
            &t,
            &t.current(),
            ("g", Sport::Basketball),
            (seq, seq as i64 * 1_000_000),
            &changed,
            &mut |x| rest.push(serde_json::from_slice::<Value>(x).unwrap()),
        );
    }
    assert_eq!([first, rest].concat(), a);
    assert_eq!(g, ga);
}

#[test]
fn configured_rules_replace_defaults_by_name_and_sport_and_bad_ones_are_refused() {
    let mut r = rule("lead_change", "state:/score/home - state:/score/away", "sign");
    r.sport = Some("basketball".into());
    r.text = "mine".into();
    let t = Triggers::new(std::slice::from_ref(&r), true).unwrap();
    let set = t.current();
    let leads: Vec<&Rule> = set.rules().iter().filter(|x| x.spec.name == "lead_change").collect();
    assert_eq!(leads.len(), 2, "basketball's replaced, football's kept");
    assert!(leads.iter().any(|x| x.spec.text == "mine"));
    assert!(Triggers::new(&[r.clone(), r.clone()], false).unwrap_err().contains("twice"));
    r.when = "sometimes".into();
    assert!(Triggers::new(&[r], false).is_err());
}

#[test]
fn operators_disarm_suppress_and_arm_without_stale_firings() {
    let t = Triggers::new(&[rule("up", "state:/x", "increases")], false).unwrap();
    let data: Vec<String> = (0..8).map(|x| format!(r#"{{"x":{x}}}"#)).collect();
    let mut g = GameTriggers::default();
    let mut fired = Vec::new();
    let mut feed = |g: &mut GameTriggers, t: &Triggers, game: &str, seq: usize| {
        g.observe(&t.current(), Sport::Soccer, "state", data[seq].as_bytes());
        let changed = ["state".to_string()];
        g.evaluate(t, &t.current(), (game, Sport::Soccer), (seq as u64, seq as i64), &changed, &mut |b| {
            fired.push(serde_json::from_slice::<Value>(b).unwrap()["seq"].as_u64().unwrap())
        });
    };
    feed(&mut g, &t, "g", 0);
    feed(&mut g, &t, "g", 1);
    assert!(t.set_armed("up", false));
    feed(&mut g, &t, "g", 2);
    assert!(!t.set_armed("up", true));
    assert_eq!(t.suppress_next("up", "g"), 1);
    feed(&mut g, &t, "other", 3);
    feed(&mut g, &t, "g", 4);
    feed(&mut g, &t, "g", 5);
    assert_eq!(fired, [1, 3, 5], "2 disarmed; 4 swallowed for game g; others fire");
    assert_eq!(t.listing()["rules"][0]["armed"], true);
    let manual: Value = serde_json::from_slice(&t.manual("up", 9, 10, "by hand")).unwrap();
    assert_eq!((manual["manual"].as_bool(), manual["seq"].as_u64()), (Some(true), Some(9)));
}

#[test]
fn operators_edit_rules_each_change_a_new_version_stored_before_it_applies() {
    let t = Triggers::new(&[rule("up", "state:/x", "increases")], false).unwrap();
    assert_eq!(t.current().version(), 1);
    // A change that cannot be stored is not made.
    let refused = t.put(rule("down", "state:/x", "below 0"), |_, _| Err("disk full".into()));
    assert!(matches!(refused, Err(ChangeError::Store(_))));
    assert_eq!((t.current().version(), t.current().rules().len()), (1, 1));
    let mut stored = Edits::default();
    let c = t
        .put(rule("down", "state:/x", "below 0"), |e, _| {
            stored = e.clone();
            Ok(())
        })
        .unwrap();
    assert_eq!((c.version, c.before.is_none()), (2, true));
    let c = t
        .put(rule("up", "state:/x", "above 5"), |e, _| {
            stored = e.clone();
            Ok(())
        })
        .unwrap();
    assert_eq!((c.version, c.before.unwrap().when.as_str()), (3, "increases"));
    assert!(matches!(t.put(rule("bad", "state:/x", "often"), |_, _| Ok(())), Err(ChangeError::Invalid(_))));
    assert!(matches!(t.delete("nope", None, |_, _| Ok(())), Err(ChangeError::NotFound(_))));
    // What was stored, applied over the same configuration, is the same rule set.
    let again =
        Triggers::new(&[rule("up", "state:/x", "increases")], false).unwrap().with_edits(stored.clone());
    let (a, b) = (t.current(), again.current());
    assert_eq!(a.version(), b.version());
    assert_eq!(a.rules(), b.rules());
    assert_eq!(t.listing()["rules"][0]["origin"], "api");
    t.delete("down", None, |e, _| {
        stored = e.clone();
        Ok(())
    })
    .unwrap();
    assert_eq!((t.current().version(), t.current().rules().len()), (4, 1));
    assert_eq!(stored.rules.len(), 2, "one entry per rule changed: up replaced, down deleted");
}

#[test]
fn a_changed_rule_starts_afresh_and_firings_carry_the_version() {
    let t = Triggers::new(&[rule("hi", "state:/x", "above 5")], false).unwrap();
    let data: Vec<String> = [1, 6, 7, 8, 9].iter().map(|x| format!(r#"{{"x":{x}}}"#)).collect();
    let mut g = GameTriggers::default();
    let mut fired: Vec<Value> = Vec::new();
    let mut feed = |g: &mut GameTriggers, seq: usize| {
        let set = t.current();
        g.observe(&set, Sport::Soccer, "state", data[seq].as_bytes());
        g.evaluate(
            &t,
            &set,
            ("g", Sport::Soccer),
            (seq as u64, seq as i64),
            &["state".to_string()],
            &mut |b| fired.push(serde_json::from_slice(b).unwrap()),
        );
    };
    feed(&mut g, 0);
    feed(&mut g, 1);
    feed(&mut g, 2);
    // Same condition, new version: the old instance's "fired" is not carried over.
    t.put(rule("hi", "state:/x", "above 6.5"), |_, _| Ok(())).unwrap();
    feed(&mut g, 3);
    feed(&mut g, 4);
    let got: Vec<(u64, u64)> =
        fired.iter().map(|f| (f["seq"].as_u64().unwrap(), f["version"].as_u64().unwrap())).collect();
    assert_eq!(got, [(1, 1), (3, 2)]);
    assert_eq!(g.instances(), 1, "the old version's state is pruned");
}

#[test]
fn plugin_triggers_are_published_under_the_operators_controls() {
    let t = Triggers::new(&[], false).unwrap();
    let payload = br#"{"text":"BKN on a 10-0 run","facts":{"points":10}}"#;
    let f: Value =
        serde_json::from_slice(&t.plugin_firing(("boxscore", "run"), "g", (7, 70), payload).unwrap())
            .unwrap();
    assert_eq!(
        (f["rule"].as_str(), f["seq"].as_u64(), f["plugin"].as_str()),
        (Some("boxscore:run"), Some(7), Some("boxscore"))
    );
    assert_eq!((f["text"].as_str(), f["facts"]["points"].as_u64()), (Some("BKN on a 10-0 run"), Some(10)));
    assert!(t.has("boxscore:run"));
    t.set_armed("boxscore:run", false);
    assert!(t.plugin_firing(("boxscore", "run"), "g", (8, 80), payload).is_none());
    t.set_armed("boxscore:run", true);
    t.suppress_next("boxscore:run", "g");
    assert!(t.plugin_firing(("boxscore", "run"), "g", (9, 90), payload).is_none());
    assert!(t.plugin_firing(("boxscore", "run"), "g", (10, 100), payload).is_some());
    // Not the SDK's shape, or a bad name: nothing.
    assert!(t.plugin_firing(("boxscore", "run"), "g", (11, 110), b"[1]").is_none());
    assert!(t.plugin_firing(("boxscore", "a/b"), "g", (12, 120), payload).is_none());
    let long = format!(r#"{{"text":"{}"}}"#, "é".repeat(200));
    let f: Value =
        serde_json::from_slice(&t.plugin_firing(("p", "x"), "g", (13, 130), long.as_bytes()).unwrap())
            .unwrap();
    assert!(f["text"].as_str().unwrap().len() <= 256);
    assert_eq!(t.listing()["plugin_rules"][0]["name"], "boxscore:run");
}

#[test]
fn a_score_taken_back_fires_a_correction_and_the_end_fires_final() {
    let t = Triggers::new(&[], true).unwrap();
    let s = |h: u32, a: u32, status: &str| {
        format!(r#"{{"home":"KC","away":"BUF","status":"{status}","score":{{"home":{h},"away":{a}}}}}"#)
    };
    let states = [s(0, 0, "live"), s(7, 0, "live"), s(0, 0, "live"), s(3, 0, "live"), s(3, 0, "ended")];
    let mut g = GameTriggers::default();
    let mut fired: Vec<Value> = Vec::new();
    for (i, data) in states.iter().enumerate() {
        let set = t.current();
        g.observe(&set, Sport::Football, "state", data.as_bytes());
        let at = (i as u64 + 1, i as i64);
        g.evaluate(&t, &set, ("g", Sport::Football), at, &["state".to_string()], &mut |b| {
            fired.push(serde_json::from_slice(b).unwrap())
        });
    }
    assert_eq!(seqs(&fired, "score_correction"), [3], "the touchdown reversed at 3");
    assert_eq!(
        fired.iter().find(|f| f["rule"] == "score_correction").unwrap()["text"],
        "Score corrected: KC 0-0 BUF"
    );
    assert_eq!(seqs(&fired, "home_scores"), [2, 4]);
    assert_eq!(seqs(&fired, "final"), [5]);
    assert_eq!(fired.iter().find(|f| f["rule"] == "final").unwrap()["text"], "Final: KC 3-0 BUF");
}

#[test]
fn a_text_with_an_unclosed_brace_keeps_it_as_written() {
    let mut r = rule("lead", "state:/score/home", "increases");
    r.text = "{state:/home} scores {oops".into();
    let t = Triggers::new(&[r], false).unwrap();
    let pubs = [
        (1, "state", r#"{"home":"BKN","score":{"home":0}}"#),
        (2, "state", r#"{"home":"BKN","score":{"home":2}}"#),
    ];
    let (fired, _) = run(&t, &pubs);
    assert_eq!(fired[0]["text"], "BKN scores {oops");
    let inner: Vec<&str> = rule::placeholders("a {b} c {d").collect();
    assert_eq!(inner, ["b"]);
}
