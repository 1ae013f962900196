/**
 * Run a plugin in process, under `node --test` (or vitest): no server, no wasm.
 *
 * ```ts
 * import { Session, events } from '@opensports/plugin/testing';
 * import plugin from '../src/plugin.ts';
 *
 * test('counts made shots', () => {
 *   const s = new Session(plugin, { name: 'made-shots' });
 *   const out = s.feed(events({ sim: 'basketball', seed: 1 }));
 *   assert.ok(out.length > 0);
 * });
 * ```
 *
 * `events` asks the `opensports` binary (`$OPENSPORTS_BIN`, else on `PATH`) for a simulated game
 * or a real provider feed, as `opensports plugin test` sees them; a `Session` records each
 * output as the server publishes it (`{game, seq, topic, data}`, the lines `opensports plugin
 * test` prints), so one golden file checks both.
 */

import { spawnSync } from 'node:child_process';

import { HostError, type Event, type Host, type Level, type Plugin } from './index.js';

export interface Output {
  game: string;
  seq: number;
  topic: string;
  data: unknown;
}

export interface SessionOptions<C> {
  /** The plugin's name: the topic level of its outputs. */
  name?: string;
  config?: C;
  /** Stand-ins for the server's models (inference runs on the server). */
  models?: Record<string, (inputs: number[]) => number[]>;
  maxEmits?: number;
  maxEmitBytes?: number;
}

/** One plugin, fed events in process, with the server's emit rules. */
export class Session<C = Record<string, unknown>> {
  readonly outputs: Output[] = [];
  readonly logs: [Level, string][] = [];
  readonly events: Event[] = [];
  private current: Event | undefined;
  private emitted = 0;
  private readonly exports: ReturnType<Plugin<C>['bind']>;
  private readonly sports: Set<string>;

  constructor(plugin: Plugin<C>, opts: SessionOptions<C> = {}) {
    const name = opts.name ?? 'plugin';
    const maxEmits = opts.maxEmits ?? 64;
    const maxBytes = opts.maxEmitBytes ?? 65536;
    const host: Host = {
      emit: (topic, payload) => {
        if (this.emitted >= maxEmits) throw new HostError(-1);
        if (Buffer.byteLength(payload) > maxBytes) throw new HostError(-2);
        if (!topic || /[+#]/.test(topic) || topic.startsWith('/') || topic.endsWith('/')) throw new HostError(-3);
        this.emitted++;
        const e = this.current as Event;
        const data = JSON.parse(payload);
        if (topic.startsWith('trigger/')) {
          // As the server publishes a plugin's trigger (rule set version 1).
          this.outputs.push({ game: e.game, seq: e.seq, topic: `game/${e.game}/triggers`, data: {
            rule: `${name}:${topic.slice(8)}`, version: 1, seq: e.seq, ts: e.ts, plugin: name, topic: null,
            value: data.value ?? null, facts: data.facts ?? {}, text: String(data.text ?? '').slice(0, 256),
          } });
        } else {
          this.outputs.push({ game: e.game, seq: e.seq, topic: `game/${e.game}/${name}/${topic}`, data });
        }
      },
      infer: (model, inputs) => {
        const f = opts.models?.[model];
        if (!f) throw new HostError(-10);
        return f(Array.from(inputs));
      },
      log: (level, message) => void this.logs.push([level, message]),
    };
    this.exports = plugin.bind(host);
    this.exports.init(JSON.stringify(opts.config ?? {}));
    this.sports = new Set(plugin.spec.sports ?? []);
  }

  /** Runs the plugin on `events` (skipping sports it did not ask for, as the server does);
   * returns the outputs they caused. */
  feed(events: Iterable<Event>): Output[] {
    const start = this.outputs.length;
    for (const e of events) {
      if (this.sports.size > 0 && !this.sports.has(e.sport)) continue;
      this.current = e;
      this.emitted = 0;
      this.events.push(e);
      this.exports.onEventValue(e);
    }
    return this.outputs.slice(start);
  }

  snapshot(game: string): Uint8Array {
    return this.exports.snapshot(game);
  }

  restore(game: string, state: Uint8Array): void {
    this.exports.restore(game, state);
  }
}

/** The `opensports` binary: `$OPENSPORTS_BIN`, else the one on `PATH`. */
export function opensportsBin(): string {
  return process.env.OPENSPORTS_BIN || 'opensports';
}

/** The events of a simulated game or of a replay file (a provider feed or JSONL of events),
 * from `opensports plugin events`. */
export function events(opts: { sim?: Event['sport']; seed?: number; replay?: string }): Event[] {
  const args = ['plugin', 'events'];
  if (opts.replay) args.push('--replay', opts.replay);
  else if (opts.sim) args.push('--sim', opts.sim, '--seed', String(opts.seed ?? 1));
  else throw new Error('events() needs sim or replay');
  const r = spawnSync(opensportsBin(), args, { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.error) throw new Error(`cannot run ${opensportsBin()} (put it on PATH or set OPENSPORTS_BIN): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`opensports plugin events failed: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Event);
}
