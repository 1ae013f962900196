// Opens the live dashboard in Debian's chromium (playwright-core), prints "ready" once its
// WebSocket is live, waits until `count` game cards show their games as ended, then prints the
// cards as one JSON line. Usage: node dashboard.mjs URL COUNT [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [url, count, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#status.live", { timeout: 15000 });
  console.log("ready");
  await page.waitForFunction(
    n => document.querySelectorAll("section.game.ended").length >= n,
    Number(count),
    { timeout: 60000 },
  );
  const cards = await page.$$eval("section.game", els => els.map(e => ({
    game: e.dataset.game,
    home: e.querySelector(".home")?.textContent ?? null,
    away: e.querySelector(".away")?.textContent ?? null,
    leader: e.querySelector("tr td:nth-child(2)")?.textContent ?? null,
    text: e.innerText,
  })));
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  // A publisher-supplied name carrying markup must have run nothing (issue 14 finding 10).
  const xss = await page.evaluate(() => window.__xss === 1);
  console.log(JSON.stringify({ cards, errors, xss }));
} finally {
  await browser.close();
}
