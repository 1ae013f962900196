//! Encryption at rest with real processes and real files: the log file and a backup hold no
//! event text, the server serves the same game after a restart, rotation works across
//! restarts (`opensports rekey`), and a wrong or missing key stops the start with a clear
//! error instead of reading garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use opensports_client::Publisher;
use opensports_proto::{Event, Sport};
use opensports_server::cli::store::{Server, Source, backup_cmd, export_cmd, rekey_cmd};
use opensports_server::config::EncryptionConfig;
use opensports_server::store::export::Format;
use opensports_server::store::seal::key_id;
use opensports_server::store::{EVENTS, FILE_NAME, Seal};
use opensports_tests::{ChildServer, SIM_START_US, WAIT, sim_events};
use redb::ReadableDatabase;

const K1: &str = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
const K2: &str = "2 a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n";
/// Key id 1 with other bytes: the wrong key under the right id.
const K1_WRONG: &str = "1 ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n";

fn seal(ring: &Path) -> Seal {
    Seal::load(&EncryptionConfig { key_file: Some(ring.into()), ..Default::default() }).unwrap()
}

fn server(data: &Path, ring: Option<&Path>) -> ChildServer {
    let extra = ring
        .map_or(String::new(), |r| format!("[store.encryption]\nkey_file = {:?}\n", r.display().to_string()));
    ChildServer::new(data, &extra)
}

async fn publish(s: &ChildServer, events: &[Event]) {
    let mut publisher = Publisher::connect(s.publisher_config()).await.unwrap();
    for e in events {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
}

/// The game's state once the server has folded in its last event (a publisher's ack means
/// logged, not yet folded).
async fn settled(s: &ChildServer, id: &str, last_seq: u64) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = s.get(&format!("/v1/games/{id}")).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && v["last_seq"] == last_seq {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "game {id} never reached seq {last_seq}: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every string an event's body holds (people, teams, kinds), at least 5 bytes so a match is
/// no accident. Not the game id or the sport: keys (game, seq, ratings' `sport/team`) stay
/// readable, as documented.
fn texts(events: &[Event]) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::String(s) => drop(out.insert(s.clone())),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for e in events {
        out.extend(e.people().into_iter().flatten().map(str::to_string));
        walk(&serde_json::to_value(&e.body).unwrap(), &mut out);
    }
    // Sport names are ratings' keys (`basketball/TEAM`), readable as keys are.
    out.retain(|t| t.len() >= 5 && !["basketball", "football", "soccer"].contains(&t.as_str()));
    out
}

fn holds_any(path: &Path, texts: &BTreeSet<String>) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    texts.iter().filter(|t| bytes.windows(t.len()).any(|w| w == t.as_bytes())).cloned().collect()
}

