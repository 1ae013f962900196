import { OpenSportsError, isPublication, matches, parseFrame } from './messages.js';
async function defaultWebSocket() {
    const g = globalThis.WebSocket;
    if (g)
        return g;
    const name = 'ws'; // not a static import: browser bundles never reach it
    const mod = (await import(/* @vite-ignore */ name));
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
    url;
    opts;
    Ctor;
    ws;
    queue = [];
    waiters = [];
    listeners = new Set();
    stateListeners = new Set();
    requests = new Map();
    /** pattern → [mode, delay_ms] of every live `sub`, replayed with `since` on reconnect. */
    subs = new Map();
    seqs = new Map();
    nextId = 1;
    closing = false;
    /** Reconnections made so far. */
    reconnects = 0;
    state = 'connecting';
    constructor(url, opts, Ctor) {
        this.url = url;
        this.opts = opts;
        this.Ctor = Ctor;
    }
    /**
     * Connects. Rejects with `OpenSportsError`: the server's code when it refused the upgrade
     * (`unauthorized`, `forbidden`, `backoff`, `too_many_connections`; read from its JSON error body
     * where the runtime lets us, as Node's `ws` does), else `connect_failed` (PROTOCOL.md §2.6: a
     * browser's WebSocket hides why an upgrade failed).
     */
    static async connect(url, opts = {}) {
        const sub = new Subscriber(url, opts, opts.WebSocket ?? (await defaultWebSocket()));
        await sub.open();
        return sub;
    }
    open() {
        const url = this.opts.token ? `${this.url}${this.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.opts.token)}` : this.url;
        return new Promise((resolve, reject) => {
            const ws = new this.Ctor(url);
            let opened = false;
            // Node's `ws` shows a refused upgrade's response: its error body names the code.
            let refused;
            const emitter = ws;
            emitter.on?.('unexpected-response', (req, res) => {
                let body = '';
                res.on('data', (c) => (body += String(c)));
                res.on('end', () => {
                    try {
                        refused = JSON.parse(body)?.error?.code;
                    }
                    catch {
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
                if (!opened && emitter.on === undefined)
                    reject(new OpenSportsError('connect_failed', `could not connect to ${this.url}`));
            };
            ws.onmessage = (ev) => this.onFrame(String(ev.data));
            ws.onclose = () => {
                if (opened)
                    void this.onDrop();
                else
                    reject(new OpenSportsError('connect_failed', `could not connect to ${this.url}`));
            };
        });
    }
    setState(s) {
        this.state = s;
        for (const l of this.stateListeners)
            l(s);
    }
    onFrame(text) {
        let msgs;
        try {
            msgs = parseFrame(text);
        }
        catch {
            return;
        }
        for (const m of msgs) {
            if (isPublication(m))
                this.seqs.set(m.topic, m.seq);
            const id = 'id' in m && m.id != null ? String(m.id) : undefined;
            const req = id !== undefined && !isPublication(m) ? this.requests.get(id) : undefined;
            if (req) {
                this.requests.delete(id);
                if (m.op === 'error')
                    req.reject(new OpenSportsError(m.code, m.message, m.id));
                else
                    req.resolve(m);
                continue;
            }
            for (const l of this.listeners)
                l(m);
            const w = this.waiters.shift();
            if (w)
                w(m);
            else if (this.opts.buffer !== false)
                this.queue.push(m);
        }
    }
    async onDrop() {
        if (this.closing || this.opts.reconnect === false) {
            this.setState('closed');
            for (const w of this.waiters.splice(0))
                w(null);
            for (const r of this.requests.values())
                r.reject(new OpenSportsError('closed', 'the connection closed'));
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
            }
            catch {
                continue;
            }
        }
        if (this.closing)
            return;
        this.reconnects++;
        for (const [pattern, [mode, delay]] of this.subs) {
            const since = {};
            for (const [t, s] of this.seqs)
                if (matches(pattern, t))
                    since[t] = s;
            const op = { op: 'sub', topics: [pattern], mode, id: `resume-${this.nextId++}` };
            if (Object.keys(since).length)
                op.since = since;
            if (delay)
                op.delay_ms = delay;
            this.send(op);
        }
    }
    /** Sends one raw client op (PROTOCOL.md §2.1); its answer arrives with the other messages. */
    send(op) {
        this.ws.send(JSON.stringify(op));
    }
    request(op) {
        return new Promise((resolve, reject) => {
            this.requests.set(String(op.id), { resolve, reject });
            this.send(op);
        });
    }
    /**
     * Subscribes; resolves on `subscribed` (snapshots arrive before it), rejects with the server's
     * `error`. `delayMs`: each message at its source time plus this (a broadcast delay, PROTOCOL.md §2.7).
     */
    async subscribe(topics, opts = {}) {
        const mode = opts.mode ?? 'all';
        const op = { op: 'sub', topics, mode, id: this.nextId++ };
        if (opts.since)
            op.since = opts.since;
        if (opts.delayMs)
            op.delay_ms = opts.delayMs;
        const reply = (await this.request(op));
        for (const t of topics)
            this.subs.set(t, [mode, opts.delayMs ?? 0]);
        return reply;
    }
    async unsubscribe(topics) {
        const reply = (await this.request({ op: 'unsub', topics, id: this.nextId++ }));
        for (const t of topics)
            this.subs.delete(t);
        return reply;
    }
    /** The next message; rejects after `timeoutMs`, or when the subscriber is closed. */
    next(timeoutMs) {
        const m = this.queue.shift();
        if (m)
            return Promise.resolve(m);
        return new Promise((resolve, reject) => {
            let timer;
            const waiter = (msg) => {
                if (timer)
                    clearTimeout(timer);
                if (msg)
                    resolve(msg);
                else
                    reject(new OpenSportsError('closed', 'the subscriber is closed'));
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
    async *[Symbol.asyncIterator]() {
        while (this.state !== 'closed' || this.queue.length) {
            try {
                yield await this.next();
            }
            catch (e) {
                if (e instanceof OpenSportsError && e.code === 'closed')
                    return;
                throw e;
            }
        }
    }
    /** Calls `listener` with every message (alongside the iterator, if used); returns a function
     * that removes it. With callbacks only, pass `{ buffer: false }` to `connect`. */
    on(listener) {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }
    /** Calls `listener` on every connection state change. */
    onState(listener) {
        this.stateListeners.add(listener);
        return () => this.stateListeners.delete(listener);
    }
    /** The last seq received on `topic` (the resume point). */
    lastSeq(topic) {
        return this.seqs.get(topic);
    }
    /** Drops the connection as a flaky network would; the client reconnects and resumes. */
    disconnect() {
        this.ws.close();
    }
    /** Closes for good. */
    close() {
        this.closing = true;
        this.ws.close(1000);
    }
}
