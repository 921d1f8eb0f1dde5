// One service: KPIs, time-series charts (rate, errors, latency) and its operations.
import { api, promString, stepFor } from "../api.js";
import { timeseries } from "../charts.js";
import { card, clear, empty, h, kpi, loading, pageHeader } from "../dom.js";
import { COLORS, duration, errorTone, latencyTone, percent, rate } from "../format.js";

async function series(query, range, step) {
  const { xs, series: found } = await api.promRange(query, range.start, range.end, step);
  return { xs, values: found[0]?.values || xs.map(() => null) };
}

export async function render(root, ctx) {
  const { range } = ctx;
  const name = ctx.route.arg;
  const sel = `service_name=${promString(name)},span_kind="SPAN_KIND_SERVER"`;
  root.append(h("nav", { class: "breadcrumb" }, h("a", { href: ctx.href("services", "") }, "Services"), h("span", {}, "/"), h("span", {}, name)));
  root.append(pageHeader(name, `Server spans · ${range.label}`,
    h("a", { class: "button", href: ctx.href("traces", "", { service: name }) }, "Traces"),
    h("a", { class: "button danger", href: ctx.href("traces", "", { service: name, status: "error" }) }, "Error traces"),
    h("a", { class: "button", href: ctx.href("logs", "", { service: name }) }, "Logs"),
    h("a", { class: "button", href: ctx.href("map", "", { focus: name }) }, "On the map")));
  const body = h("div", {}, loading());
  root.append(body);
  const { step, window } = stepFor(range, 90);
  const q = (quantile) => `histogram_quantile(${quantile}, sum by (le) (rate(duration_milliseconds_bucket{${sel}}[${window}])))`;
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
    kpi("p50", duration(s.p50Ms), "", "p50"), kpi("p95", duration(s.p95Ms), "", "p95"), kpi("p99", duration(s.p99Ms), "", "p99")));
  // The charts' PromQL range queries fill in after the numbers (`data-complete` when drawn).
  const slots = ["Request rate", "Error rate", "Latency"].map(() => h("div", { class: "chart-loading" }, loading("Loading chart…")));
  body.append(h("div", { class: "chart-grid" }, card("Request rate", slots[0]), card("Error rate", slots[1]), card("Latency", slots[2])));
  Promise.all([
    series(`sum(rate(calls_total{${sel}}[${window}]))`, range, step),
    series(`sum(rate(calls_total{${sel},status_code="STATUS_CODE_ERROR"}[${window}]))`, range, step),
    series(q(0.5), range, step), series(q(0.95), range, step), series(q(0.99), range, step),
  ]).then(([calls, errors, p50, p95, p99]) => {
    if (!root.isConnected) return;
    const ratio = calls.values.map((c, i) => (c ? (errors.values[i] || 0) / c : c === 0 ? 0 : null));
    slots[0].replaceWith(timeseries(calls.xs, [{ label: "requests/s", values: calls.values, color: COLORS.accent, fill: true },
      { label: "errors/s", values: errors.values, color: COLORS.bad }], { format: (v) => rate(v), onZoom: ctx.zoom }));
    slots[1].replaceWith(timeseries(calls.xs, [{ label: "errors", values: ratio, color: COLORS.bad, fill: true }], { format: (v) => percent(v), onZoom: ctx.zoom }));
    slots[2].replaceWith(timeseries(p50.xs, [{ label: "p50", values: p50.values, color: COLORS.ok },
      { label: "p95", values: p95.values, color: COLORS.warn }, { label: "p99", values: p99.values, color: COLORS.bad }],
    { format: (v) => duration(v), onZoom: ctx.zoom }));
    root.dataset.complete = "1";
  }).catch((error) => { for (const slot of slots) slot.replaceWith(h("p", { class: "muted" }, `Chart failed: ${error.message}`)); });
  const maxP99 = Math.max(...operations.map((o) => o.p99Ms || 0));
  operations.sort((a, b) => b.rate - a.rate);
  body.append(card(`Operations (${operations.length})`, h("table", { class: "grid operations-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Operation"), ["Requests/s", "Error rate", "p50", "p95", "p99"].map((t) => h("th", { class: "num" }, t)))),
    h("tbody", {}, operations.map((o) => h("tr", { dataset: { operation: o.operation } },
      h("td", {}, h("a", { href: ctx.href("traces", "", { service: name, operation: o.operation }) }, h("span", { class: `dot ${errorTone(o.errorRatio)}` }), o.operation)),
      h("td", { class: "num" }, rate(o.rate)),
      h("td", { class: `num tone-${errorTone(o.errorRatio)}` }, percent(o.errorRatio)),
      h("td", { class: "num" }, duration(o.p50Ms)), h("td", { class: "num" }, duration(o.p95Ms)),
      h("td", { class: `num tone-${latencyTone(o.p99Ms, maxP99)}` }, duration(o.p99Ms))))))));
  return null;
}
