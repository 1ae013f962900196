// The client's promises against a real server while the harness publishes a live game
// (OPENSPORTS_LIVE_GAME, up to seq OPENSPORTS_LIVE_LAST): resume after a dropped connection
// with no gap and no duplicate, callbacks beside the iterator, typed refusals, latest mode,
// and types that match the server's schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OpenSportsError, Subscriber, isPublication } from '../dist/index.js';
import { env } from './harness.mjs';

const game = () => env('OPENSPORTS_LIVE_GAME');
const last = () => Number(env('OPENSPORTS_LIVE_LAST'));

test('a dropped connection resumes with no gap and no duplicate', async () => {
  const topic = `game/${game()}/state`;
  const sub = await Subscriber.connect(env('OPENSPORTS_WS'));
  const states = [];
  sub.onState((s) => states.push(s));
  const seen = [];
  const viaCallback = [];
  sub.on((m) => isPublication(m) && m.topic === topic && viaCallback.push(m.seq));
  await sub.subscribe([`game/${game()}/+`]);
  let dropped = false;
  let seqAtDrop = 0;
  while (!seen.length || seen.at(-1).seq < last()) {
    const m = await sub.next(60_000);
    if (!isPublication(m) || m.topic !== topic) continue;
    seen.push(m);
    if (!dropped && seen.length === 20) {
      dropped = true;
      seqAtDrop = m.seq;
      sub.disconnect();
    }
  }
  sub.close();
  assert.ok(seqAtDrop < last(), `the game (${last()} events) was over before the drop at ${seqAtDrop}: nothing was resumed`);
  assert.equal(sub.reconnects, 1);
  assert.deepEqual(states.slice(0, 2), ['reconnecting', 'open']);
  const seqs = seen.map((m) => m.seq);
  const first = seqs[0];
  assert.deepEqual(seqs, Array.from({ length: last() - first + 1 }, (_, i) => first + i), 'every seq once, in order');
  assert.ok(seen.slice(1).every((m) => m.op === 'msg'), 'no snapshot after the first: the resume sent what was missed');
  assert.deepEqual(viaCallback, seqs, 'callbacks see what the iterator sees');
});

test('a refused op rejects with the server error code and the session goes on', async () => {
  const sub = await Subscriber.connect(env('OPENSPORTS_WS'), { reconnect: false });
  await assert.rejects(sub.subscribe(['game/#/state']), (e) => e instanceof OpenSportsError && e.code === 'bad_pattern');
  await assert.rejects(sub.subscribe([`game/${game()}/state`], { since: { 'game/other/state': 3 } }), (e) => e.code === 'bad_since');
  const ok = await sub.subscribe([`game/${game()}/state`], { mode: 'latest' });
  assert.deepEqual(ok.topics, [`game/${game()}/state`]);
  const m = await sub.next(60_000);
  assert.equal(m.op, 'snapshot');
  assert.equal(m.data.game, game());
  sub.close();
});

test('a server that cannot be reached is a connect_failed error', async () => {
  await assert.rejects(Subscriber.connect('ws://127.0.0.1:9/ws', { reconnect: false }), (e) => e.code === 'connect_failed');
});

test("a refused connection is the server's error code (PROTOCOL.md 2.6)", async () => {
  const url = env('OPENSPORTS_WS');
  await assert.rejects(
    Subscriber.connect(url, { token: 'osk_000000000000_wrong', reconnect: false }),
    (e) => e instanceof OpenSportsError && e.code === 'unauthorized',
  );
});

test('the TypeScript types are current with the committed schema', () => {
  const script = fileURLToPath(new URL('../scripts/gen-types.mjs', import.meta.url));
  execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' });
});

test("the dashboard's embedded copies of this client and of uPlot are current", () => {
  const script = fileURLToPath(new URL('../scripts/vendor-dashboard.mjs', import.meta.url));
  execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' });
});
