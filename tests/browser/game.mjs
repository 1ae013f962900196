// Opens one game page per sport in Debian's chromium (playwright-core) and drives the harness
// (tests/tests/dashboard.rs) through three phases, printing one line at the end of each:
//   "ready"   every page's WebSocket is live (the harness then publishes the first part);
//   "dropped" each page showed 10 states and dropped its connection (it must resume with no
//             gap); a second page per game is opened now, mid-game, and draws what came before
//             from history (the harness then publishes the rest, at 100 events/s per game);
//   then one JSON line per game once both pages show FINAL: what the pages show, both pages'
//   chart data (the mid-game page must draw exactly what the page open from the start drew),
//   axe-core's serious and critical findings, the JavaScript bytes each page loaded, and the
//   frames the page drew while the rest of the game streamed in.
// Screenshots (OUT_DIR/game-{sport}-{start,mid,final}.png, arena-{1080p,4k}.png).
// Usage: node game.mjs BASE_URL OUT_DIR GAME_ID:SPORT...
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const [base, outDir, ...games] = process.argv.slice(2);
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** A page on a game with its errors and the bytes of JavaScript it loaded. */
async function open(id, query = "", viewport = { width: 1400, height: 1000 }) {
  const page = await browser.newPage({ viewport });
  const errors = [], scripts = new Map();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("response", async (r) => {
    if (r.request().resourceType() === "script") scripts.set(new URL(r.url()).pathname, (await r.body().catch(() => Buffer.alloc(0))).length);
  });
  await page.goto(`${base}/game/${encodeURIComponent(id)}${query}`);
  await page.waitForSelector("#conn.open", { state: "attached", timeout: 15000 });
  return { page, errors, scripts };
}

/** What a page shows, for the harness to check against the server. */
const read = (page) => page.evaluate(() => {
  const o = window.__opensports;
  const rows = (sel) => document.querySelectorAll(sel).length;
  const text = (id) => document.getElementById(id).textContent;
  return {
    seqs: o.seqs, situations: o.situations.slice(-50), reconnects: o.sub.reconnects,
    charts: Object.fromEntries(Object.entries(o.charts).map(([k, u]) => [k, u.data])),
    moments: o.moments, momentum: o.momentum ?? null,
    panels: [...document.querySelectorAll("section.panel:not(.hidden)")].map((s) => s.id),
    title: text("title"), clock: text("clock"), health: text("health"), situation: text("situation"), last: text("last"),
    box: rows("#box tr") - 1 - rows("#box tr.total"),
    // The team totals rows' +/- (home, away).
    totals: [...document.querySelectorAll("#box tr.total")].map((tr) => tr.lastChild.textContent),
    stats: [...document.querySelectorAll("#stats tr.stat")].map((tr) => [...tr.children].map((td) => td.textContent)),
    drives: rows("#drives tr"), shots: rows("#shotmap circle.shot"), court: rows("#court circle.shot"),
    hoops: rows("#court .hoop"), field: rows("#field line.scrimmage"), stints: rows("#stints rect.stint"),
    tower: rows("#tower tr") - 1, control: rows("#control li"),
    // The tower's Win column (F1 races), last-lap times and tyres.
    win: [...document.querySelectorAll("#tower tr")].slice(1).map((tr) => tr.children[10]?.textContent ?? ""),
    lastLaps: [...document.querySelectorAll("#tower tr")].slice(1).map((tr) => tr.children[6]?.textContent ?? ""),
    tyres: [...document.querySelectorAll("#tower tr")].slice(1).map((tr) => tr.children[4]?.textContent ?? ""),
    possession: text("poss-text"),
    wpRange: o.charts.wp ? [o.charts.wp.scales.y.min, o.charts.wp.scales.y.max] : null,
    driveNumbers: [...document.querySelectorAll("#drives tr")].map((tr) => parseInt(tr.children[0].textContent, 10)),
    notes: [...document.querySelectorAll("#notes li")].map((li) => li.textContent),
    report: document.getElementById("report").hidden ? null : document.getElementById("report").getAttribute("href"),
  };
});

/** axe-core's serious and critical violations (WCAG 2 A and AA rules). CDP evaluation is not
 * subject to the page's Content-Security-Policy, so axe runs without weakening it. */
