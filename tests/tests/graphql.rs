//! GraphQL against a live server: the schema it serves, a query over plain HTTP whose answer is
//! re-derived from the REST endpoints, and a real GraphQL client (graphql-ws from npm, the
//! reference implementation of `graphql-transport-ws`, run by node) subscribing with a scoped
//! key. The transport rules it shares with WebSocket and SSE are in `transcript.rs`.
//!
//! Needs `npm ci` in tests/browser (`bash tests/run` does it); outside CI, without it, the
//! client part says so and is skipped; under CI it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use opensports_proto::Sport;
use opensports_server::auth::Role;
use opensports_tests::{SIM_START_US, TestServer, WAIT, sim_events};

async fn graphql(server: &TestServer, key: &str, query: &str) -> serde_json::Value {
    let body = serde_json::json!({ "query": query }).to_string();
    let (status, text) =
        server.call(key, "POST", "/graphql", Some(("application/json", body.as_bytes()))).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_queries_answer_what_rest_answers_and_a_graphql_ws_client_subscribes() {
    let server = TestServer::start_with(|c| c.auth.public_topics.clear()).await;
    let events = sim_events(Sport::Basketball, 3, SIM_START_US);
    let game = events[0].game.clone();
    let admin = server.admin_key();
    let mut publisher = server.publisher().await;
    for e in &events[..60] {
        publisher.send(e).await.unwrap();
    }
    publisher.flush(WAIT).await.unwrap();
    server.wait_for_seq_as(&admin, &game, events[59].seq).await;

    // The schema: generated from the wire types (Publication, Mode) and the subscription.
    let (status, sdl) = server.get("/graphql/schema.graphql").await;
    assert_eq!(status, 200);
    for needle in [
        "type Publication",
        "enum Mode",
        "topics(patterns: [String!]!",
        "latest(topic: String!): Publication",
    ] {
        assert!(sdl.contains(needle), "{needle} missing from:\n{sdl}");
    }

    // A query answers what the REST endpoints answer.
    let q = format!(
        r#"{{ games game(id: "{game}") latest(topic: "game/{game}/state") {{ topic seq }} plugins }}"#
    );
    let got = graphql(&server, &admin, &q).await;
    assert!(got.get("errors").is_none(), "{got}");
    let rest = |path: String| {
        let server = &server;
        let admin = admin.clone();
        async move {
            let (status, body) = server.call(&admin, "GET", &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()
        }
    };
    assert_eq!(got["data"]["games"], rest("/v1/games".into()).await);
    assert_eq!(got["data"]["game"], rest(format!("/v1/games/{game}")).await);
    assert_eq!(got["data"]["plugins"], rest("/v1/plugins".into()).await["plugins"]);
    let latest = server.running().fanout.latest(&format!("game/{game}/state")).unwrap();
    assert_eq!(got["data"]["latest"]["seq"], latest.seq);

    // Scopes hold: a key for this game may not read the games list, nor a bad topic.
    let viewer = server.key(Role::Subscriber, &[&format!("game/{game}/#")]);
    let denied = graphql(&server, &viewer, "{ games }").await;
    assert_eq!(denied["errors"][0]["extensions"]["code"], "forbidden", "{denied}");
    let bad = graphql(&server, &viewer, r#"{ latest(topic: "game/+/state") { seq } }"#).await;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "bad_pattern", "{bad}");
    // Hostile queries are refused before they run: 600 aliases of a field cost more than the
    // complexity limit.
    let wide: String = (0..600).map(|i| format!("a{i}: plugins ")).collect();
    let refused = graphql(&server, &viewer, &format!("{{ {wide} }}")).await;
    let message = refused["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("complex"), "{refused}");

    // A real client: graphql-ws over the WebSocket, the key in connection_init.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !dir.join("node_modules/graphql-ws").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide graphql-ws (npm ci in tests/browser)");
        eprintln!("SKIPPED the graphql-ws client: npm ci in tests/browser");
        return server.shutdown().await;
    }
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("node")
            .arg(dir.join("graphql.mjs"))
            .env("OPENSPORTS_HTTP", format!("http://{}", server.running().http_addr))
            .env("OPENSPORTS_KEY", &viewer)
            .env("OPENSPORTS_GAME", &game)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(got["query"]["data"]["latest"]["seq"], latest.seq, "{got}");
    assert_eq!(got["query"]["data"]["game"], rest(format!("/v1/games/{game}")).await);
    // The subscription starts with the snapshots of both topics: the server's latest values.
    let deliveries = got["live"]["deliveries"].as_array().unwrap_or_else(|| panic!("{got}"));
    for d in deliveries {
        assert_eq!(d["kind"], "SNAPSHOT", "{d}");
        let topic = d["publication"]["topic"].as_str().unwrap();
        let p = server.running().fanout.latest(topic).unwrap();
        assert_eq!(d["publication"]["seq"], p.seq, "{topic}");
        let data: serde_json::Value = serde_json::from_str(p.data()).unwrap();
        assert_eq!(d["publication"]["data"], data, "{topic}");
    }
    let topics: Vec<&str> = deliveries.iter().map(|d| d["publication"]["topic"].as_str().unwrap()).collect();
    assert!(topics.contains(&format!("game/{game}/state").as_str()), "{topics:?}");
    assert_eq!(got["bad"]["errors"][0]["extensions"]["code"], "bad_pattern", "{got}");
    assert_eq!(got["forbidden"]["errors"][0]["extensions"]["code"], "forbidden", "{got}");
    server.shutdown().await;
}

/// A connection runs at most 16 subscriptions at once (each a group of its session, with a
/// queue of its own): the 17th and later are refused with `too_many_subscriptions`, the first
/// 16 keep running, and completing one frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_connection_are_bounded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let mut req = format!("ws://{}/graphql", server.running().http_addr).into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let send = |v: serde_json::Value| Message::text(v.to_string());
    ws.send(send(serde_json::json!({"type": "connection_init"}))).await.unwrap();
    let query = "subscription { topics(patterns: [\"bound/+\"]) { kind publication { seq } } }";
    for i in 0..20 {
        let msg =
            serde_json::json!({"type": "subscribe", "id": format!("s{i}"), "payload": {"query": query}});
        ws.send(send(msg)).await.unwrap();
    }
    let mut refused = std::collections::BTreeSet::new();
    while refused.len() < 4 {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v["type"] == "error" {
            assert_eq!(v["payload"][0]["extensions"]["code"], "too_many_subscriptions", "{v}");
            refused.insert(v["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(refused, ["s16", "s17", "s18", "s19"].map(String::from).into());
    // The 16 run: a publication reaches them; completing one frees a place for another. The
    // server reads a connection's messages in order, so once "again" receives publication N,
    // s0 was completed before N was published: s0 gets nothing from N on, s1..s15 and "again"
    // all get N. Publish 1, 2, ... until "again" has one (it may subscribe after the first).
    ws.send(send(serde_json::json!({"type": "complete", "id": "s0"}))).await.unwrap();
    let msg = serde_json::json!({"type": "subscribe", "id": "again", "payload": {"query": query}});
    ws.send(send(msg)).await.unwrap();
    let t = server.running().fanout.topic("bound/x").unwrap();
    // Live publications received, by seq: who got each.
    let mut seen = Seen::new();
    let mut last = 0;
    while !seen.values().any(|ids| ids.contains("again")) && last < 1000 {
        last = server.running().fanout.publish(&t, 1, b"{}").seq;
        // s15 subscribed before "again": read until it has this publication.
        read_live(&mut ws, &mut seen, |seen| seen.get(&last).is_some_and(|ids| ids.contains("s15"))).await;
    }
    let n = *seen.iter().find(|(_, ids)| ids.contains("again")).expect("the re-used place is silent").0;
    // N reaches s1..s15 and "again", never s0, nor does anything after N.
    let m = server.running().fanout.publish(&t, 1, b"{}").seq;
    let all = |seen: &Seen| [n, m].iter().all(|k| seen.get(k).is_some_and(|ids| ids.len() >= 16));
    read_live(&mut ws, &mut seen, all).await;
    for (k, ids) in seen.range(n..) {
        assert!(!ids.contains("s0"), "s0 got {k} after it was completed: {ids:?}");
    }
    assert!(seen[&n].contains("again") && seen[&m].contains("again"), "{seen:?}");
    assert_eq!((seen[&n].len(), seen[&m].len()), (16, 16), "{seen:?}");
    server.shutdown().await;
}

/// Live publications a GraphQL connection received, by seq: which operations got each.
type Seen = std::collections::BTreeMap<u64, std::collections::BTreeSet<String>>;

/// Reads `next` messages into `seen` until `done` (snapshots are left out: a new subscription
/// may get one of an earlier publication).
async fn read_live(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    seen: &mut Seen,
    done: impl Fn(&Seen) -> bool,
) {
    use futures_util::StreamExt;
    while !done(seen) {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert_ne!(v["type"], "error", "{v}");
        let topics = &v["payload"]["data"]["topics"];
        if let (Some(id), Some(n), true) =
            (v["id"].as_str(), topics["publication"]["seq"].as_u64(), topics["kind"] == "MSG")
        {
            seen.entry(n).or_default().insert(id.to_string());
        }
    }
}
