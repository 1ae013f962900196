// Each sport's picture on the game page (served at /assets/pictures.js), in SVG: the
// basketball court, the football field with the drive, the soccer pitch and momentum bars, the
// F1 stint strip, and the team-stats comparison. Values from the feed only ever go in as text
// or numbers (`h`, `svg` set attributes and textContent, never markup).
import { h } from "/assets/format.js";

const NS = "http://www.w3.org/2000/svg";
export const COLORS = { home: "#58a6ff", away: "#f0883e" };

/** An SVG element with attributes (and text). */
export function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = String(text);
  return e;
}

const LINE = { fill: "none", stroke: "#8b949e", "stroke-width": 0.3 };

/** A full NBA court (94 × 50 ft, the events' frame): at each end the paint (16 ft wide, 19
 * deep), the free-throw circle, the three-point line (22 ft in the corners, a 23.75 ft arc),
 * backboard and hoop; the centre line and circle. */
export function courtMarkings() {
  const end = (mirror) => {
    const g = svg("g", mirror ? { transform: "matrix(-1 0 0 1 94 0)" } : {});
    g.append(
      svg("rect", { x: 0, y: 17, width: 19, height: 16, ...LINE, fill: "#4a3522" }),
      svg("circle", { cx: 19, cy: 25, r: 6, ...LINE }),
      svg("path", { d: "M0 3 H14 A23.75 23.75 0 0 1 14 47 H0", ...LINE }),
      svg("line", { x1: 4, y1: 22, x2: 4, y2: 28, stroke: "#c9d1d9", "stroke-width": 0.4 }),
      svg("circle", { cx: 5.25, cy: 25, r: 0.75, fill: "none", stroke: "#f0883e", "stroke-width": 0.35, class: "hoop" }),
    );
    return g;
  };
  return [
    svg("rect", { x: 0, y: 0, width: 94, height: 50, fill: "#3a2a1a", stroke: "#8b949e", "stroke-width": 0.4 }),
    svg("line", { x1: 47, y1: 0, x2: 47, y2: 50, ...LINE }),
    svg("circle", { cx: 47, cy: 25, r: 6, ...LINE }),
    end(false), end(true),
  ];
}

/** A soccer pitch (105 × 68 m): halfway line, centre circle, both penalty areas, goal areas
 * and goals. */
export function pitchMarkings() {
  const L = { ...LINE, stroke: "#6e7681", "stroke-width": 0.4 };
  return [
    svg("rect", { x: 0, y: 0, width: 105, height: 68, fill: "#1d3b24", ...L, fill: "#1d3b24" }),
    svg("line", { x1: 52.5, y1: 0, x2: 52.5, y2: 68, ...L }),
    svg("circle", { cx: 52.5, cy: 34, r: 9.15, ...L }),
    svg("rect", { x: 0, y: 13.85, width: 16.5, height: 40.3, ...L }),
    svg("rect", { x: 88.5, y: 13.85, width: 16.5, height: 40.3, ...L }),
    svg("rect", { x: 0, y: 24.85, width: 5.5, height: 18.3, ...L }),
    svg("rect", { x: 99.5, y: 24.85, width: 5.5, height: 18.3, ...L }),
    svg("rect", { x: -1.5, y: 30.34, width: 1.5, height: 7.32, ...L }),
    svg("rect", { x: 105, y: 30.34, width: 1.5, height: 7.32, ...L }),
  ];
}

/** A shot: a circle in its side's colour, filled when it scored, with a tooltip. */
export function shotDot(x, y, r, side, scored, label) {
  const color = COLORS[side] ?? "#8b949e";
  const dot = svg("circle", { cx: x, cy: y, r, fill: scored ? color : "none", stroke: color, "stroke-width": 0.35, class: "shot" });
  dot.append(svg("title", {}, label));
  return dot;
}

/**
 * The football field (120 × 53.3 yd, end zones included; home defends the left goal line) with
 * the line of scrimmage (blue), the line to gain (yellow) and the current drive (an arrow from
 * where it started). `f`: the state's football section; `teams`: {home, away};
 * `driveStart`: the drive's first yardline_100, or null.
 */
