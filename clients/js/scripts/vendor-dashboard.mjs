// Copies what the server's dashboard pages load into server/src/api/assets/ (embedded in the
// binary with include_bytes!, served under /assets/: no CDN): this client's compiled modules
// (dist/, after `npm run build`) and uPlot from node_modules. `npm run vendor` writes them;
// `--check` fails when a committed copy differs (the tests run that after a fresh build).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const OUT = here('../../../server/src/api/assets/');
const FILES = [
  ['dist/index.js', 'client/index.js'],
  ['dist/messages.js', 'client/messages.js'],
  ['dist/subscriber.js', 'client/subscriber.js'],
  ['node_modules/uplot/dist/uPlot.iife.min.js', 'uPlot.iife.min.js'],
  ['node_modules/uplot/dist/uPlot.min.css', 'uPlot.min.css'],
];

const check = process.argv.includes('--check');
let stale = [];
await mkdir(OUT + 'client', { recursive: true });
for (const [from, to] of FILES) {
  const src = await readFile(here('../' + from));
  if (check) {
    const have = await readFile(OUT + to).catch(() => Buffer.alloc(0));
    if (!have.equals(src)) stale.push(to);
  } else {
    await writeFile(OUT + to, src);
  }
}
if (stale.length) {
  console.error(`server/src/api/assets is stale (${stale.join(', ')}): run \`npm run build && npm run vendor\` in clients/js`);
  process.exit(1);
}
