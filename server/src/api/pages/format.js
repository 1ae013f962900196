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
