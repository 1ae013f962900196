// The wire types, generated from the server's JSON Schema (src/schema.ts), and the few
// helpers a client needs on top of them.
import type { ClientOp, OpId, Publication, ServerMsg } from './schema.js';

export type * from './schema.js';

/** `msg` or `snapshot`: a publication with its op. */
export type PublicationMsg = Publication & { op: 'msg' | 'snapshot' };

/** Narrows a server message to a publication. */
export function isPublication(m: ServerMsg): m is PublicationMsg {
  return m.op === 'msg' || m.op === 'snapshot';
}

/** One text frame: a single message or a batch (a JSON array of messages). */
export function parseFrame(text: string): ServerMsg[] {
  const v: unknown = JSON.parse(text);
  return (Array.isArray(v) ? v : [v]) as ServerMsg[];
}

/** Whether a concrete topic matches a pattern (`+` one level, `#` the rest). */
export function matches(pattern: string, topic: string): boolean {
  const p = pattern.split('/');
  const t = topic.split('/');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '#') return true;
    if (i >= t.length || (p[i] !== '+' && p[i] !== t[i])) return false;
  }
  return p.length === t.length;
}

/** A refused op (PROTOCOL.md §2.4) or a failed connection. */
export class OpenSportsError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly id?: OpId | null,
  ) {
    super(`${code}: ${message}`);
    this.name = 'OpenSportsError';
  }
}

export type { ClientOp };
