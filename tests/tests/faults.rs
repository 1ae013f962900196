//! Faults the operator can see and survive: the log on a small tmpfs that fills up and frees
//! again, with a publisher sending throughout (issue 28, finding 1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opensports_proto::control::Control;
use opensports_tests::{TestServer, WAIT, game_events};

/// A tmpfs of `size` mounted on a new temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` where mounting is not permitted (not root, or a container without
    /// CAP_SYS_ADMIN): the test then says SKIPPED on stderr. This machine and CI run as root.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size}");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes a file until the volume is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    path
}

async fn readyz(server: &TestServer) -> (u16, serde_json::Value) {
    let (status, body) = server.get("/readyz").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// The log on a volume that fills up: nothing is acked past what was committed, `/readyz` says
/// 503 `log: failing` with the reason, the publisher is told (`log` control message) and the
/// failure is counted; once space returns the log reopens by itself, every event sent is
/// committed and acked exactly once, and the publisher is told it is open again. Then a full
/// volume at shutdown: shutdown ends (it gave up on what was never acked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_visibly_and_heals_without_a_restart() {
    let Some(fs) = Tmpfs::mount("12m") else { return };
    let data = fs.path().join("data");
    let server = TestServer::start_with(|c| c.server.data_dir = data.clone()).await;
    let mut publisher = server.publisher().await;

    let first = game_events("disk-a", 50);
    for e in &first {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(readyz(&server).await.0, 200);

    // Fill the volume, then keep publishing until a commit fails.
    let filler = fill(fs.path());
    let mut sent = Vec::new();
    let failing = publish_until_failing(&server, &mut publisher, "disk", &mut sent).await;
    assert_eq!(failing["status"], "log_failing", "{failing}");
    assert_eq!(failing["log"], "failing", "{failing}");
    let why = failing["log_error"].as_str().unwrap();
    assert!(why.contains("space") || why.contains("os error 28"), "{why}");
    let (status, health) = server.get("/healthz").await;
    assert_eq!(status, 200, "liveness stays up: a restart would not free the disk");
    assert!(health.contains(r#""log":"failing""#), "{health}");
    assert_eq!(server.metric("opensports_store_failing").await, 1.0);
    assert!(server.metric("opensports_store_commit_errors_total").await >= 1.0);
    // Told on the control stream (not silence), and nothing past the commits was acked.
    let told = |notices: &[Control], want: &str| {
        notices.iter().any(|n| matches!(n, Control::Log { status, .. } if status == want))
    };
    let mut notices = Vec::new();
    for _ in 0..100 {
        notices.extend(publisher.take_notices());
        if told(&notices, "failing") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(told(&notices, "failing"), "{notices:?}");
    assert!(publisher.unacked() > 0, "events sent into a full disk were acked");

    // Space returns: the log reopens by itself and everything sent is committed and acked.
    std::fs::remove_file(&filler).unwrap();
    publisher.flush(WAIT).await.unwrap();
    assert_eq!(publisher.unacked(), 0);
    let (status, ready) = readyz(&server).await;
    assert_eq!((status, &ready["log"]), (200, &serde_json::json!("open")), "{ready}");
    assert_eq!(server.metric("opensports_store_failing").await, 0.0);
    assert!(server.metric("opensports_store_reopens_total").await >= 1.0);
    notices.extend(publisher.take_notices());
    let after_failing =
        notices.iter().skip_while(|n| !matches!(n, Control::Log { status, .. } if status == "failing"));
    assert!(
        after_failing.skip(1).any(|n| matches!(n, Control::Log { status, .. } if status == "open")),
        "{notices:?}"
    );
    // Every event sent is in the log exactly once.
    let log = &server.running().store.clone().unwrap();
    for game in sent.iter().map(|e| e.game.clone()).collect::<std::collections::BTreeSet<_>>() {
        let want: Vec<u64> = sent.iter().filter(|e| e.game == game).map(|e| e.seq).collect();
        let mut got = Vec::new();
        log.for_each_event(&game, 0, &mut |seq, _| {
            got.push(seq);
            true
        })
        .unwrap();
        assert_eq!(got, want, "{game}");
        assert_eq!(log.game(&game).unwrap().unwrap().events, want.len() as u64, "{game}");
    }

    // Full again, events waiting, then shutdown: it ends (the bound is a hang detector only).
    let filler = fill(fs.path());
    publish_until_failing(&server, &mut publisher, "again", &mut sent).await;
    tokio::time::timeout(Duration::from_secs(60), server.shutdown())
        .await
        .expect("shutdown hung on a full disk");
    drop(filler);
}

/// Publishes games named `{prefix}-{n}` until `/readyz` says 503; returns its body.
async fn publish_until_failing(
    server: &TestServer,
    publisher: &mut opensports_client::Publisher,
    prefix: &str,
    sent: &mut Vec<opensports_proto::Event>,
) -> serde_json::Value {
    for g in 0..40 {
        let (status, body) = readyz(server).await;
        if status == 503 {
            return body;
        }
        let batch = game_events(&format!("{prefix}-{g}"), 400);
        for e in &batch {
            publisher.send(e).await.unwrap();
        }
        sent.extend(batch);
        let _ = publisher.flush(Duration::from_millis(300)).await;
    }
    panic!("the log never failed on a full volume");
}