export function field(f, teams, driveStart) {
  const out = [
    svg("rect", { x: 0, y: 0, width: 120, height: 53.3, fill: "#1f4a2a" }),
    svg("rect", { x: 0, y: 0, width: 10, height: 53.3, fill: COLORS.home, opacity: 0.35 }),
    svg("rect", { x: 110, y: 0, width: 10, height: 53.3, fill: COLORS.away, opacity: 0.35 }),
    svg("text", { x: 5, y: 27, "text-anchor": "middle", class: "endzone", transform: "rotate(-90 5 27)" }, teams.home),
    svg("text", { x: 115, y: 27, "text-anchor": "middle", class: "endzone", transform: "rotate(90 115 27)" }, teams.away),
  ];
  for (let yd = 5; yd <= 95; yd += 5) {
    out.push(svg("line", { x1: 10 + yd, y1: 0, x2: 10 + yd, y2: 53.3, stroke: "#d0d7de", "stroke-width": yd % 10 ? 0.15 : 0.3, opacity: 0.6 }));
    if (yd % 10 === 0) out.push(svg("text", { x: 10 + yd, y: 49, "text-anchor": "middle", class: "yard" }, yd <= 50 ? yd : 100 - yd));
  }
  if (f?.possession && f.yardline_100 != null) {
    // Home attacks right: its ball at yardline_100 from the right goal line is 100 - yl from the left.
    const at = (yl) => 10 + (f.possession === "home" ? 100 - yl : yl);
    const dir = f.possession === "home" ? 1 : -1;
    const los = at(f.yardline_100);
    if (driveStart != null) {
      const from = at(driveStart);
      out.push(svg("line", { x1: from, y1: 26.65, x2: los, y2: 26.65, stroke: COLORS[f.possession], "stroke-width": 2.2, "stroke-linecap": "round", class: "drive" }));
    }
    out.push(svg("line", { x1: los, y1: 0, x2: los, y2: 53.3, stroke: "#2f81f7", "stroke-width": 0.8, class: "scrimmage" }));
    if (f.down && f.distance) {
      const gain = Math.min(110, Math.max(10, los + dir * f.distance));
      out.push(svg("line", { x1: gain, y1: 0, x2: gain, y2: 53.3, stroke: "#e3b341", "stroke-width": 0.8, class: "to-gain" }));
    }
  }
  return out;
}

/** Momentum bars: one per bucket of the game axis, up for home's value, down for away's.
 * `buckets`: [{x, home, away}] (x: the bucket's start); `width`: the bucket width; `end`:
 * the axis end; `marks`: period starts. Height ±1 is the largest bucket. */
export function momentum(buckets, width, end, marks) {
  const max = Math.max(0.05, ...buckets.map((b) => Math.max(b.home, b.away)));
  const sx = 100 / Math.max(1, end);
  const out = [svg("line", { x1: 0, y1: 20, x2: 100, y2: 20, stroke: "#8b949e", "stroke-width": 0.2 })];
  for (const m of marks) {
    out.push(svg("line", { x1: m.x * sx, y1: 0, x2: m.x * sx, y2: 40, stroke: "#30363d", "stroke-width": 0.2 }));
    out.push(svg("text", { x: m.x * sx + 0.5, y: 3, class: "mark" }, m.label));
  }
  for (const b of buckets) {
    const x = b.x * sx + 0.15, w = Math.max(0.3, width * sx - 0.3);
    if (b.home > 0) out.push(svg("rect", { x, y: 20 - (18 * b.home) / max, width: w, height: (18 * b.home) / max, fill: COLORS.home, class: "bar-home" }));
    if (b.away > 0) out.push(svg("rect", { x, y: 20, width: w, height: (18 * b.away) / max, fill: COLORS.away, class: "bar-away" }));
  }
  return out;
}

const TYRES = { soft: "#da3633", medium: "#e3b341", hard: "#d0d7de", intermediate: "#3fb950", wet: "#2f81f7" };

/** Each driver's stints as a strip of laps coloured by compound, in running order. `rows`:
 * [{driver, stints: [{compound, from_lap, to_lap}]}]; `laps`: the axis' last lap. */
export function stintStrip(rows, laps) {
  const sx = 100 / Math.max(1, laps), rh = 4;
  const out = [];
  rows.forEach((r, i) => {
    const y = i * rh;
    out.push(svg("text", { x: -1, y: y + rh * 0.75, "text-anchor": "end", class: "driver" }, r.driver));
    for (const s of r.stints) {
      const rect = svg("rect", {
        x: (s.from_lap - 1) * sx, y: y + 0.5, width: Math.max(0.4, (s.to_lap - s.from_lap + 1) * sx - 0.3), height: rh - 1,
        fill: TYRES[s.compound] ?? "#6e7681", class: "stint",
      });
      rect.append(svg("title", {}, `${r.driver}: ${s.compound ?? "unknown"}, laps ${s.from_lap}–${s.to_lap}`));
      out.push(rect);
    }
  });
  return out;
}

/** The team-stats comparison: a row per stat, home value, a split bar, away value. `rows`:
 * [[label, home, away, homeText?, awayText?]]. */
export function teamStats(teams, rows) {
  const head = h("tr", null, h("th", null, teams.home), h("th", null, ""), h("th", null, teams.away));
  return [head, ...rows.map(([label, a, b, at, bt]) => {
    const bar = h("div", "bar split");
    const total = (+a || 0) + (+b || 0);
    const share = total > 0 ? (100 * (+a || 0)) / total : 50;
    const home = h("span", "home"), away = h("span", "away");
    home.style.left = "0"; home.style.width = `${share}%`;
    away.style.left = `${share}%`; away.style.width = `${100 - share}%`;
    bar.append(home, away);
    return h("tr", "stat", h("td", null, at ?? a), h("td", "stat-name", h("div", null, label), bar), h("td", null, bt ?? b));
  })];
}