async function axe(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });
}

/** Counts animation frames from now on: how many, the longest gap, gaps over 50 ms. */
const watchFrames = (page) => page.evaluate(() => {
  const f = (window.__frames = { n: 0, longest: 0, long: 0, start: performance.now(), last: performance.now() });
  const tick = (t) => {
    const gap = t - f.last;
    f.n++; f.longest = Math.max(f.longest, gap); f.long += gap > 50 ? 1 : 0; f.last = t;
    if (!f.done) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
});
const frames = (page) => page.evaluate(() => {
  const f = window.__frames;
  f.done = true;
  const secs = (f.last - f.start) / 1000;
  return { frames: f.n, seconds: +secs.toFixed(2), fps: +(f.n / Math.max(secs, 0.001)).toFixed(1), longest_ms: +f.longest.toFixed(1), over_50ms: f.long };
});

try {
  const pages = [];
  for (const g of games) {
    const [id, sport] = g.split(":");
    pages.push({ id, sport, ...(await open(id)) });
  }
  console.log("ready");
  // Phase 1 (the harness publishes the first part of each game): a screenshot of the start,
  // then every page drops its connection.
  const dropped = await Promise.all(pages.map(async ({ sport, page }) => {
    await page.waitForFunction(() => window.__opensports.seqs.length >= 10, null, { timeout: 60000 });
    await page.screenshot({ path: `${outDir}/game-${sport}-start.png`, fullPage: true });
    return page.evaluate(() => { window.__opensports.sub.disconnect(); return window.__opensports.seqs.at(-1); });
  }));
  // The same games opened now, mid-game.
  const mids = [];
  for (const p of pages) {
    const mid = await open(p.id);
    await mid.page.waitForFunction(() => window.__opensports.seqs.length >= 10, null, { timeout: 60000 });
    await mid.page.screenshot({ path: `${outDir}/game-${p.sport}-mid.png`, fullPage: true });
    await watchFrames(p.page);
    mids.push(mid);
  }
  console.log("dropped");
  // Phase 2 (the harness publishes the rest): each page catches up and follows to the end.
  const results = await Promise.all(pages.map(async ({ id, sport, page, errors, scripts }, i) => {
    const mid = mids[i];
    await page.waitForSelector("#clock.final", { timeout: 90000 });
    await mid.page.waitForSelector("#clock.final", { timeout: 90000 });
    const fps = await frames(page);
    // Plugin outputs of the last event, then the animation frame that draws them.
    await page.waitForTimeout(300);
    const r = await read(page);
    const m = await read(mid.page);
    await page.screenshot({ path: `${outDir}/game-${sport}-final.png`, fullPage: true });
    const violations = await axe(page);
    const jsBytes = [...scripts.values()].reduce((a, b) => a + b, 0);
    return {
      id, sport, droppedAt: dropped[i], errors: [...errors, ...mid.errors], ...r,
      mid: { charts: m.charts, moments: m.moments, momentum: m.momentum, seqs: m.seqs.length, notes: m.notes },
      axe: violations, jsBytes, scripts: Object.fromEntries(scripts), frames: fps,
    };
  }));
  // Arena mode on the first game, at 1080p and at 4K.
  const arena = {};
  for (const [name, viewport] of [["1080p", { width: 1920, height: 1080 }], ["4k", { width: 3840, height: 2160 }]]) {
    const a = await open(pages[0].id, "?view=arena&rotate=3600", viewport);
    await a.page.waitForSelector("#clock.final", { state: "attached", timeout: 30000 });
    await a.page.waitForTimeout(300);
    await a.page.screenshot({ path: `${outDir}/arena-${name}.png` });
    arena[name] = await a.page.evaluate(() => ({
      arena: document.body.classList.contains("arena"),
      titlePx: parseFloat(getComputedStyle(document.getElementById("title")).fontSize),
      panels: [...document.querySelectorAll("section.panel")].filter((s) => s.offsetParent !== null).map((s) => s.id),
    }));
    arena[name].axe = await axe(a.page);
    arena[name].errors = a.errors;
  }
  for (const r of results) console.log(JSON.stringify({ ...r, arena }));
} finally {
  await browser.close();
}
