// One service: KPIs, time-series charts (rate, errors, latency) and its operations.
import { api } from "../api.js";
import { timeseries } from "../charts.js";
import { card, clear, empty, h, kpi, loading, pageHeader } from "../dom.js";
import { COLORS, duration, errorTone, latencyTone, percent, percentileNote, rate } from "../format.js";

const OVERFLOW_NOTE = "Past pipeline.max_series_per_metric span-metric series, new operations are counted together per service (otel_metric_overflow=\"true\"): the service's numbers stay whole.";

export async function render(root, ctx) {
  const { range } = ctx;
  const name = ctx.route.arg;
  root.append(h("nav", { class: "breadcrumb" }, h("a", { href: ctx.href("services", "") }, "Services"), h("span", {}, "/"), h("span", {}, name)));
  root.append(pageHeader(name, `Server spans · ${range.label}`,
    h("a", { class: "button", href: ctx.href("traces", "", { service: name }) }, "Traces"),
    h("a", { class: "button danger", href: ctx.href("traces", "", { service: name, status: "error" }) }, "Error traces"),
    h("a", { class: "button", href: ctx.href("logs", "", { service: name }) }, "Logs"),
    h("a", { class: "button", href: ctx.href("map", "", { focus: name }) }, "On the map")));
  const body = h("div", {}, loading());
  root.append(body);
  const [summary, operations] = await Promise.all([
    api.red({ start: range.start, end: range.end, service: name }),
    api.red({ start: range.start, end: range.end, service: name, groupBy: "operation" }),
  ]);
  clear(body);
  const s = summary[0];
  if (!s) {
    body.append(empty(`No server spans of ${name} in this range.`, "Try a wider time range."));
    return null;
  }
  body.append(h("div", { class: "kpis" },
    kpi("Requests/s", rate(s.rate), "", "rate"), kpi("Requests", Math.round(s.calls).toLocaleString("en-US"), "", "calls"),
    kpi("Error rate", percent(s.errorRatio), errorTone(s.errorRatio), "errorRatio"),
    kpi("p50", duration(s.p50Ms), "", "p50"), kpi("p95", duration(s.p95Ms), "", "p95"), kpi("p99", duration(s.p99Ms), "", "p99")),
    h("p", { class: "footnote", dataset: { note: "percentiles" } }, percentileNote([s])));
  // The charts (RED per interval) fill in after the numbers (`data-complete` when drawn).
  const slots = ["Request rate", "Error rate", "Latency"].map(() => h("div", { class: "chart-loading" }, loading("Loading chart…")));
  body.append(h("div", { class: "chart-grid" }, card("Request rate", slots[0]), card("Error rate", slots[1]), card("Latency", slots[2])));
  api.redRange({ start: range.start, end: range.end, service: name, steps: 90 }).then(({ times, series: found }) => {
    if (!root.isConnected) return;
    const xs = times.map((t) => t / 1000);
    const none = xs.map(() => null);
    const s = found[0] || { rate: none, errorRatio: none, p50Ms: none, p95Ms: none, p99Ms: none };
    const errors = s.rate.map((r, i) => (s.errorRatio[i] === null ? (r === 0 ? 0 : null) : r * s.errorRatio[i]));
    slots[0].replaceWith(timeseries(xs, [{ label: "requests/s", values: s.rate, color: COLORS.accent, fill: true },
      { label: "errors/s", values: errors, color: COLORS.bad }], { format: (v) => rate(v), onZoom: ctx.zoom }));
    slots[1].replaceWith(timeseries(xs, [{ label: "errors", values: s.errorRatio, color: COLORS.bad, fill: true }], { format: (v) => percent(v), onZoom: ctx.zoom }));
    slots[2].replaceWith(timeseries(xs, [{ label: "p50", values: s.p50Ms, color: COLORS.ok },
      { label: "p95", values: s.p95Ms, color: COLORS.warn }, { label: "p99", values: s.p99Ms, color: COLORS.bad }],
    { format: (v) => duration(v), onZoom: ctx.zoom }));
    root.dataset.complete = "1";
  }).catch((error) => { for (const slot of slots) slot.replaceWith(h("p", { class: "muted" }, `Chart failed: ${error.message}`)); });
  const maxP99 = Math.max(...operations.map((o) => o.p99Ms || 0));
  operations.sort((a, b) => b.rate - a.rate);
  body.append(card(`Operations (${operations.length})`, h("table", { class: "grid operations-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Operation"), ["Requests/s", "Error rate", "p50", "p95", "p99"].map((t) => h("th", { class: "num" }, t)))),
    h("tbody", {}, operations.map((o) => h("tr", { dataset: { operation: o.operation } },
      h("td", {}, o.operation === ""
        // The span metrics' series cap was reached: this service's other operations together.
        ? h("a", { href: ctx.href("traces", "", { service: name }), class: "overflow", title: OVERFLOW_NOTE }, h("span", { class: `dot ${errorTone(o.errorRatio)}` }), "other operations (series cap reached)")
        : h("a", { href: ctx.href("traces", "", { service: name, operation: o.operation }) }, h("span", { class: `dot ${errorTone(o.errorRatio)}` }), o.operation)),
      h("td", { class: "num" }, rate(o.rate)),
      h("td", { class: `num tone-${errorTone(o.errorRatio)}` }, percent(o.errorRatio)),
      h("td", { class: "num" }, duration(o.p50Ms)), h("td", { class: "num" }, duration(o.p95Ms)),
      h("td", { class: `num tone-${latencyTone(o.p99Ms, maxP99)}` }, duration(o.p99Ms))))))));
  return null;
}
