// Shared by the tests: the server the Rust harness (tests/tests/clients.rs) started, the
// transcripts, and a subset matcher.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through tests/tests/clients.rs (cargo nextest run -E 'test(js)')`);
  return v;
};

const dir = fileURLToPath(new URL('../../../tests/fixtures/transcripts/', import.meta.url));
export const transcripts = () =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => [f, JSON.parse(readFileSync(dir + f, 'utf8'))]);

/** Whether `actual` has every field of `expected` (recursively; arrays element by element). */
export function contains(actual, expected) {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => contains(actual[i], e));
  }
  if (expected && typeof expected === 'object') {
    return actual !== null && typeof actual === 'object' && Object.entries(expected).every(([k, v]) => k in actual && contains(actual[k], v));
  }
  return actual === expected;
}
