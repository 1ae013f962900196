/**
 * OpenSports Edge plugin kit for TypeScript (plugin ABI v2: the WIT world
 * `opensports:plugin/plugin@2.0.0`, built into a WebAssembly component by componentize-js).
 *
 * A plugin is a class with `onEvent(ctx, event)`; the kit keeps one instance per game, so it is
 * written as if it watched a single game. Outputs go out with `ctx.emit(topic, value)` on
 * `game/{id}/{plugin}/{topic}`. Plugins are deterministic: no clock, no randomness, no I/O
 * (the server's sandbox has none), so the server can rebuild their state by replay.
 *
 * ```ts
 * import { definePlugin, type Ctx, type Event } from '@opensports/plugin';
 *
 * class MadeShots {
 *   made = 0;
 *   onEvent(ctx: Ctx, e: Event) {
 *     if (e.sport === 'basketball' && e.type === 'shot' && e.made) {
 *       ctx.emit('made_shots', { made: ++this.made });
 *     }
 *   }
 * }
 * export default definePlugin({ sports: ['basketball'], create: () => new MadeShots() });
 * ```
 */

import type { Event } from './schema.js';

export type { Event } from './schema.js';
export type * from './schema.js';

/** The plugin ABI this kit speaks. */
export const ABI_VERSION = '2.0.0';

export type Sport = 'basketball' | 'football' | 'soccer' | 'f1';

/** Bit of each sport in the mask `sports` returns. */
export const SPORT_BITS: Record<Sport, number> = { basketball: 1, football: 2, soccer: 4, f1: 8 };

/** Names of the ABI's status codes (`opensports-proto::plugin_abi`). */
export const STATUS_NAMES: Record<number, string> = {
  0: 'OK',
  1: 'BAD_INPUT_BYTES',
  [-1]: 'TOO_MANY_EMITS',
  [-2]: 'TOO_LARGE',
  [-3]: 'BAD_TOPIC',
  [-4]: 'BAD_JSON',
  [-5]: 'BAD_POINTER',
  [-10]: 'NO_SUCH_MODEL',
  [-11]: 'BAD_INPUT',
  [-12]: 'OUTPUT_TOO_SMALL',
  [-13]: 'INFER_FAILED',
};

/** The server refused an `emit` or `infer`: `status` is the ABI's code. */
export class HostError extends Error {
  constructor(readonly status: number) {
    super(`${STATUS_NAMES[status] ?? 'status'} (${status})`);
    this.name = 'HostError';
  }
}

export type Level = 'error' | 'warn' | 'info' | 'debug';

/** What the server offers during a call (the WIT interface `host`). Errors are thrown. */
export interface Host {
  emit(topic: string, payload: string): void;
  infer(model: string, inputs: Float32Array | number[]): Float32Array | number[];
  log(level: Level, message: string): void;
}

/** The plugin's handle to the server during one event. */
export class Ctx {
  constructor(
    private readonly host: Host,
    /** The game this event belongs to. */
    readonly game: string,
  ) {}

  /** Publishes `value` (as JSON) on `game/{id}/{plugin}/{topic}`; throws `HostError` when the
   * server refuses it (too many, too large, bad topic), which fails the event. */
  emit(topic: string, value: unknown): void {
    this.host.emit(topic, JSON.stringify(value));
  }

  /** Fires trigger `name` (1-64 of `[A-Za-z0-9_-]`): published on `game/{id}/triggers` as rule
   * `{plugin}:{name}` at this event's seq, with `text` and `facts`. Counts as an emit. */
  trigger(name: string, text: string, facts: Record<string, unknown>): void {
    this.emit(`trigger/${name}`, { text, facts });
  }

  /** Runs the server's model `model` on `inputs`; returns its outputs. */
  infer(model: string, inputs: number[]): number[] {
    return Array.from(this.host.infer(model, Float32Array.from(inputs)));
  }

  /** Writes to the server's log. */
  log(level: Level, message: string): void {
    this.host.log(level, message);
  }
}

/** One game's plugin value. `snapshot`/`restore` are optional: without them a restart replays. */
export interface GamePlugin {
  onEvent(ctx: Ctx, event: Event): void;
  /** State to persist (JSON-able); `undefined`: no snapshots. */
  snapshot?(): unknown;
  restore?(state: unknown): void;
}

export interface PluginSpec<C = Record<string, unknown>> {
  /** Sports whose events the plugin wants; all when absent. */
  sports?: Sport[];
  /** Makes one game's value from the plugin's config (`{}` when none). */
  create(config: C): GamePlugin;
}

/** The WIT world's exports, as componentize-js wants them. */
export interface Exports {
  sports(): number;
  init(config: string): void;
  onEvent(event: string): void;
  snapshot(game: string): Uint8Array;
  restore(game: string, state: Uint8Array): void;
  forget(game: string): void;
}

export interface Plugin<C = Record<string, unknown>> {
  readonly spec: PluginSpec<C>;
  /** The world's exports over `host` (the component's glue and the test session use it). */
  bind(host: Host): Exports & { onEventValue(event: Event): void };
}

/** Declares a plugin: `export default definePlugin({...})` in the plugin's entry module. */
export function definePlugin<C = Record<string, unknown>>(spec: PluginSpec<C>): Plugin<C> {
  return {
    spec,
    bind(host: Host) {
      let config = {} as C;
      const games = new Map<string, GamePlugin>();
      const game = (id: string) => {
        let p = games.get(id);
        if (!p) {
          p = spec.create(config);
          games.set(id, p);
        }
        return p;
      };
      const onEventValue = (e: Event) => game(e.game).onEvent(new Ctx(host, e.game), e);
      return {
        sports: () => (spec.sports ?? []).reduce((m, s) => m | SPORT_BITS[s], 0),
        init(text: string) {
          const v = JSON.parse(text || '{}');
          if (typeof v !== 'object' || v === null || Array.isArray(v)) throw 1;
          config = v as C;
        },
        onEvent: (text: string) => onEventValue(JSON.parse(text) as Event),
        onEventValue,
        snapshot(id: string) {
          const state = games.get(id)?.snapshot?.();
          return state === undefined ? new Uint8Array() : new TextEncoder().encode(JSON.stringify(state));
        },
        restore(id: string, bytes: Uint8Array) {
          const p = spec.create(config);
          if (!p.restore) throw 1;
          p.restore(JSON.parse(new TextDecoder().decode(bytes)));
          games.set(id, p);
        },
        forget: (id: string) => void games.delete(id),
      };
    },
  };
}
