// WebSocket subscriber for browsers and Node ≥ 20 (PROTOCOL.md §2).
import type { ClientOp, Mode, OpId, ServerMsg } from './schema.js';
import { OpenSportsError, isPublication, matches, parseFrame } from './messages.js';

/** The part of the WebSocket API the client uses (the browser's, or the `ws` package's). */
export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

export interface SubscriberOptions {
  /** A subscriber API key or JWT, sent as `?token=` (browsers cannot set headers). */
  token?: string;
  /** Reconnect after a dropped connection and resume with `since` (default true). */
  reconnect?: boolean;
  /** Longest wait between reconnect attempts (default 5000 ms; starts at 50 ms, doubling). */
  maxBackoffMs?: number;
  /** Queue messages for `next()` and the iterator (default true). Set false when only
   * callbacks (`on`) read them, or the queue grows without end. */
  buffer?: boolean;
  /** A WebSocket constructor; default: the global one, else the `ws` package (Node 20). */
  WebSocket?: WebSocketCtor;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
/** The parts of Node's `http` request and response that a refused upgrade is read with. */
interface NodeRequest {
  destroy(): void;
}
interface NodeResponse {
  statusCode?: number;
  on(ev: 'data' | 'end', f: (chunk?: unknown) => void): void;
}

type Subscribed = Extract<ServerMsg, { op: 'subscribed' }>;
type Unsubscribed = Extract<ServerMsg, { op: 'unsubscribed' }>;
type Reply = Extract<ServerMsg, { op: 'subscribed' | 'unsubscribed' | 'pong' | 'error' }>;

async function defaultWebSocket(): Promise<WebSocketCtor> {
  const g = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (g) return g;
  const name = 'ws'; // not a static import: browser bundles never reach it
  const mod = (await import(/* @vite-ignore */ name)) as { default: WebSocketCtor };
  return mod.default;
}

/**
 * Subscribes to topic patterns and delivers every message in order, through an async
 * iterator (`for await (const m of sub)`) or callbacks (`sub.on(m => ...)`). Batch frames are
 * flattened. The last seq of every topic is remembered; after a dropped connection the
 * client reconnects (backoff with jitter) and subscribes again with `since`, so the server
 * sends exactly what was missed (or `reset` + `snapshot` when its history is gone).
 */
export class Subscriber {
  private ws!: WebSocketLike;
  private queue: ServerMsg[] = [];
  private waiters: Array<(m: ServerMsg | null) => void> = [];
  private listeners = new Set<(m: ServerMsg) => void>();
  private stateListeners = new Set<(s: ConnectionState) => void>();
  private requests = new Map<string, { resolve: (m: Reply) => void; reject: (e: Error) => void }>();
  /** pattern → [mode, delay_ms] of every live `sub`, replayed with `since` on reconnect. */
  private subs = new Map<string, [Mode, number]>();
  private seqs = new Map<string, number>();
  private nextId = 1;
  private closing = false;
  /** Reconnections made so far. */
  reconnects = 0;
  state: ConnectionState = 'connecting';

  private constructor(
    readonly url: string,
    private readonly opts: SubscriberOptions,
    private readonly Ctor: WebSocketCtor,
  ) {}

  /**
   * Connects. Rejects with `OpenSportsError`: the server's code when it refused the upgrade
   * (`unauthorized`, `forbidden`, `backoff`, `too_many_connections`; read from its JSON error body
   * where the runtime lets us, as Node's `ws` does), else `connect_failed` (PROTOCOL.md §2.6: a
   * browser's WebSocket hides why an upgrade failed).
   */
  static async connect(url: string, opts: SubscriberOptions = {}): Promise<Subscriber> {
    const sub = new Subscriber(url, opts, opts.WebSocket ?? (await defaultWebSocket()));
    await sub.open();
    return sub;
  }

  private open(): Promise<void> {
    const url = this.opts.token ? `${this.url}${this.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.opts.token)}` : this.url;
    return new Promise((resolve, reject) => {
      const ws = new this.Ctor(url);
      let opened = false;
      // Node's `ws` shows a refused upgrade's response: its error body names the code.
      let refused: string | undefined;
      const emitter = ws as unknown as { on?: (ev: string, f: (req: NodeRequest, res: NodeResponse) => void) => void };
      emitter.on?.('unexpected-response', (req, res) => {
        let body = '';
        res.on('data', (c: unknown) => (body += String(c)));
        res.on('end', () => {
          try {
            refused = JSON.parse(body)?.error?.code;
          } catch {
            refused = undefined;
          }
          reject(new OpenSportsError(refused ?? 'connect_failed', `HTTP ${res.statusCode}: ${body}`));
          req.destroy();
        });
      });
      ws.onopen = () => {
        opened = true;
        this.ws = ws;
        this.setState('open');
        resolve();
      };
      ws.onerror = () => {
        if (!opened && emitter.on === undefined) reject(new OpenSportsError('connect_failed', `could not connect to ${this.url}`));
      };
      ws.onmessage = (ev) => this.onFrame(String(ev.data));
      ws.onclose = () => {
        if (opened) void this.onDrop();
        else reject(new OpenSportsError('connect_failed', `could not connect to ${this.url}`));
      };
    });
  }

