// What both dashboard pages say the same way (served at /assets/format.js). Values from the
// feed only ever go into the page as text: `h` appends strings, never markup.

/** An element with a class and children (nodes, or strings added as text). */
export function h(tag, cls, ...children) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const c of children) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

const NAMES = {
  game_start: "Game start", period_start: "Period start", period_end: "End of period", game_end: "Final",
  jump_ball: "Jump ball", free_throw: "Free throw", pit_in: "Pit in", pit_out: "Pit out",
  session_start: "Session start", session_end: "Session end", score_correction: "Score corrected",
};

/** An event or result name as people say it: `free_throw` → "Free throw". */
export const human = (e) => NAMES[e] ?? (e ? e[0].toUpperCase() + e.slice(1).replaceAll("_", " ") : "");

/** A game clock in ms as m:ss. */
export const clock = (ms) => (ms == null ? "" : `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, "0")}`);

export const ordinal = (n) => ["", "1st", "2nd", "3rd", "4th"][n] ?? `${n}th`;

/** Seconds with milliseconds, from ms. */
export const secs = (ms) => (ms == null ? "" : (ms / 1000).toFixed(3));

/** A lap time as timing screens show it, from ms: `1:33.212`; under a minute `59.004`. */
export const lapTime = (ms) => {
  if (ms == null) return "";
  const m = Math.floor(ms / 60000);
  return m === 0 ? secs(ms) : `${m}:${((ms % 60000) / 1000).toFixed(3).padStart(6, "0")}`;
};

/** The team code of a side in a state. */
export const team = (s, side) => (side === "home" ? s?.home : s?.away) ?? side;

/** The period and clock, "FINAL" once ended, "Pre-game" before the first period, the break's
 * name between periods ("Halftime", "End of Q1"). */
export function periodText(s) {
  if (s.status === "ended") return "FINAL";
  if (!s.period) return "Pre-game";
  if (s.last_event === "period_end") return breakText(s);
  switch (s.sport) {
    case "basketball": return `${s.period > 4 ? "OT" + (s.period - 4) : "Q" + s.period} ${clock(s.clock_ms)}`;
    case "football": return `${s.period > 4 ? "OT" : "Q" + s.period} ${clock(s.clock_ms)}`;
    case "soccer": return `${Math.floor((s.clock_ms ?? 0) / 60000)}' ${["", "1st half", "2nd half", "ET1", "ET2", "Pens"][s.period] ?? ""}`;
    default: return "";
  }
}

/** Between periods: "Halftime", "End of Q1", "End of OT1"; soccer "Half-time", "End of ET1". */
function breakText(s) {
  switch (s.sport) {
    case "basketball": case "football":
      if (s.period === 2) return "Halftime";
      return `End of ${s.period > 4 ? "OT" + (s.sport === "basketball" ? s.period - 4 : "") : "Q" + s.period}`;
    case "soccer": return s.period === 1 ? "Half-time" : `End of ${["", "1st half", "2nd half", "ET1", "ET2"][s.period] ?? "period"}`;
    default: return "";
  }
}

/** Football down, distance and field position as a broadcast says them:
 * "SEA ball, 1st & 10 at KC 35" (empty when not in a series or once ended). */
export function situation(s) {
  const f = s.football;
  if (!f || !f.down || s.status === "ended") return "";
  const yl = f.yardline_100;
  const other = f.possession === "home" ? "away" : "home";
  const at = yl === 50 ? "50" : yl > 50 ? `${team(s, f.possession)} ${100 - yl}` : `${team(s, other)} ${yl}`;
  return `${team(s, f.possession)} ball, ${ordinal(f.down)} & ${f.distance} at ${at}`;
}

