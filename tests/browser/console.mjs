// Drives the operator console (/console) in Debian's chromium (playwright-core): signs in with
// the admin key, enrols an authenticator (the TOTP code is computed here from the secret the
// page shows, RFC 6238), keeps the backup codes, runs each page's main action, signs out, and
// signs in again with a backup code. Called by tests/tests/console.rs.
// Args: BASE_URL ADMIN_KEY PLUGIN_WASM. Prints one JSON object: what it did and saw.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const [base, adminKey, pluginWasm] = process.argv.slice(2);

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, "")) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
  }
  return Buffer.from(out);
}

function totp(secret, at = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const h = createHmac("sha1", base32(secret)).update(counter).digest();
  const off = h[h.length - 1] & 15;
  const bin = ((h[off] & 127) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 1e6).padStart(6, "0");
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const errors = [];
const result = { errors };
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) errors.push(m.text()); });
  const tab = async (name) => {
    await page.click(`#tabs button[data-page="${name}"]`);
    await page.waitForSelector(`#view[data-loaded="${name}"]`);
  };

  await page.goto(`${base}/console`);
  await page.fill("#key", adminKey);
  await page.click("#key-form button");
  // console.require_totp: this key must enrol before it gets a session.
  await page.waitForSelector("#enroll:not([hidden]) #secret:not(:empty)");
  const secret = await page.textContent("#secret");
  result.qrModules = await page.$$eval("#qr path", (p) => p.length);
  result.uri = await page.getAttribute("#secret", "data-uri");
  await page.fill("#enroll-code", totp(secret));
  await page.click("#enroll-form button");
  await page.waitForSelector("#backup:not([hidden]) .backup-code");
  result.backupCodes = await page.$$eval(".backup-code", (c) => c.map((x) => x.textContent));
  await page.click("#backup-done");
  await page.waitForSelector("#view[data-loaded='games']");
  result.who = await page.textContent("#who");
  result.gamesText = await page.textContent("#view");

  // Keys: create one, then revoke it.
  await tab("keys");
  await page.fill("#create-key input[name=name]", "made-in-console");
  await page.selectOption("#create-key select[name=role]", "subscriber");
  await page.fill("#create-key input[name=scopes]", "game/+/state");
  await page.click("#create-key button[type=submit]");
  await page.waitForSelector("#new-key code.key-value");
  result.createdKey = await page.textContent("#new-key code.key-value");
  const created = (await page.textContent("#new-key")).match(/id (\S+)/)[1];
  result.createdId = created;
  await page.click(`button[data-revoke="${created}"]`);
  await page.waitForFunction(() => /revoked/.test(document.getElementById("msg").textContent));

  // Plugins: re-enable the plugin a game's data quarantined, then upload a new version.
  await tab("plugins");
  await page.click(`button[data-enable="basketball-boxscore/attack-1"]`);
  await page.waitForFunction(() => /re-enabled for attack-1/.test(document.getElementById("msg").textContent));
  await page.waitForSelector("#view[data-loaded='plugins']");
  await page.fill("#upload-plugin input[name=name]", "basketball-boxscore");
  await page.setInputFiles("#upload-plugin input[name=file]", pluginWasm);
  await page.click("#upload-plugin button[type=submit]");
  await page.waitForFunction(() => /loaded\./.test(document.getElementById("msg").textContent));

  // Models: activate the first one's version.
  await tab("models");
  result.modelsRows = await page.$$eval("#view tbody tr", (r) => r.length);
  await page.click("button[data-activate]");
  await page.waitForFunction(() => /active\./.test(document.getElementById("msg").textContent));

  // Triggers: disarm the first rule.
  await tab("triggers");
  result.trigger = await page.getAttribute("button[data-trigger]", "data-trigger");
  await page.click("button[data-trigger]");
  await page.waitForFunction(() => /armed\./.test(document.getElementById("msg").textContent));

  // Delay lines: hold the 7 s line to 5 s.
  await tab("delays");
  await page.fill("#set-delay input[name=ms]", "7000");
  await page.fill("#set-delay input[name=effective]", "5000");
  await page.click("#set-delay button[type=submit]");
  await page.waitForFunction(() => /set\./.test(document.getElementById("msg").textContent));

  await tab("cluster");
  result.clusterText = await page.textContent("#view");

  // Audit: only this key's key.* entries.
  await tab("audit");
  const me = (await page.textContent("#who")).match(/signed in as (\S+)/)[1];
  result.me = me;
  await page.fill("#audit-filter input[name=actor]", me);
  await page.fill("#audit-filter input[name=action]", "key.");
  await page.click("#audit-filter button");
  // The unfiltered list is already there: wait for the filtered one to replace it.
  await page.waitForFunction(() => {
    const actions = [...document.querySelectorAll("#audit-rows tbody tr td:nth-child(3)")].map((x) => x.textContent);
    return actions.length >= 2 && actions.every((a) => a.startsWith("key."));
  });
  result.auditActions = await page.$$eval("#audit-rows tbody tr td:nth-child(3)", (c) => c.map((x) => x.textContent));
  // WCAG 2 A/AA on a signed-in page with a form and a table (axe-core, through CDP: the CSP
  // stays strict).
  await page.evaluate(axeSource);
  result.axe = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] });
    return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length, help: v.help }));
  });

  await tab("security");
  result.securityText = await page.textContent("#view");

  // Sign out; back in with a backup code (the TOTP step just used is spent).
  await page.click("#signout");
  await page.waitForSelector("#key-form:not([hidden])");
  result.afterSignOut = await page.evaluate(async () => (await fetch("/v1/keys")).status);
  await page.fill("#key", adminKey);
  await page.click("#key-form button");
  await page.waitForSelector("#code-form:not([hidden])");
  await page.fill("#code", result.backupCodes[0]);
  await page.click("#code-form button");
  await page.waitForSelector("#view[data-loaded]");
  result.signedInAgain = true;
  // The same backup code a second time is refused.
  const reuse = await page.evaluate(async (code) => {
    const csrf = (await (await fetch("/console/api/session")).json()).csrf;
    await fetch("/console/api/logout", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: "{}" });
    return code;
  }, result.backupCodes[0]);
  await page.reload();
  await page.fill("#key", adminKey);
  await page.click("#key-form button");
  await page.waitForSelector("#code-form:not([hidden])");
  await page.fill("#code", reuse);
  await page.click("#code-form button");
  await page.waitForFunction(() => /wrong code/.test(document.getElementById("msg").textContent));
  result.reusedRefused = true;
  await page.screenshot({ path: `${process.env.TMPDIR || "/tmp"}/opensports-console.png`, fullPage: true });
} catch (e) {
  result.failure = String(e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
