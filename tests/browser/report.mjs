// Opens post-game report pages in Debian's chromium (playwright-core), screenshots each, and
// reports every request a page made beyond its own document (a report must make none).
// Called by tests/tests/report.rs. Args: OUT_DIR, then NAME=URL pairs. Prints one JSON object
// per page: {name, title, requests: [...], svgs, shots, consoleErrors, axe}: `axe` is axe-core's
// serious and critical WCAG 2 A/AA findings (run through CDP, so the page's CSP stays strict).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const [outDir, ...pages] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  for (const pair of pages) {
    const eq = pair.indexOf("=");
    const [name, url] = [pair.slice(0, eq), pair.slice(eq + 1)];
    const page = await browser.newPage({ viewport: { width: 800, height: 1000 } });
    const requests = [];
    const consoleErrors = [];
    page.on("request", (r) => {
      if (r.url() !== url) requests.push(r.url());
    });
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    await page.goto(url, { waitUntil: "networkidle" });
    await page.screenshot({ path: `${outDir}/report-${name}.png`, fullPage: true });
    const seen = await page.evaluate(() => ({
      title: document.querySelector("h1")?.textContent,
      svgs: document.querySelectorAll("svg").length,
      shots: document.querySelectorAll("circle.shot, circle.goal").length,
    }));
    await page.evaluate(axeSource);
    const axe = await page.evaluate(async () => {
      const r = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
      return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
    });
    console.log(JSON.stringify({ name, ...seen, requests, consoleErrors, axe }));
    await page.close();
  }
} finally {
  await browser.close();
}
