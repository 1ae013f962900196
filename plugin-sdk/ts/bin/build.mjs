#!/usr/bin/env node
// Builds a TypeScript plugin into a WebAssembly component of the world
// `opensports:plugin/plugin@2.0.0`: esbuild bundles the plugin's entry (package.json
// "opensports.entry", default src/plugin.ts) with the kit's glue into one ES module, then
// componentize-js (StarlingMonkey) makes the component. Run by `npm run build`, which
// `opensports plugin build` calls. Writes build/<name with _ for ->.wasm (name: package.json
// "opensports.name", default the package name) and prints its path.
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';

const kit = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = process.cwd();
const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
const cfg = pkg.opensports ?? {};
const name = (cfg.name ?? pkg.name ?? 'plugin').replace(/^@.*\//, '');
const entry = resolve(dir, cfg.entry ?? 'src/plugin.ts');
const wit = [process.env.OPENSPORTS_WIT, join(kit, 'wit/plugin.wit'), join(kit, '../wit/plugin.wit')].find(
  (p) => p && existsSync(p),
);
if (!wit) throw new Error('plugin.wit not found: set OPENSPORTS_WIT (opensports plugin build does)');

const glue = `
import plugin from ${JSON.stringify(entry)};
import * as host from 'opensports:plugin/host@2.0.0';
import { HostError } from ${JSON.stringify(join(kit, 'src/index.ts'))};
const call = (f) => (...a) => {
  try { return f(...a); } catch (e) { throw new HostError(typeof e?.payload === 'number' ? e.payload : -99); }
};
const ex = plugin.bind({ emit: call(host.emit), infer: call(host.infer), log: host.log });
// An uncaught exception is logged, then fails the event with error 1 (the server counts it as
// the plugin's trap); the log says where.
const guard = (f) => (...a) => {
  try { return f(...a); } catch (e) { host.log('error', String((e && e.stack) || e)); throw 1; }
};
export const sports = ex.sports;
export const init = ex.init;
export const onEvent = guard(ex.onEvent);
export const snapshot = ex.snapshot;
export const restore = ex.restore;
export const forget = ex.forget;
`;
await mkdir(join(dir, 'build'), { recursive: true });
const bundle = join(dir, 'build', `${name}.js`);
await build({
  stdin: { contents: glue, resolveDir: dir, loader: 'js' },
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  external: ['opensports:*'],
  outfile: bundle,
  logLevel: 'warning',
});
const { component } = await componentize({
  sourcePath: bundle,
  witPath: wit,
  worldName: 'plugin',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
const out = join(dir, 'build', `${name.replace(/-/g, '_')}.wasm`);
await writeFile(out, component);
console.log(out);
