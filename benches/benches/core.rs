//! The server's core per-event costs, each tracking a goal of the load-test issue (#7):
//!
//! - `frame_decode/{json,rkyv}`: a publisher frame's body to an `Event` (rkyv is validated).
//!   Tracks: ingest stays far below the 0.15 ms p50 budget per event.
//! - `state_update/{sport}`: one event folded into the core game state, per sport.
//! - `analyst/{sport}`: the same fold plus the analyst's per-event work (ledger, templates,
//!   drafts offered; publishing excluded): the analyst's cost is this minus `state_update`.
//! - `topic_match/*`: 10,000 subscribed patterns. Matching happens when a topic is created
//!   (it binds its subscribers once); publishing never walks patterns. Tracks: topic creation
//!   stays cheap with 10k patterns, and a publication's cost does not grow with them.
//! - `fanout/publish/{n}`: one publication, serialized once, to n `latest`-mode subscribers
//!   (an `Arc` clone each). Tracks: 5M deliveries/s in the `fanout` preset.
//! - `triggers/{sport}`: the default trigger rules on one event: its `state` publication read
//!   (JSON) and every rule reading it evaluated (a real game's states, in order). Tracks: the
//!   trigger layer's cost per event (issue 29).
//! - `store/group_commit_1k`: 1,000 events appended, committed in one redb write transaction
//!   and acked. Tracks: the log's >= 200k events/s. `store/group_commit_1k_encrypted`: the
//!   same with `[store.encryption]` on (every value sealed), side by side.
//!
//! `cargo bench -p opensports-benches --bench core`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use opensports_proto::codec::{self, Codec};
use opensports_proto::topic::Pattern;
use opensports_proto::ws::Mode;
use opensports_proto::{Event, Sport};
use opensports_server::config::{FanoutConfig, StoreConfig};
use opensports_server::fanout::Fanout;
use opensports_server::fanout::outbox::Outbox;
use opensports_server::pipeline::state::GameState;
use opensports_server::sim;
use opensports_server::store::{AckSink, Append, Queued, Store};

fn events(sport: Sport) -> Vec<Event> {
    sim::generate(sport, 1, 0).events.into_iter().map(|t| t.event).collect()
}

fn frame_decode(c: &mut Criterion) {
    let evs = events(Sport::Basketball);
    let json: Vec<Vec<u8>> = evs.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let rkyv: Vec<rkyv::util::AlignedVec> =
        evs.iter().map(|e| rkyv::to_bytes::<rkyv::rancor::Error>(e).expect("rkyv")).collect();
    let mut i = 0;
    c.bench_function("frame_decode/json", |b| {
        b.iter(|| {
            i = (i + 1) % json.len();
            black_box(codec::decode_event(Codec::Json, black_box(&json[i])).expect("decode"))
        })
    });
    c.bench_function("frame_decode/rkyv", |b| {
        b.iter(|| {
            i = (i + 1) % rkyv.len();
            black_box(codec::decode_event(Codec::Rkyv, black_box(&rkyv[i])).expect("decode"))
        })
    });
}

fn state_update(c: &mut Criterion) {
    for sport in [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1] {
        let evs = events(sport);
        let mut state = GameState::new(&evs[0].game, sport);
        let mut i = 0;
        c.bench_function(&format!("state_update/{sport:?}").to_lowercase(), |b| {
            b.iter(|| {
                i += 1;
                if i == evs.len() {
                    i = 0;
                    state = GameState::new(&evs[0].game, sport);
                }
                state.apply(black_box(&evs[i]));
            })
        });
    }
}

fn analyst(c: &mut Criterion) {
    use opensports_server::pipeline::analyst::Analyst;
    let cfg = opensports_server::config::AnalystConfig::default();
    for sport in [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1] {
        let evs = events(sport);
        let mut state = GameState::new(&evs[0].game, sport);
        let mut analyst = Analyst::default();
        let mut i = 0;
        c.bench_function(&format!("analyst/{sport:?}").to_lowercase(), |b| {
            b.iter(|| {
                i += 1;
                if i == evs.len() {
                    i = 0;
                    state = GameState::new(&evs[0].game, sport);
                    analyst = Analyst::default();
                }
                state.apply(black_box(&evs[i]));
                // A win probability that moves, as the model's does.
                let wp = Some(0.5 + 0.4 * ((i as f32) * 0.05).sin());
                black_box(analyst.fold(&cfg, &evs[i], &state, wp, None))
            })
        });
    }
}

/// 10,000 patterns: one per game for 2,500 games (`game/{g}/state`, `game/{g}/+`,
/// `game/{g}/#`, `game/{g}/winprob`).
fn patterns() -> Vec<Pattern> {
    (0..2_500)
        .flat_map(|g| {
            ["state", "+", "#", "winprob"]
                .map(|tail| Pattern::parse(&format!("game/g{g}/{tail}")).expect("pattern"))
        })
        .collect()
}

