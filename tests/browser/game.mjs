// Opens one game page per sport in Debian's chromium (playwright-core), prints "ready" once
// every page's WebSocket is live, drops each page's connection once it has shown 10 states and
// prints "dropped" (the client must resume with no gap), waits for FINAL, takes a screenshot of each page and
// prints one JSON line per page.
// Usage: node game.mjs BASE_URL OUT_DIR GAME_ID:SPORT...
import { chromium } from "playwright-core";

const [base, outDir, ...games] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const pages = [];
  for (const g of games) {
    const [id, sport] = g.split(":");
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(`${base}/game/${encodeURIComponent(id)}`);
    await page.waitForSelector("#conn.open", { timeout: 15000 });
    pages.push({ id, sport, page, errors });
  }
  console.log("ready");
  // Phase 1 (the harness publishes the first part of each game): drop every page's connection.
  const dropped = await Promise.all(pages.map(async ({ page }) => {
    await page.waitForFunction(() => window.__opensports.seqs.length >= 10, null, { timeout: 60000 });
    return page.evaluate(() => { window.__opensports.sub.disconnect(); return window.__opensports.seqs.at(-1); });
  }));
  console.log("dropped");
  // Phase 2 (the harness publishes the rest): each page catches up and follows to the end.
  const results = await Promise.all(pages.map(async ({ id, sport, page, errors }, i) => {
    const droppedAt = dropped[i];
    await page.waitForSelector("#clock.final", { timeout: 90000 });
    await page.waitForTimeout(300); // plugin outputs of the last event
    const r = await page.evaluate(() => {
      const o = window.__opensports;
      const points = Object.fromEntries(Object.entries(o.charts).map(([k, u]) => [k, u.data[0].length]));
      const rows = (sel) => document.querySelectorAll(sel).length;
      return {
        seqs: o.seqs, situations: o.situations.slice(-50), reconnects: o.sub.reconnects, points,
        title: document.getElementById("title").textContent,
        clock: document.getElementById("clock").textContent,
        situation: document.getElementById("situation").textContent,
        last: document.getElementById("last").textContent,
        box: rows("#box tr") - 1 - rows("#box tr.total"),
        // The team totals rows' +/- (home, away).
        totals: [...document.querySelectorAll("#box tr.total")].map((tr) => tr.lastChild.textContent), drives: rows("#drives tr"), shots: rows("#shotmap circle"), court: rows("#court circle") - 2,
        tower: rows("#tower tr") - 1, control: rows("#control li"),
        // The tower's Win column (F1 races): the leader's value and the column's total.
        win: [...document.querySelectorAll("#tower tr")].slice(1).map((tr) => tr.children[10]?.textContent ?? ""),
        possession: document.getElementById("poss-text").textContent,
        // The win-probability chart's value axis (fixed at 0–1).
        wpRange: o.charts.wp ? [o.charts.wp.scales.y.min, o.charts.wp.scales.y.max] : null,
        // The drive list's numbers in page order, and the tower's last-lap times.
        driveNumbers: [...document.querySelectorAll("#drives tr")].map((tr) => parseInt(tr.children[0].textContent, 10)),
        lastLaps: [...document.querySelectorAll("#tower tr")].slice(1).map((tr) => tr.children[6]?.textContent ?? ""),
      };
    });
    const shot = `${outDir}/game-${sport}.png`;
    await page.screenshot({ path: shot, fullPage: true });
    return { id, sport, droppedAt, errors, screenshot: shot, ...r };
  }));
  for (const r of results) console.log(JSON.stringify(r));
} finally {
  await browser.close();
}
