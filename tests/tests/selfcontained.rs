//! The binary carries its plugins and models: started from an empty directory with a fresh
//! data dir and no config, it serves the four shipped plugins and every shipped model; and
//! the embedded plugins are byte for byte what the sources build (reproducible builds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opensports_tests::{opensports_bin, shipped_plugins, workspace};

/// `GET /readyz` once; the body when it answered 200 (errors while the server starts are `None`).
async fn try_ready(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw)).await.ok()?.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_alone_serves_the_builtin_plugins_and_every_model() {
    let empty = tempfile::tempdir().unwrap();
    let data = empty.path().join("data");
    let quic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut child = tokio::process::Command::new(opensports_bin())
        .current_dir(empty.path())
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--quic-listen", &quic.to_string(), "--http-listen", &http.to_string()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut ready = None;
    // A fresh data dir: the TypeScript and Python components are compiled on this first start.
    for _ in 0..1800 {
        if let Some(body) = try_ready(http).await {
            ready = Some(body);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut log = String::new();
            let _ =
                tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut log).await;
            panic!("the server exited: {status}\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready: serde_json::Value = serde_json::from_str(&ready.expect("ready within three minutes")).unwrap();
    let plugins: Vec<&str> =
        ready["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    if plugins.len() != 6 {
        child.start_kill().unwrap();
        let mut log = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut log).await;
        panic!("{} plugins of 6: {ready}\n{log}", plugins.len());
    }
    for name in [
        "basketball-boxscore",
        "football-drives",
        "soccer-shots",
        "f1-timing",
        "basketball-runs",
        "soccer-passes",
    ] {
        assert!(plugins.contains(&name), "{name} missing: {ready}");
    }
    assert!(ready["plugins"].as_array().unwrap().iter().all(|p| p["status"] == "active"), "{ready}");
    let manifest = std::fs::read_to_string(workspace().join("models/manifest.toml")).unwrap();
    let shipped: Vec<&str> =
        manifest.lines().filter_map(|l| l.strip_prefix("name = ")).map(|n| n.trim_matches('"')).collect();
    assert!(shipped.len() >= 5);
    let models: Vec<&str> = ready["models"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    for m in &shipped {
        assert!(models.contains(m), "model {m} not loaded: {ready}");
    }
    assert!(data.join("builtin/plugins/basketball_boxscore.wasm").exists());
    child.kill().await.unwrap();
    let mut log = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut log).await.unwrap();
    assert!(
        log.contains("plugins built into the binary") && log.contains("models built into the binary"),
        "{log}"
    );
}

/// `server/builtin/plugins/*.wasm` are committed; the shipped plugin sources must still build
/// to exactly those bytes (the build remaps the cargo home's path, so it is reproducible).
#[test]
fn the_builtin_plugins_are_what_the_sources_build() {
    let dir = workspace().join("server/builtin/plugins");
    let built = shipped_plugins();
    assert_eq!(built.len(), 5, "{built:?}");
    for name in ["basketball_boxscore", "football_drives", "soccer_shots", "f1_timing"] {
        let fresh = built.iter().find(|p| p.ends_with(format!("{name}.wasm"))).unwrap();
        let (fresh, committed) =
            (std::fs::read(fresh).unwrap(), std::fs::read(dir.join(format!("{name}.wasm"))).unwrap());
        assert!(
            fresh == committed,
            "server/builtin/plugins/{name}.wasm differs from a fresh build: run `opensports plugin build . -p {}` \
             and copy target/wasm32-unknown-unknown/release/{name}.wasm there",
            name.replace('_', "-")
        );
    }
}

/// The TypeScript and Python examples are built into the binary too; their toolchains do not
/// build byte for byte, so the embedded components must give the examples' golden outputs
/// (which the fresh builds and the in-process sessions give: tests/tests/kits.rs).
#[test]
fn the_builtin_components_give_the_examples_golden_outputs() {
    use opensports_server::cli::plugin::{Source, test_cmd};
    let dir = workspace().join("server/builtin/plugins");
    for (file, example) in [("basketball_runs", "basketball-runs-ts"), ("soccer_passes", "soccer-passes-py")]
    {
        let golden_dir = workspace().join("plugins").join(example).join("golden");
        let mut checked = 0;
        for golden in std::fs::read_dir(&golden_dir).unwrap().flatten().map(|e| e.path()) {
            let stem = golden.file_stem().unwrap().to_str().unwrap().to_string();
            let Some(data) = std::env::var_os("OPENSPORTS_DATA") else { continue };
            let sub = if example.starts_with("basketball") { "nba" } else { "soccer" };
            let replay = std::path::PathBuf::from(data).join(sub).join(format!("{stem}.json"));
            let wasm = dir.join(format!("{file}.wasm"));
            test_cmd(&wasm, &Source::Replay(replay), None, Some(&golden), "{}", None).unwrap_or_else(|e| {
                panic!("server/builtin/plugins/{file}.wasm differs from {}: copy plugins/{example}/build/{file}.wasm there ({e:#})", golden.display())
            });
            checked += 1;
        }
        assert!(checked > 0 || std::env::var_os("OPENSPORTS_DATA").is_none(), "{example}: no golden file");
    }
}
