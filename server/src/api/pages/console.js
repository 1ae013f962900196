// The operator console (/console). Signs in with an admin key and a TOTP code
// (/console/api/...), then every page reads and changes the server through the admin API
// (/v1/...), which takes the session cookie in place of the key and the CSRF token on every
// change. Publisher data is only ever written as text (textContent), never as markup.

const $ = (id) => document.getElementById(id);
let session = null;
let current = "games";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function say(text, ok = false) {
  const m = $("msg");
  m.textContent = text || "";
  m.className = ok ? "msg ok" : "msg";
}

/// A call: JSON in and out; the CSRF token on every change; a 401 goes back to sign-in.
async function api(method, path, body, type = "application/json") {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = type;
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : (type === "application/json" ? JSON.stringify(body) : body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { raw: text }; }
  if (!r.ok) {
    const err = new Error(data?.error?.message || `${r.status}`);
    err.status = r.status;
    err.code = data?.error?.code;
    if (r.status === 401 && path.startsWith("/v1/")) signedOut("Your session ended: sign in again.");
    throw err;
  }
  return data;
}

function show(which) {
  for (const id of ["key-form", "code-form", "enroll", "backup"]) $(id).hidden = id !== which;
}

function signedOut(text) {
  session = null;
  $("signin").hidden = false;
  $("tabs").hidden = true;
  $("view").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  show("key-form");
  say(text);
}

async function signedIn() {
  session = await api("GET", "/console/api/session");
  $("signin").hidden = true;
  $("tabs").hidden = false;
  $("view").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `signed in as ${session.key} · ${session.enrolled ? "two-factor on" : "two-factor off"} · ends after ${Math.round(session.expires_in / 60)} min idle`;
  say("");
  await open(current);
}

function next(step) {
  if (step === "done") return signedIn();
  if (step === "code") { show("code-form"); $("code").focus(); }
  if (step === "enroll") return startEnrol();
}

async function startEnrol() {
  const e = await api("POST", "/console/api/enroll", {});
  $("secret").textContent = e.secret;
  $("secret").dataset.uri = e.uri;
  drawQr($("qr"), e.qr);
  show("enroll");
  $("signin").hidden = false;
  $("enroll-code").focus();
}

function drawQr(svg, rows) {
  const n = rows.length, quiet = 4, size = n + 2 * quiet;
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  let d = "";
  rows.forEach((row, y) => row.forEach((dark, x) => { if (dark) d += `M${x + quiet} ${y + quiet}h1v1h-1z`; }));
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(path);
}

$("key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("POST", "/console/api/login", { key: $("key").value });
    $("key").value = "";
    await next(r.next);
  } catch (e) { say(e.message); }
});

$("code-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("POST", "/console/api/code", { code: $("code").value });
    $("code").value = "";
    await next(r.next);
  } catch (e) {
    say(e.message);
    if (e.status === 429 || e.message.includes("expired")) show("key-form");
  }
});

$("enroll-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("POST", "/console/api/enroll/confirm", { code: $("enroll-code").value });
    $("enroll-code").value = "";
    $("backup-codes").replaceChildren(...r.backup_codes.map((c) => el("li", {}, el("code", { class: "backup-code" }, c))));
    show("backup");
    $("signin").hidden = false;
    $("view").hidden = true;
  } catch (e) { say(e.message); }
});

$("backup-done").addEventListener("click", () => signedIn().catch((e) => say(e.message)));

$("signout").addEventListener("click", async () => {
  try { await api("POST", "/console/api/logout", {}); } catch { /* ended already */ }
  signedOut("Signed out.");
});

// ---- pages -----------------------------------------------------------------------------

function table(rows, cols) {
  return el("table", {},
    el("thead", {}, el("tr", {}, cols.map(([h]) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, cols.map(([, f]) => el("td", {}, f(r)))))));
}

function button(label, onClick, attrs = {}) {
  return el("button", { type: "button", ...attrs, on: { click: async () => {
    try { await onClick(); } catch (e) { say(e.message); }
  } } }, label);
}

const text = (v) => (v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));