/// The key id of every event of `game` in the log file.
fn key_ids(data: &Path, game: &str) -> BTreeSet<Option<u16>> {
    let db = opensports_server::store::open_db(&data.join(FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let events = txn.open_table(EVENTS).unwrap();
    events.range((game, 0)..=(game, u64::MAX)).unwrap().map(|r| key_id(r.unwrap().1.value())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_and_its_backup_hold_no_event_text_and_keys_rotate_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ring) = (dir.path().join("data"), dir.path().join("ring"));
    std::fs::write(&ring, K1).unwrap();
    let first = sim_events(Sport::Basketball, 7, SIM_START_US);
    let id = first[0].game.clone();
    let words = texts(&first);
    assert!(words.len() >= 10, "the game names people and teams: {words:?}");

    let mut s = server(&data, Some(&ring));
    s.start().await.unwrap();
    publish(&s, &first).await;
    let state = settled(&s, &id, first.len() as u64).await;
    let backup = dir.path().join("backup.redb");
    let remote = Source::Server(Server {
        url: format!("http://{}", s.http_addr),
        key: Some(s.admin_key.clone()),
        ca_pem: None,
    });
    backup_cmd(&remote, &seal(&ring), &backup).unwrap();
    s.kill9().await;

    // Neither the log nor the backup holds any of it.
    let log = data.join(FILE_NAME);
    assert_eq!(holds_any(&log, &words), Vec::<String>::new(), "event text in the log file");
    assert_eq!(holds_any(&backup, &words), Vec::<String>::new(), "event text in the backup");
    assert_eq!(key_ids(&data, &id), BTreeSet::from([Some(1)]), "every event sealed under key 1");
    // A control: the same game in an unencrypted log does show its text (the grep works).
    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain = server(&plain_dir.path().join("data"), None);
    plain.start().await.unwrap();
    publish(&plain, &first).await;
    plain.kill9().await;
    assert!(!holds_any(&plain_dir.path().join("data").join(FILE_NAME), &words).is_empty());

    // Without the key, or with the wrong one, the server refuses to start and says why.
    let err = server(&data, None).start().await.unwrap_err();
    assert!(err.contains("the event log is encrypted (key 1)"), "{err}");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, K1_WRONG).unwrap();
    let err = server(&data, Some(&wrong)).start().await.unwrap_err();
    assert!(err.contains("does not open with the key ring"), "{err}");
    let only_new = dir.path().join("only-new");
    std::fs::write(&only_new, K2).unwrap();
    let err = server(&data, Some(&only_new)).start().await.unwrap_err();
    assert!(err.contains("sealed with key 1, which the key ring does not hold"), "{err}");

    // Rotation: K2 joins the ring; the old game is served as before, new writes use key 2.
    std::fs::write(&ring, format!("{K1}{K2}")).unwrap();
    let mut s = server(&data, Some(&ring));
    s.start().await.unwrap();
    assert_eq!(settled(&s, &id, first.len() as u64).await, state, "recovered through the seal");
    let second = sim_events(Sport::Basketball, 8, SIM_START_US);
    let id2 = second[0].game.clone();
    assert_ne!(id, id2);
    publish(&s, &second).await;
    let state2 = settled(&s, &id2, second.len() as u64).await;
    s.kill9().await;
    assert_eq!(key_ids(&data, &id), BTreeSet::from([Some(1)]), "old records keep their key until rewritten");
    assert_eq!(key_ids(&data, &id2), BTreeSet::from([Some(2)]), "new writes use the newest key");

    // `opensports rekey` rewrites everything under key 2; then key 1 can leave the ring.
    rekey_cmd(&data, &seal(&ring)).unwrap();
    assert_eq!(key_ids(&data, &id), BTreeSet::from([Some(2)]));
    let mut s = server(&data, Some(&only_new));
    s.start().await.unwrap();
    assert_eq!(settled(&s, &id, first.len() as u64).await, state);
    assert_eq!(settled(&s, &id2, second.len() as u64).await, state2);
    s.kill9().await;

    // Offline export with the key ring gives every event back.
    let out = dir.path().join("export.jsonl");
    export_cmd(&Source::DataDir(data.clone()), &seal(&only_new), &id, Format::Jsonl, Some(&out)).unwrap();
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), first.len());
    let exported: Event = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(exported, first[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_encrypts_a_log_written_without_a_key_and_the_server_then_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ring) = (dir.path().join("data"), dir.path().join("ring"));
    std::fs::write(&ring, K1).unwrap();
    let events = sim_events(Sport::Soccer, 3, SIM_START_US);
    let id = events[0].game.clone();
    let mut s = server(&data, None);
    s.start().await.unwrap();
    publish(&s, &events).await;
    let state = settled(&s, &id, events.len() as u64).await;
    s.kill9().await;

    // Turning encryption on over an unencrypted log is refused with the way out.
    let err = server(&data, Some(&ring)).start().await.unwrap_err();
    assert!(err.contains("holds unencrypted records: run `opensports rekey"), "{err}");
    rekey_cmd(&data, &seal(&ring)).unwrap();
    assert_eq!(key_ids(&data, &id), BTreeSet::from([Some(1)]));
    assert_eq!(holds_any(&data.join(FILE_NAME), &texts(&events)), Vec::<String>::new());
    let mut s = server(&data, Some(&ring));
    s.start().await.unwrap();
    assert_eq!(settled(&s, &id, events.len() as u64).await, state);
    s.kill9().await;
}

/// Two nodes of a cluster, each with its own key: what A ingests reaches B through JetStream
/// (which holds it as NATS stores it: README), and B seals it in its own log under its own
/// key. Both serve the same game; neither log file holds its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_cluster_nodes_replicate_and_each_seals_its_own_log() {
    let nats = opensports_tests::nats::NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let node = |name: &str, ring: &str| {
        let path = dir.path().join(format!("{name}.ring"));
        std::fs::write(&path, ring).unwrap();
        let extra = format!(
            "{}[store.encryption]\nkey_file = {:?}\n",
            nats.node_config(name),
            path.display().to_string()
        );
        ChildServer::new(&dir.path().join(name), &extra)
    };
    let (mut a, mut b) = (node("a", K1), node("b", K2));
    a.start().await.unwrap();
    b.start().await.unwrap();
    let events = sim_events(Sport::Soccer, 12, SIM_START_US);
    let (id, n) = (events[0].game.clone(), events.len() as u64);
    let words = texts(&events);
    assert!(words.len() >= 5, "{words:?}");
    publish(&a, &events).await;
    let on_a = settled(&a, &id, n).await;
    let on_b = settled(&b, &id, n).await;
    assert_eq!(on_a, on_b, "B applies what A ingested");
    // B folds an event while its log commits it: wait for the commit before reading the file.
    let deadline = std::time::Instant::now() + WAIT;
    while b.logged_seqs(&id).await.len() < n as usize {
        assert!(std::time::Instant::now() < deadline, "B never committed all {n} events");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    a.kill9().await;
    b.kill9().await;
    for (name, data, want) in [("A", &a.data_dir, 1u16), ("B", &b.data_dir, 2)] {
        assert_eq!(
            holds_any(&data.join(FILE_NAME), &words),
            Vec::<String>::new(),
            "{name}'s log holds event text"
        );
        assert_eq!(key_ids(data, &id), BTreeSet::from([Some(want)]), "{name} seals with its own key");
    }
}
