//! The plugin dev kit as an author uses it: scaffold a crate, build it for wasm32, run it
//! offline, diff against a golden file, and have its snapshot/restore checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::Sport;
use opensports_server::cli::kits::Lang;
use opensports_server::cli::plugin::{self, Source};
use opensports_tests::workspace;

#[test]
fn new_build_test_and_expect() {
    let dir = tempfile::tempdir().unwrap();
    plugin::new_cmd("my-counter", dir.path(), Lang::Rust).unwrap();
    let crate_dir = dir.path().join("my-counter");
    assert!(plugin::new_cmd("my-counter", dir.path(), Lang::Rust).is_err(), "refuses to overwrite");
    assert!(
        plugin::new_cmd("Bad Name", dir.path(), Lang::Rust).is_err(),
        "refuses a name that is not a topic level"
    );

    // Share the workspace's build cache so the SDK's dependencies are not rebuilt.
    let files = plugin::build(&crate_dir, &[], Some(&workspace().join("target")), true).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let wasm = &files[0];
    assert!(wasm.ends_with("my_counter.wasm"));

    let out = dir.path().join("out.jsonl");
    let source = Source::Sim(Sport::Basketball, 1);
    plugin::test_cmd(wasm, &source, Some(&out), None, "{}", None).unwrap();
    let lines = std::fs::read_to_string(&out).unwrap();
    let events = plugin::load_events(&source).unwrap();
    assert_eq!(lines.lines().count(), events.len(), "the template emits once per event");
    let last: serde_json::Value = serde_json::from_str(lines.lines().last().unwrap()).unwrap();
    assert_eq!(last["data"]["count"], events.len());
    assert_eq!(last["topic"], format!("game/{}/my-counter/events", events[0].game));

    // The same run matches its own golden file; a changed golden file is a failure.
    plugin::test_cmd(wasm, &source, None, Some(&out), "{}", None).unwrap();
    let tampered = dir.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.replacen("\"count\":7}", "\"count\":8}", 1)).unwrap();
    let err = plugin::test_cmd(wasm, &source, None, Some(&tampered), "{}", None).unwrap_err().to_string();
    assert!(err.contains("differs") && err.contains("line 7"), "{err}");

    // A restore that forgets the state is caught before any server restarts with it.
    let src = crate_dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&src).unwrap();
    assert!(code.contains("restore_json(self, bytes)"), "the template snapshots its state");
    std::fs::write(&src, code.replace("restore_json(self, bytes)", "!bytes.is_empty()")).unwrap();
    let files = plugin::build(&crate_dir, &[], Some(&workspace().join("target")), true).unwrap();
    let err = plugin::test_cmd(&files[0], &source, None, None, "{}", None).unwrap_err().to_string();
    assert!(err.contains("snapshot and restore change the outputs"), "{err}");
}
