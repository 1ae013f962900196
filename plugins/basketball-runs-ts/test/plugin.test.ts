// In-process tests of the plugin (node:test + tsx): the same events `opensports plugin test`
// runs the built component on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { Session, events, opensportsBin } from '@opensports/plugin/testing';
import plugin from '../src/plugin.ts';

test('every run output adds up to the points scored since it began', () => {
  const s = new Session(plugin, { name: 'basketball-runs' });
  const evs = events({ sim: 'basketball', seed: 3 });
  const out = s.feed(evs);
  const runs = out.filter((o) => o.topic.endsWith('/basketball-runs/run'));
  assert.ok(runs.length > 50, `only ${runs.length} run outputs`);
  for (const r of runs) {
    const d = r.data as { side: 'home' | 'away'; points: number; against: number; since_seq: number };
    let pts = 0;
    let against = 0;
    for (const e of evs) {
      if (e.seq < d.since_seq || e.seq > r.seq || e.sport !== 'basketball') continue;
      const p = e.type === 'shot' && e.made ? e.points : e.type === 'free_throw' && e.made ? 1 : 0;
      if (p && e.side === d.side) pts += p;
      else if (p) against += p;
    }
    assert.deepEqual([d.points, d.against], [pts, against], `run at seq ${r.seq}`);
  }
});

test('a run trigger fires once per run at the threshold, and clutch time toggles', () => {
  const s = new Session(plugin, { name: 'basketball-runs', config: { run_points: 6 } });
  const out = s.feed(events({ sim: 'basketball', seed: 3 }));
  const fired = out.filter((o) => o.topic.endsWith('/triggers') && (o.data as { rule: string }).rule === 'basketball-runs:run');
  const runs = out.filter((o) => o.topic.endsWith('/basketball-runs/run'));
  assert.ok(fired.length > 0);
  const keys = fired.map((o) => `${(o.data as { facts: { since_seq: number } }).facts.since_seq}`);
  assert.equal(new Set(keys).size, keys.length, 'one trigger per run');
  for (const f of fired) {
    assert.ok((f.data as { facts: { points: number } }).facts.points >= 6);
    // It fires on the score that took the run to the threshold.
    const before = runs.filter((r) => r.seq < f.seq).at(-1)?.data as { points: number; since_seq: number } | undefined;
    const at = runs.find((r) => r.seq === f.seq)?.data as { points: number; since_seq: number };
    assert.ok(at.points >= 6 && (!before || before.since_seq !== at.since_seq || before.points < 6));
  }
  const clutch = out.filter((o) => o.topic.endsWith('/clutch')).map((o) => (o.data as { active: boolean }).active);
  clutch.forEach((a, i) => assert.equal(a, i % 2 === 0, 'clutch alternates on, off, on...'));
});

test('in process, the outputs are exactly what the built component gives (opensports plugin test)', () => {
  const s = new Session(plugin, { name: 'basketball-runs' });
  const out = s.feed(events({ sim: 'basketball', seed: 3 }));
  const r = spawnSync(opensportsBin(), ['plugin', 'test', 'build/basketball_runs.wasm', '--sim', 'basketball', '--seed', '3'], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  assert.ok(existsSync('build/basketball_runs.wasm'), 'build it first: opensports plugin build .');
  assert.equal(r.status, 0, r.stderr);
  const wasm = r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  assert.deepEqual(out, wasm);
});

test('snapshot and restore give the same outputs as an uninterrupted run', () => {
  const evs = events({ sim: 'basketball', seed: 4 });
  const whole = new Session(plugin, { name: 'r' });
  const all = whole.feed(evs);
  const half = Math.floor(evs.length / 2);
  const first = new Session(plugin, { name: 'r' });
  first.feed(evs.slice(0, half));
  const second = new Session(plugin, { name: 'r' });
  second.restore(evs[0].game, first.snapshot(evs[0].game));
  const rest = second.feed(evs.slice(half));
  assert.deepEqual(rest, all.filter((o) => o.seq >= evs[half].seq));
});