const PAGES = {
  async games(view) {
    const d = await api("GET", "/v1/games");
    const games = Array.isArray(d) ? d : d.games || [];
    view.append(el("h2", {}, "Games"), el("p", { class: "dim" }, `${games.length} in memory (live and recently ended)`),
      table(games, [
        ["Game", (g) => el("a", { href: `/game/${encodeURIComponent(g.game || g.id)}` }, g.game || g.id)],
        ["Sport", (g) => g.sport], ["Status", (g) => g.status],
        ["Score", (g) => g.score ? `${text(g.score.home)} – ${text(g.score.away)}` : text(g.home_score ?? "")],
        ["Feed health", (g) => text(g.health ?? g.quality ?? "")],
      ]));
  },

  async keys(view) {
    const d = await api("GET", "/v1/keys");
    const made = el("p", { id: "new-key" });
    const form = el("form", { id: "create-key" },
      el("label", {}, "Name", el("input", { name: "name", required: true })),
      el("label", {}, "Role", el("select", { name: "role" }, ["subscriber", "publisher", "admin"].map((r) => el("option", {}, r)))),
      el("label", {}, "Scopes (comma-separated)", el("input", { name: "scopes" })),
      el("button", { type: "submit" }, "Create key"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const scopes = String(f.get("scopes") || "").split(",").map((s) => s.trim()).filter(Boolean);
      try {
        const k = await api("POST", "/v1/keys", { name: f.get("name"), role: f.get("role"), scopes });
        await open("keys");
        $("new-key").replaceChildren("New key (shown once): ", el("code", { class: "key-value" }, k.key), ` id ${k.id}`);
        say(`Key ${k.id} created.`, true);
      } catch (e) { say(e.message); }
    });
    view.append(el("h2", {}, "Keys"), form, made, table(d.keys, [
      ["Id", (k) => k.id], ["Name", (k) => k.name], ["Role", (k) => k.role],
      ["Scopes", (k) => (k.scopes || []).join(", ")],
      ["", (k) => (k.revoked || k.revoked_ms) ? el("span", { class: "dim" }, "revoked")
        : button("Revoke", async () => {
          await api("DELETE", `/v1/keys/${encodeURIComponent(k.id)}`);
          await open("keys");
          say(`Key ${k.id} revoked.`, true);
        }, { "data-revoke": k.id })],
    ]));
  },

  async plugins(view) {
    const d = await api("GET", "/v1/plugins");
    const plugins = Array.isArray(d) ? d : d.plugins || [];
    const form = el("form", { id: "upload-plugin" },
      el("label", {}, "Plugin name", el("input", { name: "name", required: true })),
      el("label", {}, "Module or component (.wasm)", el("input", { name: "file", type: "file", accept: ".wasm", required: true })),
      el("button", { type: "submit" }, "Upload"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const bytes = await f.get("file").arrayBuffer();
      try {
        await api("POST", `/v1/plugins/${encodeURIComponent(f.get("name"))}`, bytes, "application/wasm");
        await open("plugins");
        say(`Plugin ${f.get("name")} loaded.`, true);
      } catch (e) { say(e.message); }
    });
    view.append(el("h2", {}, "Plugins"), form, table(plugins, [
      ["Name", (p) => p.name], ["Version", (p) => p.version], ["Sports", (p) => (p.sports || []).join(", ")],
      ["Status", (p) => p.status], ["Events", (p) => p.events], ["Failures", (p) => text(p.failures)],
      ["Quarantined for", (p) => (p.quarantined_games || []).map((g) =>
        el("span", {}, `${g} `, button("Re-enable", async () => {
          await api("POST", `/v1/plugins/${encodeURIComponent(p.name)}/games/${encodeURIComponent(g)}/enable`);
          await open("plugins");
          say(`${p.name} re-enabled for ${g}.`, true);
        }, { "data-enable": `${p.name}/${g}` })))],
    ]));
  },

  async models(view) {
    const d = await api("GET", "/v1/models");
    const models = d.models || [];
    const num = (v) => (typeof v === "number" ? v.toFixed(4) : "–");
    const post = async (m, what, version, done) => {
      await api("POST", `/v1/models/${encodeURIComponent(m.name)}/${what}`, { version });
      await open("models");
      say(done, true);
    };
    view.append(el("h2", {}, "Models"), table(models, [
      ["Name", (m) => m.name], ["Version", (m) => m.version],
      ["Role", (m) => (m.active ? "active" : m.shadow ? "shadow" : "loaded")],
      ["Live calibration", (m) => (m.live && m.live.predictions
        ? `${m.live.predictions} outcomes · Brier ${num(m.live.brier)} · log loss ${num(m.live.log_loss)}`
        : "no finished games yet")],
      ["Hold-out", (m) => `${text(m.holdout)}`],
      ["", (m) => el("span", {},
        button("Activate", () => post(m, "activate", m.version, `${m.name} ${m.version} active.`), { "data-activate": m.name }),
        m.active || m.shadow ? null : button("Shadow", () => post(m, "shadow", m.version, `${m.name} ${m.version} shadows.`)),
        m.shadow ? button("Stop shadow", () => post(m, "shadow", null, `${m.name}: no shadow.`)) : null)],
    ]));
  },

  async triggers(view) {
    const d = await api("GET", "/v1/triggers");
    const rules = Array.isArray(d) ? d : d.rules || [];
    view.append(el("h2", {}, "Triggers"), table(rules, [
      ["Rule", (r) => r.name], ["Sport", (r) => r.sport || "every"], ["Armed", (r) => (r.armed === false ? "no" : "yes")],
      ["", (r) => button(r.armed === false ? "Arm" : "Disarm", async () => {
        await api("POST", `/v1/triggers/${encodeURIComponent(r.name)}/${r.armed === false ? "arm" : "disarm"}`);
        await open("triggers");
        say(`${r.name} ${r.armed === false ? "armed" : "disarmed"}.`, true);
      }, { "data-trigger": r.name })],
    ]));
  },

  async delays(view) {
    const d = await api("GET", "/v1/delays");
    const form = el("form", { id: "set-delay" },
      el("label", {}, "Delay line (ms)", el("input", { name: "ms", type: "number", min: 1, required: true })),
      el("label", {}, "Held to (ms; empty: as asked)", el("input", { name: "effective", type: "number", min: 1 })),
      el("button", { type: "submit" }, "Set"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const eff = f.get("effective") ? Number(f.get("effective")) : null;
      try {
        await api("POST", `/v1/delays/${Number(f.get("ms"))}`, { effective_ms: eff });
        await open("delays");
        say(`Delay ${f.get("ms")} ms set.`, true);
      } catch (e) { say(e.message); }
    });
    view.append(el("h2", {}, "Delay lines"), el("p", { class: "dim" }, `at most ${d.max_delay_ms} ms`), form,
      table(d.lines || [], [["Line", (l) => text(l.delay_ms ?? l)], ["Detail", (l) => text(l)]]),
      el("h3", {}, "Overrides"), table(d.overrides || [], [["Delay", (o) => o.delay_ms], ["Held to", (o) => text(o.effective_ms)]]));
  },

  async cluster(view) {
    const r = await fetch("/readyz");
    const d = await r.json();
    view.append(el("h2", {}, "Cluster"));
    if (!d.cluster) {
      view.append(el("p", {}, "This server runs alone ([cluster] enabled = false)."), el("p", { class: "dim" }, `status ${d.status}, log ${d.log}`));
      return;
    }
    const c = d.cluster;
    view.append(el("p", {}, `status ${d.status}`),
      table(c.members || c.nodes || [], [["Node", (n) => text(n.node_id ?? n.id ?? n)], ["Detail", (n) => text(n)]]),
      el("pre", {}, JSON.stringify(c, null, 2)));
  },

  async audit(view) {
    const form = el("form", { id: "audit-filter" },
      el("label", {}, "Actor (key id)", el("input", { name: "actor" })),
      el("label", {}, "Action (prefix)", el("input", { name: "action" })),
      el("button", { type: "submit" }, "Filter"));
    const out = el("div", { id: "audit-rows" });
    const load = async () => {
      const f = new FormData(form);
      const q = new URLSearchParams({ limit: "500" });
      if (f.get("actor")) q.set("actor", f.get("actor"));
      if (f.get("action")) q.set("action_prefix", f.get("action"));
      const d = await api("GET", `/v1/audit?${q}`);
      out.replaceChildren(table(d.entries.slice().reverse(), [
        ["When", (e) => new Date(e.at_ms).toISOString().replace("T", " ").slice(0, 19)],
        ["Actor", (e) => e.actor], ["Action", (e) => e.action], ["Target", (e) => e.target],
        ["Change", (e) => text(e.after ?? "")], ["From", (e) => e.remote || ""],
      ]));
    };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); load().catch((e) => say(e.message)); });
    view.append(el("h2", {}, "Audit log"), form, out);
    await load();
  },

  async security(view) {
    view.append(el("h2", {}, "Two-factor sign-in"),
      el("p", {}, session.enrolled
        ? "This key has an authenticator: every console sign-in asks for its code."
        : "This key has no authenticator yet."),
      session.enrolled ? null : button("Set up an authenticator", () => startEnrol(), { id: "start-enrol" }));
  },
};

async function open(name) {
  current = name;
  for (const b of $("tabs").children) b.toggleAttribute("aria-current", b.dataset.page === name);
  for (const b of $("tabs").children) if (b.dataset.page === name) b.setAttribute("aria-current", "page");
  const view = $("view");
  view.replaceChildren();
  view.dataset.page = name;
  try { await PAGES[name](view); } catch (e) { say(e.message); }
  view.dataset.loaded = name;
}

$("tabs").append(...Object.keys(PAGES).map((name) =>
  el("button", { type: "button", "data-page": name, on: { click: () => open(name) } }, name[0].toUpperCase() + name.slice(1))));

// A session may still be live (a reload): go straight in.
signedIn().catch(() => signedOut(""));
setInterval(() => { if (session) api("GET", "/console/api/session").then((s) => { session = s; }).catch(() => signedOut("Your session ended: sign in again.")); }, 30000);
