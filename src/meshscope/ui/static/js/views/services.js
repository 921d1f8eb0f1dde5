// Services overview: golden signals of every service's server spans over the time range.
import { api, stepFor } from "../api.js";
import { sparkline } from "../charts.js";
import { clear, empty, h, loading, pageHeader } from "../dom.js";
import { COLORS, burn, dateTime, duration, errorTone, latencyTone, nines, percent, percentileNote, rate } from "../format.js";


// Per-service series of a PromQL `sum by (service_name)` query: name -> values.
async function perService(query, range, step) {
  try {
    const { xs, series } = await api.promRange(query, range.start, range.end, step);
    const out = new Map(series.map((s) => [s.metric.service_name || s.metric.job || "", s.values]));
    return { xs, out };
  } catch {
    return { xs: [], out: new Map() };
  }
}

// Sparkline data: RED per interval from /api/meshscope/red/range (a counter lookup per
// interval boundary, fast over a day), and CPU saturation from PromQL where it is scraped.
async function redTrends(range, steps) {
  try {
    const { times, series } = await api.redRange({ start: range.start, end: range.end, steps });
    const xs = times.map((t) => t / 1000);
    const pick = (f) => ({ xs, out: new Map(series.map((s) => [s.service, f(s)])) });
    return {
      calls: pick((s) => s.rate),
      errorRatio: pick((s) => s.errorRatio),
      p99: pick((s) => s.p99Ms),
    };
  } catch (error) {
    const none = { xs: [], out: new Map() };
    return { calls: none, errorRatio: none, p99: none, error: error.message };
  }
}

export async function trends(range) {
  const { step, window } = stepFor(range, 40);
  const [red, cpu] = await Promise.all([
    redTrends(range, 40),
    perService(`sum by (service_name, job) (rate(process_cpu_seconds_total[${window}]))`, range, step),
  ]);
  return { ...red, cpu };
}

const COLUMNS = [
  ["service", "Service"], ["rate", "Requests/s"], ["errorRatio", "Error rate"],
  ["p50Ms", "p50"], ["p95Ms", "p95"], ["p99Ms", "p99"],
];

export async function render(root, ctx) {
  const { range, route } = ctx;
  const sort = route.params.get("sort") || "rate";
  const dir = route.params.get("dir") === "asc" ? "asc" : "desc";
  const filterText = route.params.get("filter") || "";
  root.append(pageHeader("Services", `Golden signals of server spans · ${range.label}`));
  const body = h("div", {}, loading());
  root.append(body);
  // The numbers first (RED from the span-metric histograms is fast); the sparklines' PromQL
  // range queries fill in afterwards (`data-complete` on the page when they are drawn).
  const rows = await api.red({ start: range.start, end: range.end, groupBy: "service" });
  clear(body);
  if (!rows.length) {
    body.append(empty("No service has reported server spans in this range.",
      "Send OTLP traces to port 4318 (HTTP) or 4317 (gRPC), or widen the time range."));
    return;
  }
  const none = { xs: [], out: new Map() };
  const section = h("section", { class: "card" });
  body.append(section);
  api.alerts().then((alerts) => {
    if (root.isConnected && alerts.length) section.after(alertCard(alerts, ctx));
  }, () => {});
  api.slos({ time: range.end }).then((slos) => {
    if (root.isConnected && slos.length) body.append(sloCard(slos, ctx));
  }, () => {});
  const draw = (trend) => drawTable(section, rows, trend, ctx, { sort, dir, filterText });
  draw({ calls: none, errorRatio: none, p99: none, cpu: none, pending: true });
  trends(range).then((trend) => {
    if (!root.isConnected) return;
    draw(trend);
    // Empty sparklines would read as "no traffic": say they failed (the numbers stand).
    if (trend.error) section.prepend(h("p", { class: "error-note", role: "alert" }, `Trends could not be loaded: ${trend.error}`));
    root.dataset.complete = "1";
  });
  return null;
}

