//! A hostile-input suite that keeps running: every decoder a peer reaches is fed mutated
//! inputs (seeded from real messages: simulated events as JSON and rkyv frames, control
//! messages, WebSocket ops, SSE resume points, tracking datagrams, and the start of each real
//! provider feed in `OPENSPORTS_DATA`). A decoder may refuse anything; it must never panic, hang
//! or allocate without bound.
//!
//! Stable toolchain, no extra crates: a SplitMix64 generator and a handful of mutators
//! (bit flips, interesting bytes, inserts, deletes, duplicated ranges, splices, truncation),
//! deterministic for a seed. CI runs a short pass; a long one is
//! `FUZZ_ITERS=1000000 cargo test --release -p opensports-tests --test integration fuzz:: -- --nocapture`
//! (iterations per target; `FUZZ_SEED` picks another sequence). Each target prints its count.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use opensports_proto::codec::{self, Codec};
use opensports_proto::control::Control;
use opensports_proto::ws::{ClientOp, Mode};
use opensports_proto::{Event, Sport};
use opensports_server::config::FanoutConfig;
use opensports_server::fanout::Fanout;
use opensports_server::fanout::outbox::Outbox;
use opensports_server::fanout::session::{Access, Session, Transport};
use opensports_tests::{SIM_START_US, sim_events};

/// SplitMix64: tiny, fast, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = &[
    0, 0xff, 0x7f, 0x80, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'-', b'e', b'/', b'+', b'#',
    b'=',
];

