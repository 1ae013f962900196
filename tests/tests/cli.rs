//! The command line against a real server: `export` and `backup` over HTTPS with the
//! server's own certificate as the trusted root (a real HTTP client, ureq), refusals when
//! the certificate is not trusted or the scheme is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use opensports_proto::Sport;
use opensports_server::cli::store::{Server, Source, backup_cmd, export_cmd};
use opensports_server::store::export::Format;
use opensports_tests::{SIM_START_US, TestServer, WAIT, sim_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_backup_work_over_https_with_the_servers_certificate() {
    let server = TestServer::start_with(|c| c.server.http_tls = true).await;
    let events = sim_events(Sport::Soccer, 3, SIM_START_US);
    let game = events[0].game.clone();
    // (publish_all would poll the state over plain HTTP; this server speaks only HTTPS.)
    let mut publisher = server.publisher().await;
    for e in &events[..40] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();

    let url = format!("https://{}", server.running().http_addr);
    let ca_pem = Some(std::fs::read(server.dir.path().join("tls/cert.pem")).unwrap());
    let key = Some(server.admin_key());
    let out = server.dir.path().join("export.jsonl");
    let backup = server.dir.path().join("backup.redb");
    let trusted = Source::Server(Server { url: url.clone(), key: key.clone(), ca_pem });
    let untrusted = Source::Server(Server { url: url.clone(), key: key.clone(), ca_pem: None });
    let plain = Source::Server(Server { url: url.replace("https", "http"), key, ca_pem: None });
    let (g, o, b) = (game.clone(), out.clone(), backup.clone());
    let results = tokio::task::spawn_blocking(move || {
        (
            export_cmd(&trusted, &Default::default(), &g, Format::Jsonl, Some(&o)),
            backup_cmd(&trusted, &Default::default(), &b),
            export_cmd(&untrusted, &Default::default(), &g, Format::Jsonl, Some(&o.with_extension("x"))),
            export_cmd(&plain, &Default::default(), &g, Format::Jsonl, Some(&o.with_extension("y"))),
        )
    })
    .await
    .unwrap();
    results.0.expect("export over https");
    results.1.expect("backup over https");
    let lines = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(lines, 40, "every logged event exported");
    assert!(backup.exists() && std::fs::metadata(&backup).unwrap().len() > 0);
    let err = format!("{:#}", results.2.expect_err("a self-signed certificate is not trusted by default"));
    assert!(err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"), "{err}");
    assert!(results.3.is_err(), "plain HTTP to a TLS port fails");
    server.shutdown().await;
}