// The game clock as a chart axis. x is minutes from the start: basketball 4 × 12 then 5 per
// overtime, football 4 × 15 then 10 (both clocks count down in the period); soccer's clock
// counts up from kick-off and each half gets 45 + 10 minutes of room (stoppage time), each
// extra-time period 15 + 5, so added time never runs into the next period.
const CLOCKS = { basketball: [12, 5], football: [15, 10] };
const SOCCER = [[0, 45, 55], [45, 45, 55], [90, 15, 20], [105, 15, 20]]; // [first minute, length, room]

const periodLength = (sport, p) => (p <= 4 ? CLOCKS[sport][0] : CLOCKS[sport][1]);

/** Minutes from the start of the game to this period and clock (0 before the first period). */
export function gameMinute(sport, period, clockMs) {
  if (!period) return 0;
  const min = (clockMs ?? 0) / 60000;
  if (CLOCKS[sport]) {
    const [len, ot] = CLOCKS[sport];
    const start = period <= 4 ? (period - 1) * len : 4 * len + (period - 5) * ot;
    const plen = periodLength(sport, period);
    return start + Math.min(plen, Math.max(0, plen - min));
  }
  if (sport === "soccer") {
    const p = Math.min(Math.max(period, 1), 4) - 1;
    const start = SOCCER.slice(0, p).reduce((a, s) => a + s[2], 0);
    return start + Math.min(SOCCER[p][2], Math.max(0, min - SOCCER[p][0]));
  }
  return 0;
}

/** A period's short name: Q1…Q4, OT1… (football: OT, OT2…); soccer 1H, 2H, ET1, ET2. */
export function periodName(sport, p) {
  if (sport === "soccer") return ["", "1H", "2H", "ET1", "ET2", "Pens"][p] ?? `P${p}`;
  if (p <= 4) return `Q${p}`;
  return sport === "basketball" ? `OT${p - 4}` : p === 5 ? "OT" : `OT${p - 4}`;
}

/** The axis of a game up to period `last` (at least regulation): its end and each period's
 * start as `{x, label}` (the chart's ticks and period boundaries). */
export function gameAxis(sport, last) {
  const regulation = sport === "soccer" ? 2 : 4;
  const n = Math.max(last ?? 0, regulation);
  const marks = [];
  for (let p = 1; p <= n; p++) {
    const start = CLOCKS[sport] ? periodLength(sport, p) * 60000 : SOCCER[Math.min(p, 4) - 1][0] * 60000;
    marks.push({ x: gameMinute(sport, p, start), label: periodName(sport, p) });
  }
  const end = CLOCKS[sport] ? gameMinute(sport, n, 0) : gameMinute(sport, n, 1e9);
  return { end, marks };
}

/** A moment as fans say it: "Q3 5:12", "OT1 0:45"; soccer "23'", "45+2'", "90+4'". */
export function momentText(sport, period, clockMs) {
  if (sport === "soccer") {
    const s = SOCCER[Math.min(Math.max(period, 1), 4) - 1];
    const m = Math.floor((clockMs ?? 0) / 60000) + 1;
    return m > s[0] + s[1] ? `${s[0] + s[1]}+${m - s[0] - s[1]}'` : `${m}'`;
  }
  return `${periodName(sport, period)} ${clock(clockMs)}`;
}

/** The `n` biggest swings of a series (`ys[i] - ys[i-1]`, at least `min` in size), as indices
 * in time order: the key moments of a win-probability chart. */
export function swings(ys, n = 3, min = 0.08) {
  const d = [];
  for (let i = 1; i < ys.length; i++) {
    const delta = ys[i] - ys[i - 1];
    if (Math.abs(delta) >= min) d.push([i, delta]);
  }
  d.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]) || a[0] - b[0]);
  return d.slice(0, n).map((x) => x[0]).sort((a, b) => a - b);
}

/** A tyre compound as timing screens letter it: S, M, H, I (intermediate), W (wet); "–"
 * when the feed has not said. */
export const compoundLetter = (c) => ({ soft: "S", medium: "M", hard: "H", intermediate: "I", wet: "W", unknown: "–" })[c] ?? (c ? c[0].toUpperCase() : "–");
