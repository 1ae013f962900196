//! The OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator, from PyPI), every
//! operation it lists is one the router answers, and every route the router serves is in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_every_operation_in_it_is_served() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let file = server.dir.path().join("openapi.json");
    std::fs::write(&file, &body).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 (bash tests/run installs openapi-spec-validator)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openapi-spec-validator: {text}");

    // The router's own 404 (no route) has an empty body; a handler's 404 says why.
    let (status, body) = server.admin_get("/v1/no-such-route").await;
    assert_eq!((status, body.as_str()), (404, ""), "the fallback is recognisable");
    let admin = server.admin_key();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    let mut calls = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{topic}", "game%2Fnope%2Fstate")
            .replace("{id}", "nope")
            .replace("{name}", "nope")
            .replace("{game}", "nope")
            .replace("{file}", "nope.js");
        for method in item.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            let body = (method == "POST" || method == "PUT").then_some(("application/json", &b"{}"[..]));
            let (status, text) = server.call(&admin, &method, &concrete, body).await;
            assert!(
                status != 405 && !(status == 404 && text.is_empty()),
                "{method} {path}: no route ({status})"
            );
            let documented = &item[method.to_ascii_lowercase()]["responses"];
            assert!(
                documented.get(status.to_string()).is_some(),
                "{method} {path} answered {status}, which the document does not list: {text}"
            );
            calls += 1;
        }
    }
    assert!(calls >= 24, "{calls} operations");
}

/// The other direction: every `.route(...)` of the router (read from its source) is a path of
/// the document (a catch-all `{*x}` segment stands for one or more documented segments).
#[test]
fn every_route_the_router_serves_is_documented() {
    let src = std::fs::read_to_string(opensports_tests::workspace().join("server/src/api/mod.rs")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(opensports_server::api::openapi::json()).unwrap();
    let paths: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let shape = |p: &str| -> String {
        p.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect::<Vec<_>>().join("/")
    };
    let documented: Vec<String> = paths.iter().map(|p| shape(p)).collect();
    let mut routes = 0;
    for part in src.split(".route(\"").skip(1) {
        let route = &part[..part.find('"').unwrap()];
        routes += 1;
        let ok = match route.find("{*") {
            Some(i) => documented.iter().any(|d| d.starts_with(&shape(&route[..i]))),
            None => documented.contains(&shape(route)),
        };
        assert!(ok, "route {route} is not in the OpenAPI document");
    }
    assert!(routes >= 25, "{routes} routes read from the router");
}

/// Every HTTP error code the API answers with is defined once (`error_code::http`) and listed
/// in PROTOCOL.md.
#[test]
fn every_http_error_code_is_in_protocol_md() {
    let doc = std::fs::read_to_string(opensports_tests::workspace().join("PROTOCOL.md")).unwrap();
    for code in opensports_proto::error_code::http::ALL {
        assert!(doc.contains(&format!("| `{code}` |")), "{code} is not in PROTOCOL.md's HTTP error table");
    }
    // And no handler writes a code by hand.
    for file in ["admin.rs", "mod.rs", "sse.rs", "store.rs", "ws.rs", "pages.rs"] {
        let src =
            std::fs::read_to_string(opensports_tests::workspace().join("server/src/api").join(file)).unwrap();
        for part in src.split("json_error(").skip(1) {
            let args: String = part.chars().take_while(|c| *c != ';').collect();
            let second = args.split(',').nth(1).unwrap_or("").trim().to_string();
            assert!(!second.starts_with('"'), "{file}: a literal error code in json_error({args}");
        }
    }
}

/// The document describes what the server really accepts and answers: schemathesis (PyPI)
/// generates requests from it, valid and invalid, and checks every answer against it (no 5xx,
/// valid requests accepted, invalid ones refused, status codes, content types and bodies as
/// documented). A short, seeded run. Left out, each with its own tests: the two WebSocket
/// upgrades (`/ws`, `GET /graphql`: `transcript.rs`), the plugin upload (its body is a compiled
/// module no schema describes: `plugins.rs`), the console's sign-in (a TOTP code no schema can
/// produce: `console.rs`), and the `ignored_auth` check (after three wrong
/// credentials from one address the answer is `429 backoff`, by design: `security_round2.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_difference_between_the_document_and_the_server() {
    let Some(st) = ["st", "schemathesis"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        assert!(std::env::var_os("CI").is_none(), "CI must provide schemathesis (pip install schemathesis)");
        eprintln!("SKIPPED: schemathesis not installed (bash tests/run installs it)");
        return;
    };
    // Webhook devices need a signing secret.
    let server = TestServer::start_with(|c| c.push.webhook_secret = "schemathesis".into()).await;
    let admin = server.admin_key();
    let config = server.dir.path().join("schemathesis.toml");
    // A resume point names topics the patterns match, which no schema can say: SSE runs
    // without one (its resume is tested in sse.rs). A stream is read for one event.
    std::fs::write(
        &config,
        "[[operations]]\ninclude-path = \"/v1/sse\"\nmax-stream-events = 1\n\
         parameters = { \"since\" = \"\", \"Last-Event-ID\" = \"\" }\n",
    )
    .unwrap();
    let url = format!("http://{}/openapi.json", server.running().http_addr);
    let out = tokio::process::Command::new(st)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &url, "-H", &format!("Authorization: Bearer {admin}"), "-n", "10", "--seed", "1"])
        .args(["--checks", "all", "--exclude-checks", "ignored_auth"])
        .args([
            "--exclude-path",
            "/v1/plugins/{name}",
            "--exclude-path",
            "/ws",
            "--exclude-operation-id",
            "get_graphql",
            // Console sign-in needs a TOTP code from a secret no schema holds: console.rs.
            "--exclude-tag",
            "console",
        ])
        .env("NO_COLOR", "1")
        // Its example cache stays in the server's temp dir, not the checkout.
        .current_dir(server.dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found differences:\n{text}");
    assert!(text.contains("generated"), "{text}");
    server.shutdown().await;
}