  private setState(s: ConnectionState): void {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private onFrame(text: string): void {
    let msgs: ServerMsg[];
    try {
      msgs = parseFrame(text);
    } catch {
      return;
    }
    for (const m of msgs) {
      if (isPublication(m)) this.seqs.set(m.topic, m.seq);
      const id = 'id' in m && m.id != null ? String(m.id) : undefined;
      const req = id !== undefined && !isPublication(m) ? this.requests.get(id) : undefined;
      if (req) {
        this.requests.delete(id!);
        if (m.op === 'error') req.reject(new OpenSportsError(m.code, m.message, m.id));
        else req.resolve(m as Reply);
        continue;
      }
      for (const l of this.listeners) l(m);
      const w = this.waiters.shift();
      if (w) w(m);
      else if (this.opts.buffer !== false) this.queue.push(m);
    }
  }

  private async onDrop(): Promise<void> {
    if (this.closing || this.opts.reconnect === false) {
      this.setState('closed');
      for (const w of this.waiters.splice(0)) w(null);
      for (const r of this.requests.values()) r.reject(new OpenSportsError('closed', 'the connection closed'));
      this.requests.clear();
      return;
    }
    this.setState('reconnecting');
    const max = this.opts.maxBackoffMs ?? 5000;
    for (let attempt = 0; !this.closing; attempt++) {
      const delay = Math.min(max, 50 * 2 ** attempt) * (0.5 + Math.random() / 2);
      await new Promise((r) => setTimeout(r, delay));
      try {
        await this.open();
        break;
      } catch {
        continue;
      }
    }
    if (this.closing) return;
    this.reconnects++;
    for (const [pattern, [mode, delay]] of this.subs) {
      const since: Record<string, number> = {};
      for (const [t, s] of this.seqs) if (matches(pattern, t)) since[t] = s;
      const op: ClientOp = { op: 'sub', topics: [pattern], mode, id: `resume-${this.nextId++}` };
      if (Object.keys(since).length) op.since = since;
      if (delay) op.delay_ms = delay;
      this.send(op);
    }
  }

  /** Sends one raw client op (PROTOCOL.md §2.1); its answer arrives with the other messages. */
  send(op: ClientOp | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(op));
  }

  private request(op: ClientOp & { id: OpId }): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.requests.set(String(op.id), { resolve, reject });
      this.send(op);
    });
  }

  /**
   * Subscribes; resolves on `subscribed` (snapshots arrive before it), rejects with the server's
   * `error`. `delayMs`: each message at its source time plus this (a broadcast delay, PROTOCOL.md §2.7).
   */
  async subscribe(
    topics: string[],
    opts: { mode?: Mode; since?: Record<string, number>; delayMs?: number } = {},
  ): Promise<Subscribed> {
    const mode = opts.mode ?? 'all';
    const op: ClientOp & { id: OpId } = { op: 'sub', topics, mode, id: this.nextId++ };
    if (opts.since) op.since = opts.since;
    if (opts.delayMs) op.delay_ms = opts.delayMs;
    const reply = (await this.request(op)) as Subscribed;
    for (const t of topics) this.subs.set(t, [mode, opts.delayMs ?? 0]);
    return reply;
  }

  async unsubscribe(topics: string[]): Promise<Unsubscribed> {
    const reply = (await this.request({ op: 'unsub', topics, id: this.nextId++ })) as Unsubscribed;
    for (const t of topics) this.subs.delete(t);
    return reply;
  }

  /** The next message; rejects after `timeoutMs`, or when the subscriber is closed. */
  next(timeoutMs?: number): Promise<ServerMsg> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter = (msg: ServerMsg | null) => {
        if (timer) clearTimeout(timer);
        if (msg) resolve(msg);
        else reject(new OpenSportsError('closed', 'the subscriber is closed'));
      };
      this.waiters.push(waiter);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new OpenSportsError('timeout', `no message within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ServerMsg> {
    while (this.state !== 'closed' || this.queue.length) {
      try {
        yield await this.next();
      } catch (e) {
        if (e instanceof OpenSportsError && e.code === 'closed') return;
        throw e;
      }
    }
  }

  /** Calls `listener` with every message (alongside the iterator, if used); returns a function
   * that removes it. With callbacks only, pass `{ buffer: false }` to `connect`. */
  on(listener: (m: ServerMsg) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Calls `listener` on every connection state change. */
  onState(listener: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /** The last seq received on `topic` (the resume point). */
  lastSeq(topic: string): number | undefined {
    return this.seqs.get(topic);
  }

  /** Drops the connection as a flaky network would; the client reconnects and resumes. */
  disconnect(): void {
    this.ws.close();
  }

  /** Closes for good. */
  close(): void {
    this.closing = true;
    this.ws.close(1000);
  }
}
