// Time-series panels of the game page (served at /assets/charts.js), drawn by uPlot (loaded
// by the page as the global `uPlot`). A chart runs on the game's own clock when it has one
// (`axis`: format.js `gameAxis`, period starts as ticks and grid lines), keeps a fixed value
// range where one exists (a probability: a wobble must not look like a swing), and many
// updates in one frame are drawn once, at the next animation frame.

const queued = new Set();
/** Runs `fn` once at the next animation frame, however often it is asked for before then. */
export function schedule(fn) {
  if (!queued.size) requestAnimationFrame(flush);
  queued.add(fn);
}
function flush() {
  const q = [...queued];
  queued.clear();
  for (const f of q) f();
}

const observers = new WeakMap();
const AXIS = { stroke: "#8b949e", grid: { stroke: "#262c36" }, ticks: { stroke: "#262c36" } };

/**
 * A line chart in the element `el` (cleared first). Options:
 * - `series`: `[{label, color, dash?, width?}]`, one per value of a point;
 * - `axis`: `() => ({end, marks: [{x, label}]})`, the game-clock axis (x from 0 to `end`), or
 *   absent for plain numbers (`xRange`, e.g. laps);
 * - `y`: a fixed `[min, max]`; `yDir: -1` puts the minimum on top (positions); `yValues`:
 *   tick labels `(v) => text`;
 * - `markers`: `() => [{x, y, n}]`, numbered points drawn over the lines (key moments);
 * - `labels`: `() => [{x, y, text, color}]`, names written at points (a driver's line end);
 * - `stepped`: lines as steps (a running total that changes at moments);
 * - `legend`: false to leave the legend out (many series);
 * - `height` in pixels (180), or `aspect`: width / height, kept as the panel resizes.
 * Returns `{u, data, push(x, ...ys), set(data)}`.
 */
export function lineChart(el, opts) {
  const width = Math.max(300, el.clientWidth || 420);
  const height = opts.aspect ? Math.round(width / opts.aspect) : opts.height ?? 180;
  // Axis labels at the page's type size (arena mode scales it with the screen).
  const px = parseFloat(getComputedStyle(el).fontSize) || 15;
  const font = `${Math.round(px * 0.75)}px system-ui, sans-serif`;
  const axisX = opts.axis
    ? { splits: () => opts.axis().marks.map((m) => m.x), values: () => opts.axis().marks.map((m) => m.label) }
    : {};
  const y = { ...(opts.y ? { range: opts.y } : {}), ...(opts.yDir ? { dir: opts.yDir } : {}) };
  const x = opts.axis ? { time: false, range: () => [0, opts.axis().end] } : { time: false, ...(opts.xRange ? { range: opts.xRange } : {}) };
  const data = [[], ...opts.series.map(() => [])];
  el.replaceChildren();
  const u = new uPlot({
    width, height, legend: { show: false }, cursor: { show: false },
    scales: { x, y },
    series: [{}, ...opts.series.map((s) => ({
      label: s.label, stroke: s.color, width: s.width ?? 2, dash: s.dash, points: { show: false },
      ...(opts.stepped ? { paths: uPlot.paths.stepped({ align: 1 }) } : {}),
    }))],
    axes: [
      { ...AXIS, font, size: px * 2.5, ...axisX },
      { ...AXIS, font, size: px * 3.5, ...(opts.yValues ? { values: (_, vs) => vs.map(opts.yValues) } : {}) },
    ],
    hooks: { draw: [(u) => {
      if (opts.markers) drawMarkers(u, opts.markers());
      if (opts.labels) drawLabels(u, opts.labels());
    }] },
  }, data, el);
  if (opts.legend !== false) el.append(legend(opts.series));
  // Follow the panel's width (a grid that reflows as panels appear, a resized window);
  // `aspect` (width / height), when given, keeps the chart's shape.
  // (One observer per element: a chart made again in the same element replaces it.)
  observers.get(el)?.disconnect();
  const ro = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: opts.aspect ? Math.round(w / opts.aspect) : u.height });
  });
  ro.observe(el);
  observers.set(el, ro);
  const redraw = () => u.setData(data);
  return {
    u, data,
    push(xv, ...ys) {
      // x never runs back: the next period's events that a feed sends before the period
      // starts (with its full clock) are drawn at the end of the last (report.rs does the same).
      data[0].push(Math.max(xv, data[0].at(-1) ?? xv));
      ys.forEach((v, i) => data[i + 1].push(v));
      schedule(redraw);
    },
    set(d) {
      d.forEach((col, i) => (data[i] = col));
      schedule(redraw);
    },
    redraw: () => schedule(redraw),
  };
}

/** The series' names beside a swatch of their colour (labels only: no "x: --"). */
function legend(series) {
  const div = document.createElement("div");
  div.className = "legend";
  for (const s of series) {
    if (!s.label) continue;
    const key = document.createElement("span");
    const sw = document.createElement("i");
    sw.style.background = s.color;
    key.append(sw, s.label);
    div.append(key);
  }
  return div;
}

function drawMarkers(u, markers) {
  const ctx = u.ctx;
  ctx.save();
  ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  for (const m of markers) {
    const cx = u.valToPos(m.x, "x", true), cy = u.valToPos(m.y, "y", true);
    ctx.beginPath();
    ctx.arc(cx, cy, 8 * devicePixelRatio, 0, 2 * Math.PI);
    ctx.fillStyle = "#e6e6e6";
    ctx.fill();
    ctx.fillStyle = "#0e1116";
    ctx.fillText(String(m.n), cx, cy);
  }
  ctx.restore();
}

function drawLabels(u, labels) {
  const ctx = u.ctx;
  ctx.save();
  ctx.font = `${Math.round(10 * devicePixelRatio)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  for (const l of labels) {
    ctx.fillStyle = l.color;
    ctx.fillText(l.text, u.valToPos(l.x, "x", true) + 4 * devicePixelRatio, u.valToPos(l.y, "y", true));
  }
  ctx.restore();
}
