// Charts on uPlot (vendored, global `uPlot`): sparklines, time series, a duration scatter.
import { h } from "./dom.js";
import { COLORS, clock, duration } from "./format.js";

const live = new Set();
// The live uPlot instances, for the browser tests (axis labels, sizes).
window.meshscope = { ...(window.meshscope || {}), charts: live };

// Destroy the charts of the previous view.
export function destroyCharts() {
  for (const plot of live) plot.destroy();
  live.clear();
}

function track(plot) {
  live.add(plot);
  return plot;
}

window.addEventListener("resize", () => {
  for (const plot of live) {
    const box = plot.root.parentElement;
    if (box && box.dataset.fluid) plot.setSize({ width: box.clientWidth, height: plot.height });
  }
});

// Wait until `el` is in the document (views build detached trees, then attach them).
function whenAttached(el, fn) {
  let tries = 0;
  const step = () => {
    if (el.isConnected) fn();
    else if (tries++ < 120) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

export function sparkline(xs, ys, color, { width = 112, height = 28, max } = {}) {
  const el = h("div", { class: "spark", "aria-hidden": "true" });
  if (!xs.length || ys.every((v) => v === null)) {
    el.classList.add("spark-empty");
    return el;
  }
  const top = max ?? Math.max(...ys.filter((v) => v !== null));
  track(new window.uPlot({
    width, height, pxAlign: false,
    cursor: { show: false }, legend: { show: false }, select: { show: false },
    axes: [{ show: false }, { show: false }],
    scales: { x: { time: false }, y: { range: () => [0, top > 0 ? top * 1.1 : 1] } },
    series: [{}, { stroke: color, width: 1.5, fill: `${color}1f`, points: { show: false }, spanGaps: false }],
  }, [xs, ys], el));
  return el;
}

const FONT = "11px Inter, system-ui, sans-serif";
const axis = { stroke: "#64748b", grid: { stroke: "#eef2f7", width: 1 }, ticks: { stroke: "#e2e8f0", width: 1 }, font: FONT };

// Time labels on one line in the UI's 24-hour clock, only as fine as the tick step needs, each
// with the (earliest) step it is used from and a widest sample; when the range passes a day,
// minute steps carry the date too.
const pad = (v, n = 2) => String(v).padStart(n, "0");
const hm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
const hms = (d) => `${hm(d)}:${pad(d.getSeconds())}`;
const md = (d) => `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const TIME_FORMATS = [
  { from: 0, sample: "00:00:00.000", format: (d) => `${hms(d)}.${pad(d.getMilliseconds(), 3)}` },
  { from: 1, sample: "00:00:00", format: hms },
  { from: 60, sample: "00:00", format: hm, days: { sample: "00-00 00:00", format: (d) => `${md(d)} ${hm(d)}` } },
  { from: 86400, sample: "00-00", format: md },
];

function timeFormat(stepS, spanS) {
  let found = TIME_FORMATS[0];
  for (const f of TIME_FORMATS) if (stepS >= f.from) found = f;
  return spanS > 86400 && found.days ? found.days : found;
}

let measurer = null;
function textWidth(text) {
  measurer = measurer || document.createElement("canvas").getContext("2d");
  measurer.font = FONT;
  return measurer.measureText(text).width;
}

const LABEL_GAP = 16;

// uPlot picks the finest step whose ticks are at least `space` px apart, then labels them with
// `values`. The space is the width of the widest label of the coarsest format that a step at
// that spacing can use (coarser formats are narrower), so neighbouring labels never overlap
// whatever the chart's width or range.
function timeSpace(u, axisIdx, min, max, plotWidth) {
  const spanS = max - min;
  for (let i = TIME_FORMATS.length - 1; i >= 0; i--) {
    const f = timeFormat(TIME_FORMATS[i].from, spanS);
    const space = textWidth(f.sample) + LABEL_GAP;
    if (i === 0 || (spanS * space) / Math.max(plotWidth, 1) >= TIME_FORMATS[i].from) return space;
  }
  return 50;
}

const timeAxis = { ...axis, space: timeSpace,
  values: (u, splits, axisIdx, space, stepS) => {
    const f = timeFormat(stepS, u.scales.x.max - u.scales.x.min);
    return splits.map((s) => f.format(new Date(s * 1000)));
  } };

// A time-series chart filling its container's width; `onZoom(startMs, endMs)` on drag-select.
export function timeseries(xs, series, { height = 200, format = String, onZoom, yMin } = {}) {
  const el = h("div", { class: "chart", dataset: { fluid: "1" } });
  whenAttached(el, () => {
    const opts = {
      width: Math.max(200, el.clientWidth), height,
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      // One interval alone would otherwise stretch the x scale over years.
      scales: { x: { range: () => (xs.length > 1 ? [xs[0], xs[xs.length - 1]] : [(xs[0] ?? 0) - 60, (xs[0] ?? 0) + 60]) },
        y: { range: (u, min, max) => [yMin ?? 0, max > 0 ? max * 1.15 : 1] } },
      axes: [timeAxis, { ...axis, size: 64, values: (u, vals) => vals.map((v) => format(v)) }],
      series: [{ value: (u, v) => (v === null ? "–" : clock(v * 1000)) },
        ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.75, fill: s.fill ? `${s.color}18` : undefined,
          points: { show: false }, value: (u, v) => (v === null ? "–" : format(v)) }))],
      hooks: {
        setSelect: [(u) => {
          if (!onZoom || u.select.width < 4) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          onZoom(Math.floor(from * 1000), Math.ceil(to * 1000));
        }],
      },
    };
    track(new window.uPlot(opts, [xs, ...series.map((s) => s.values)], el));
  });
  return el;
}

// Traces as points: x start time, y duration; errors in red. `onPick(point)` on click.
export function durationScatter(points, onPick, { height = 220 } = {}) {
  const el = h("div", { class: "chart scatter", dataset: { fluid: "1" } });
  const tip = h("div", { class: "chart-tip", hidden: true });
  const wrap = h("div", { class: "scatter-wrap" }, el, tip);
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const xs = sorted.map((p) => p.x);
  const ok = sorted.map((p) => (p.error ? null : p.y));
  const bad = sorted.map((p) => (p.error ? p.y : null));
  whenAttached(el, () => {
    const span = xs.length ? xs[xs.length - 1] - xs[0] : 0;
    const pad = Math.max(span * 0.04, 1);
    const plot = new window.uPlot({
      width: Math.max(200, el.clientWidth), height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 12 } },
      scales: { x: { range: () => [(xs[0] ?? 0) - pad, (xs[xs.length - 1] ?? 1) + pad] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
      axes: [timeAxis, { ...axis, size: 64, values: (u, vals) => vals.map((v) => duration(v)) }],
      series: [{},
        { label: "ok", stroke: COLORS.accent, fill: `${COLORS.accent}55`, paths: () => null, points: { show: true, size: 8, width: 1 } },
        { label: "error", stroke: COLORS.bad, fill: `${COLORS.bad}88`, paths: () => null, points: { show: true, size: 9, width: 1 } }],
      hooks: {
        setCursor: [(u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined || !sorted[i]) { tip.hidden = true; return; }
          const p = sorted[i];
          tip.hidden = false;
          tip.textContent = `${p.label} · ${duration(p.y)}${p.error ? " · error" : ""}`;
          tip.style.left = `${Math.min(u.valToPos(p.x, "x") + 12, el.clientWidth - 220)}px`;
          tip.style.top = `${u.valToPos(p.y, "y") + 4}px`;
        }],
      },
    }, [xs, ok, bad], el);
    track(plot);
    plot.over.addEventListener("click", () => {
      const i = plot.cursor.idx;
      if (i !== null && i !== undefined && sorted[i]) onPick(sorted[i]);
    });
  });
  return wrap;
}