function drawTable(section, rows, trend, ctx, { sort, dir, filterText }) {
  const cpuKnown = trend.cpu.out.size > 0;
  // Saturation: the median of the CPU rate over the range (robust to the range's ragged edges).
  const cpuNow = (name) => {
    const values = (trend.cpu.out.get(name) || []).filter((v) => v !== null).sort((a, b) => a - b);
    return values.length ? values[Math.floor(values.length / 2)] : null;
  };
  const key = (r) => (sort === "service" ? r.service : sort === "cpu" ? cpuNow(r.service) ?? -1 : r[sort] ?? -1);
  rows.sort((a, b) => {
    const x = key(a); const y = key(b);
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return dir === "asc" ? order : -order;
  });
  const maxP99 = Math.max(...rows.map((r) => r.p99Ms || 0));
  const spark = (xs, values, color) => (trend.pending ? h("div", { class: "spark spark-loading" }) : sparkline(xs, values, color));
  const totals = rows.reduce((t, r) => ({ calls: t.calls + r.calls, errors: t.errors + r.errors, rate: t.rate + r.rate }), { calls: 0, errors: 0, rate: 0 });
  const burning = rows.filter((r) => errorTone(r.errorRatio) === "bad").length;
  const kpis = (h("div", { class: "kpis" },
    h("div", { class: "kpi", dataset: { kpi: "services" } }, h("div", { class: "kpi-label" }, "Services"), h("div", { class: "kpi-value" }, rows.length)),
    h("div", { class: "kpi", dataset: { kpi: "rate" } }, h("div", { class: "kpi-label" }, "Requests/s"), h("div", { class: "kpi-value" }, rate(totals.rate))),
    h("div", { class: `kpi ${errorTone(totals.calls ? totals.errors / totals.calls : 0)}`, dataset: { kpi: "errors" } }, h("div", { class: "kpi-label" }, "Error rate"), h("div", { class: "kpi-value" }, percent(totals.calls ? totals.errors / totals.calls : 0))),
    h("div", { class: `kpi ${burning ? "bad" : "ok"}`, dataset: { kpi: "burning" } }, h("div", { class: "kpi-label" }, "Services over 1% errors"), h("div", { class: "kpi-value" }, burning))));
  section.previousElementSibling?.classList.contains("kpis") ? section.previousElementSibling.replaceWith(kpis) : section.before(kpis);

  const filter = h("input", { type: "search", placeholder: "Filter services…  ( / )", value: filterText, "aria-label": "Filter services",
    oninput: (e) => {
      const text = e.target.value.toLowerCase();
      for (const tr of section.querySelector("table").tBodies[0].rows) tr.hidden = !tr.dataset.service.toLowerCase().includes(text);
      history.replaceState(null, "", ctx.withParams({ filter: e.target.value || null }));
    } });
  const header = (col, label) => {
    const active = sort === col;
    const next = active && dir === "desc" ? "asc" : "desc";
    return h("th", { class: col === "service" ? "" : "num", "aria-sort": active ? (dir === "asc" ? "ascending" : "descending") : "none" },
      h("a", { class: `sort ${active ? "active" : ""}`, href: ctx.withParams({ sort: col, dir: next }) }, label, h("span", { class: "sort-mark" }, active ? (dir === "asc" ? " ▲" : " ▼") : "")));
  };
  const table = h("table", { class: "grid services-table" },
    h("thead", {}, h("tr", {}, COLUMNS.map(([c, l]) => header(c, l)), cpuKnown ? header("cpu", "CPU cores") : null)),
    h("tbody", {}, rows.map((r) => {
      const calls = trend.calls.out.get(r.service) || [];
      const tone = errorTone(r.errorRatio);
      const cpu = cpuNow(r.service);
      return h("tr", { dataset: { service: r.service }, hidden: Boolean(filterText) && !r.service.toLowerCase().includes(filterText.toLowerCase()) },
        h("td", {}, r.service === ""
          // Past the span metrics' cap of overflow series: services counted together.
          ? h("span", { class: "overflow", title: "otel_metric_overflow=\"true\" without a service: raise pipeline.max_series_per_metric" },
            h("span", { class: `dot ${tone}` }), "other services (series cap reached)")
          : h("a", { class: "service-link", href: ctx.href("service", r.service), title: r.service },
            h("span", { class: `dot ${tone}` }), r.service)),
        h("td", { class: "num", dataset: { col: "rate" } }, h("div", { class: "cell-spark" },
          spark(trend.calls.xs, calls, COLORS.accent), h("span", {}, rate(r.rate)))),
        h("td", { class: `num tone-${tone}`, dataset: { col: "errorRatio" } }, h("div", { class: "cell-spark" },
          spark(trend.calls.xs, trend.errorRatio.out.get(r.service) || [], COLORS.bad),
          h("span", {}, percent(r.errorRatio)))),
        h("td", { class: "num", dataset: { col: "p50Ms" } }, duration(r.p50Ms)),
        h("td", { class: "num", dataset: { col: "p95Ms" } }, duration(r.p95Ms)),
        h("td", { class: `num tone-${latencyTone(r.p99Ms, maxP99)}`, dataset: { col: "p99Ms" } }, h("div", { class: "cell-spark" },
          spark(trend.p99.xs, trend.p99.out.get(r.service) || [], COLORS.warn), h("span", {}, duration(r.p99Ms)))),
        cpuKnown ? h("td", { class: "num", dataset: { col: "cpu" } }, h("div", { class: "cell-spark" },
          spark(trend.cpu.xs, trend.cpu.out.get(r.service) || [], COLORS.muted), h("span", {}, cpu === null ? "–" : cpu.toFixed(2)))) : null);
    })));
  const note = percentileNote(rows);
  for (const th of table.tHead.rows[0].cells) if (/^p\d/.test(th.textContent)) th.title = note;
  clear(section).append(h("div", { class: "toolbar" }, filter,
    h("span", { class: "muted" }, "Click a service for its charts and operations; a column header sorts.")), table,
    note ? h("p", { class: "footnote", dataset: { note: "percentiles" } }, note) : null);
}

