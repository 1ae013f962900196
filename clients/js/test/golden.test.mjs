// Replays the golden transcripts' WebSocket exchanges with this client (the harness published
// their events: this client has no QUIC publisher) and polls the latest-value endpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Subscriber } from '../dist/index.js';
import { contains, env, transcripts } from './harness.mjs';

for (const [name, script] of transcripts()) {
  test(`golden transcript ${name}`, async () => {
    const { topic, seq } = script.wait_latest;
    const url = `${env('OPENSPORTS_HTTP')}/v1/topics/${encodeURIComponent(topic)}/latest`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await fetch(url);
      if (r.status === 200 && (await r.json()).seq === seq) break;
      assert.ok(Date.now() < deadline, `${topic} never reached seq ${seq}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    const sub = await Subscriber.connect(env('OPENSPORTS_WS'), { reconnect: false });
    try {
      for (const [i, step] of script.ws.entries()) {
        if (step.send) {
          sub.send(step.send);
          continue;
        }
        const msg = await sub.next(60_000);
        assert.ok(contains(msg, step.expect), `step ${i}: got ${JSON.stringify(msg)}, expected ${JSON.stringify(step.expect)}`);
      }
    } finally {
      sub.close();
    }
  });
}