fn topic_match(c: &mut Criterion) {
    let pats = patterns();
    c.bench_function("topic_match/one_topic_vs_10k_patterns", |b| {
        b.iter(|| pats.iter().filter(|p| p.matches(black_box("game/g1234/state"))).count())
    });
    let fanout = Fanout::new(FanoutConfig::default());
    let outbox = Outbox::new(64);
    for p in pats {
        fanout.subscribe(&outbox, p, Mode::Latest, &BTreeMap::new());
    }
    c.bench_function("topic_match/create_topic_with_10k_patterns", |b| {
        b.iter(|| {
            black_box(fanout.topic("game/g1234/state").expect("topic"));
            fanout.remove_topic("game/g1234/state");
        })
    });
    let t = fanout.topic("game/g42/state").expect("topic");
    let data = vec![b'x'; 200];
    c.bench_function("topic_match/publish_with_10k_patterns", |b| {
        b.iter(|| black_box(fanout.publish(&t, 1, black_box(&data))))
    });
}

fn fanout_publish(c: &mut Criterion) {
    let data = br#"{"home":0.6003,"away":0.3997,"model":"nba_wp","version":"1"}"#.repeat(3);
    for n in [1usize, 100, 1_000] {
        let fanout = Fanout::new(FanoutConfig::default());
        let outboxes: Vec<Arc<Outbox>> = (0..n).map(|_| Outbox::new(64)).collect();
        for o in &outboxes {
            fanout.subscribe(
                o,
                Pattern::parse("game/+/state").expect("pattern"),
                Mode::Latest,
                &BTreeMap::new(),
            );
        }
        let t = fanout.topic("game/g1/state").expect("topic");
        c.bench_function(&format!("fanout/publish/{n}"), |b| {
            b.iter(|| black_box(fanout.publish(&t, 1, black_box(&data))))
        });
    }
}

#[derive(Debug, Default)]
struct Count(AtomicU64);

impl AckSink for Count {
    fn ack(&self, _game: &str, _seq: u64) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

fn group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("ring");
    std::fs::write(&ring, "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")
        .expect("ring");
    let evs = events(Sport::Basketball);
    let archived: Vec<Arc<rkyv::util::AlignedVec>> =
        evs.iter().map(|e| Arc::new(rkyv::to_bytes::<rkyv::rancor::Error>(e).expect("rkyv"))).collect();
    let mut group = c.benchmark_group("store");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    // Side by side: the log as it is, and sealed at rest (`[store.encryption]`).
    for (name, key_file) in [("group_commit_1k", None), ("group_commit_1k_encrypted", Some(ring.clone()))] {
        // A batch closes at 1,000 events (the window is only a backstop), so one iteration is
        // one write transaction of 1,000 events.
        let encryption = opensports_server::config::EncryptionConfig { key_file, ..Default::default() };
        let cfg =
            StoreConfig { commit_window_us: 200_000, max_batch: 1_000, encryption, ..StoreConfig::default() };
        let store = Store::open(&cfg, &dir.path().join(name)).expect("store");
        let count = Arc::new(Count::default());
        let ack: Arc<dyn AckSink> = count.clone();
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || count.0.load(Ordering::Acquire),
                |before| {
                    for i in 0..1_000 {
                        seq += 1;
                        let bytes = &archived[i % archived.len()];
                        while store
                            .try_append(
                                Append { game: "bench", seq, sport: "basketball", bytes, owner: None },
                                &ack,
                            )
                            .expect("writer")
                            == Queued::Full
                        {
                            std::thread::yield_now();
                        }
                    }
                    while count.0.load(Ordering::Acquire) < before + 1_000 {
                        std::thread::yield_now();
                    }
                },
                BatchSize::PerIteration,
            )
        });
        store.shutdown();
    }
    group.finish();
}

/// The default rules on each event's state publication, a simulated game replayed in order.
fn triggers(c: &mut Criterion) {
    use opensports_server::triggers::{GameTriggers, Triggers};
    let rules = Triggers::new(&[], true).expect("default rules");
    for sport in [Sport::Basketball, Sport::Football, Sport::Soccer, Sport::F1] {
        let evs = events(sport);
        let mut state = GameState::new(&evs[0].game, sport);
        let states: Vec<(u64, i64, Vec<u8>)> = evs
            .iter()
            .map(|e| {
                state.apply(e);
                (e.seq, e.ts, serde_json::to_vec(&state).expect("state json"))
            })
            .collect();
        let (mut game, mut i, changed) = (GameTriggers::default(), 0, vec!["state".to_string()]);
        c.bench_function(&format!("triggers/{sport:?}").to_lowercase(), |b| {
            b.iter(|| {
                i += 1;
                if i == states.len() {
                    (i, game) = (0, GameTriggers::default());
                }
                let (seq, ts, data) = &states[i];
                // As a shard does: the rule set in force, taken once per event.
                let set = rules.current();
                game.observe(&set, sport, "state", black_box(data));
                game.evaluate(&rules, &set, ("g", sport), (*seq, *ts), &changed, &mut |f| {
                    black_box(f);
                });
            })
        });
    }
}

criterion_group!(
    benches,
    frame_decode,
    state_update,
    analyst,
    topic_match,
    fanout_publish,
    group_commit,
    triggers
);
criterion_main!(benches);