// Configured SLOs at the range's end: SLI over each SLO's window, error budget left, burn-rate
// state (ok, ticket, page), and a link to the traces of its bad events.
const STATE_TONE = { ok: "ok", ticket: "warn", page: "bad" };

function sloCard(slos, ctx) {
  const budget = (r) => (r <= 0 ? "exhausted" : percent(r));
  return h("section", { class: "card slos" }, h("h2", { class: "card-title" }, "SLOs"),
    h("table", { class: "grid slo-table" },
      h("thead", {}, h("tr", {}, ["SLO", "Service", "SLI", "Objective", "Window", "Budget left", "Burn 1h", "State", ""]
        .map((label, i) => h("th", { class: i > 1 && i < 7 ? "num" : "" }, label)))),
      h("tbody", {}, slos.map((s) => h("tr", { dataset: { slo: s.name } },
        h("td", {}, s.name, h("span", { class: "muted" }, ` ${s.sli}${s.thresholdMs !== null ? ` ≤ ${duration(s.thresholdMs)}` : ""}`)),
        h("td", {}, h("a", { href: ctx.href("service", s.service) }, s.service)),
        h("td", { class: "num", dataset: { col: "sli" } }, nines(s.value)),
        h("td", { class: "num" }, nines(s.objective)),
        h("td", { class: "num" }, s.window),
        h("td", { class: `num tone-${s.errorBudget.remaining <= 0 ? "bad" : "ok"}`, dataset: { col: "budget" } }, budget(s.errorBudget.remaining)),
        h("td", { class: "num", dataset: { col: "burn" } }, burn(s.burnRates[0].long)),
        h("td", { dataset: { col: "state" } }, h("span", { class: `badge ${STATE_TONE[s.state]}` }, s.state)),
        h("td", {}, h("a", { class: "slo-traces", href: ctx.href("traces", "", s.traces) }, "Bad traces")))))));
}

// The rule files' alerts as the rule evaluator holds them now (firing first), whatever the
// time range: the alert, its state, the service it names and a link to that service's traces.
const ALERT_TONE = { firing: "bad", pending: "warn" };

function alertCard(alerts, ctx) {
  const ordered = [...alerts].sort((a, b) => (a.state === b.state ? 0 : a.state === "firing" ? -1 : 1));
  return h("section", { class: "card alerts" }, h("h2", { class: "card-title" }, "Alerts"),
    h("table", { class: "grid alert-table" },
      h("thead", {}, h("tr", {}, ["Alert", "State", "Service", "Summary", "Active since", ""].map((label) => h("th", {}, label)))),
      h("tbody", {}, ordered.map((a) => {
        const service = a.labels.service_name || a.labels.service || "";
        return h("tr", { dataset: { alert: a.labels.alertname } },
          h("td", {}, a.labels.alertname),
          h("td", { dataset: { col: "state" } }, h("span", { class: `badge ${ALERT_TONE[a.state] || ""}` }, a.state)),
          h("td", {}, service ? h("a", { href: ctx.href("service", service) }, service) : ""),
          h("td", { dataset: { col: "summary" } }, a.annotations.summary || a.annotations.description || ""),
          h("td", {}, dateTime(Date.parse(a.activeAt))),
          h("td", {}, service ? h("a", { class: "alert-traces", href: ctx.href("traces", "", { service }) }, "Traces") : ""));
      }))));
}
