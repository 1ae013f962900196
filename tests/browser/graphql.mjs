// A real GraphQL client (graphql-ws, the reference implementation of graphql-transport-ws)
// against a live server; called by tests/tests/graphql.rs, which checks what it prints.
//
// Env: OPENSPORTS_HTTP (http://host:port), OPENSPORTS_KEY (a subscriber key), OPENSPORTS_GAME.
// Prints one JSON object: the query's answer, a subscription's first deliveries, and the
// errors of a bad and a forbidden subscription.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const http = process.env.OPENSPORTS_HTTP;
const key = process.env.OPENSPORTS_KEY;
const game = process.env.OPENSPORTS_GAME;

const query = await fetch(`${http}/graphql`, {
  method: "POST",
  headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
  body: JSON.stringify({
    query: "query($t: String!, $g: String!) { latest(topic: $t) { topic seq ts } game(id: $g) }",
    variables: { t: `game/${game}/state`, g: game },
  }),
}).then((r) => r.json());

const client = createClient({
  url: http.replace(/^http/, "ws") + "/graphql",
  webSocketImpl: WebSocket,
  connectionParams: { token: key },
  retryAttempts: 0,
});

const SUB = `subscription($p: [String!]!) {
  topics(patterns: $p) { kind publication { topic seq data } }
}`;

/** The first `n` deliveries of a subscription, or its error. */
function take(patterns, n) {
  return new Promise((resolve) => {
    const got = [];
    const stop = client.subscribe(
      { query: SUB, variables: { p: patterns } },
      {
        next: (msg) => {
          if (msg.errors) return resolve({ errors: msg.errors });
          got.push(msg.data.topics);
          if (got.length === n) {
            stop();
            resolve({ deliveries: got });
          }
        },
        error: (errors) => resolve({ errors: Array.isArray(errors) ? errors : [String(errors)] }),
        complete: () => resolve({ deliveries: got }),
      },
    );
  });
}

const live = await take([`game/${game}/state`, `game/${game}/winprob`], 2);
const bad = await take(["game/#/state"], 1);
const forbidden = await take(["games"], 1);
await client.dispose();
console.log(JSON.stringify({ query, live, bad, forbidden }));