/// One mutated input from the corpus (1 to 4 mutations, sometimes a splice of two entries).
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&corpus[rng.below(corpus.len())]);
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                for _ in 0..n {
                    out.insert(i, rng.next() as u8);
                }
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                out.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let copy: Vec<u8> = out[i..i + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, copy);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(out.len() + 1);
                out.truncate(cut);
                out.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            6 if len > 0 => out.truncate(rng.below(len)),
            _ => {
                let i = rng.below(len + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
}

fn iterations() -> u64 {
    std::env::var("FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x05EE_D5EE)
}

/// Runs `target` on `iterations()` mutated inputs; the corpus entries themselves first.
fn fuzz(name: &str, corpus: &[Vec<u8>], mut target: impl FnMut(&[u8])) {
    assert!(!corpus.is_empty(), "{name}: empty corpus");
    for c in corpus {
        target(c);
    }
    let mut rng = Rng(seed() ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
    let mut input = Vec::new();
    let n = iterations();
    let started = std::time::Instant::now();
    for _ in 0..n {
        mutate(&mut rng, corpus, &mut input);
        target(&input);
    }
    eprintln!("fuzz {name}: {n} inputs, 0 crashes, {:.1} s", started.elapsed().as_secs_f64());
}

/// Simulated events of every sport.
fn events() -> Vec<Event> {
    Sport::ALL.into_iter().flat_map(|s| sim_events(s, 11, SIM_START_US).into_iter().take(60)).collect()
}

#[test]
fn event_frames_json_and_rkyv() {
    let evs = events();
    let json: Vec<Vec<u8>> = evs.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
    fuzz("decode_event/json", &json, |b| {
        if let Ok(e) = codec::decode_event(Codec::Json, b) {
            // Whatever decodes is a valid event: it re-encodes and decodes to itself.
            let again = serde_json::to_vec(&e).unwrap();
            assert_eq!(codec::decode_event(Codec::Json, &again).unwrap(), e);
        }
    });
    let rkyv: Vec<Vec<u8>> =
        evs.iter().map(|e| rkyv::to_bytes::<rkyv::rancor::Error>(e).unwrap().to_vec()).collect();
    fuzz("decode_event/rkyv", &rkyv, |b| {
        let _ = codec::decode_event(Codec::Rkyv, &codec::aligned(b));
    });
    fuzz("keys::each", &json, |b| {
        let mut n = 0;
        opensports_proto::keys::each(b, |_| {
            n += 1;
            n < 10_000
        });
    });
    // Frame headers: length prefix and codec byte.
    let mut frames = Vec::new();
    for e in evs.iter().take(40) {
        let mut f = Vec::new();
        codec::write_json_frame(&mut f, e).unwrap();
        frames.push(f);
    }
    fuzz("frame_len", &frames, |b| {
        if b.len() >= 4 {
            let _ = codec::frame_len([b[0], b[1], b[2], b[3]], 64 * 1024);
        }
        if let Some(&c) = b.get(4) {
            let _ = Codec::from_byte(c);
        }
    });
}

#[test]
fn control_messages_and_datagrams() {
    let controls = [
        r#"{"op":"hello","token":"osk_abc_def","publisher":"venue feed"}"#,
        r#"{"op":"ack","game":"nba-1","seq":57}"#,
        r#"{"op":"gap","game":"nba-1","from":58,"to":60}"#,
        r#"{"op":"reject","game":"nba-1","seq":58,"code":"bad_event","message":"x"}"#,
        r#"{"op":"welcome","server":"opensports/0.1.0","max_frame":65536,"max_streams":256}"#,
    ];
    let corpus: Vec<Vec<u8>> = controls.iter().map(|c| c.as_bytes().to_vec()).collect();
    fuzz("control", &corpus, |b| {
        let _ = codec::decode_json::<Control>(b);
    });
    let sample = r#"{"game":"nba-1","ts":1,"entity":"ball","x":1.0,"y":2.0,"z":0.5,"speed":3.0}"#;
    let mut dg = vec![0x01];
    dg.extend_from_slice(sample.as_bytes());
    fuzz("datagram", &[dg], |b| {
        let _ = opensports_server::ingest::admission::datagram(b);
    });
}

#[test]
fn websocket_ops_through_a_real_session_and_sse_resume_points() {
    let ops = [
        r#"{"op":"sub","topics":["game/+/state","games"],"mode":"all","since":{"games":3}}"#,
        r##"{"op":"sub","topics":["#"],"mode":"latest","id":"a1"}"##,
        r#"{"op":"unsub","topics":["game/+/state"]}"#,
        r#"{"op":"ping"}"#,
        r#"{"op":"sub","topics":["game/nba-1/basketball-boxscore/player/+"],"since":{"game/nba-1/basketball-boxscore/player/p1":9}}"#,
    ];
    let corpus: Vec<Vec<u8>> = ops.iter().map(|c| c.as_bytes().to_vec()).collect();
    let fanout = Fanout::new(FanoutConfig::default());
    for t in ["games", "game/nba-1/state", "game/nba-1/basketball-boxscore/player/p1"] {
        let topic = fanout.topic(t).unwrap();
        fanout.publish(&topic, 1, b"{}");
    }
    let outbox = Outbox::new(64);
    let access = Access {
        principal: opensports_server::auth::Principal::anonymous(),
        public: Arc::from(vec!["#".to_string()]),
        transport: Transport::Ws,
    };
    let now = std::time::Instant::now();
    let mut session = Session::new(fanout.clone(), outbox.clone(), access, now);
    let mut drained = Vec::new();
    fuzz("ws ops", &corpus, |b| {
        let _ = serde_json::from_slice::<ClientOp>(b);
        if let Ok(text) = std::str::from_utf8(b) {
            session.on_text(text, now);
        }
        drained.clear();
        outbox.drain(&mut drained);
    });
    assert!(session.patterns() <= fanout.config().max_subscriptions);
    session.close();
    let ids = ["games=3 game/nba-1/state=41", "game/g1/state=41 game/g1/winprob=41", ""];
    let corpus: Vec<Vec<u8>> = ids.iter().map(|c| c.as_bytes().to_vec()).collect();
    fuzz("sse resume", &corpus, |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            let _ = opensports_server::api::sse::parse_resume(text);
        }
    });
    let _ = Mode::All;
}

#[test]
fn provider_feeds() {
    use opensports_server::feeds::{self, Format, Options};
    let Some(dir) = std::env::var_os("OPENSPORTS_DATA").map(std::path::PathBuf::from) else {
        eprintln!("OPENSPORTS_DATA not set: feed adapters not fuzzed (skipped)");
        return;
    };
    let files = opensports_tests::REAL_FEEDS;
    // The start of each feed (a few KiB: most mutations then stay in the adapters' parsers
    // rather than in reading megabytes).
    let corpus: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|f| std::fs::read(dir.join(f)).ok())
        .map(|mut b| {
            b.truncate(4096);
            b
        })
        .collect();
    if corpus.is_empty() {
        eprintln!("no feed files under {}: feed adapters not fuzzed (skipped)", dir.display());
        return;
    }
    let opts = Options { game_id: Some("fuzz-1"), home: Some("Home"), file_stem: Some("15986") };
    let formats: Vec<Format> = Format::SUPPORTED.iter().map(|(_, f)| *f).collect();
    let mut i = 0;
    fuzz("feeds", &corpus, |b| {
        let _ = feeds::detect(b);
        i += 1;
        let _ = feeds::parse(formats[i % formats.len()], b, &opts);
    });
}
