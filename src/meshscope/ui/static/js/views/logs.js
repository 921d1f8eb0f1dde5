// Logs explorer: by trace, service, minimum severity, text and time; newest first; each line
// linked to its trace (and span).
import { api } from "../api.js";
import { card, clear, empty, field, h, loading, pageHeader, select } from "../dom.js";
import { clock, dateTime, serviceColor, shortId } from "../format.js";

// A table of log records (objects of /api/meshscope/logs or the logs of a trace).
export function logTable(logs, ctx, { onSpan } = {}) {
  return h("table", { class: "grid logs-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Service"), h("th", {}, "Level"), h("th", {}, "Message"), h("th", {}, "Trace"))),
    h("tbody", {}, logs.map((l) => {
      const ms = Number(BigInt(l.timeUnixNano) / 1000000n);
      const attrs = Object.entries(l.attributes || {}).filter(([k]) => k !== "log.type").slice(0, 6);
      return h("tr", { class: `log-row level-${l.severity}`, dataset: { trace: l.traceID || "" } },
        h("td", { class: "mono nowrap", title: `${dateTime(ms)} (${l.time})` }, clock(ms)),
        h("td", { class: "nowrap" }, h("span", { class: "svc-chip", style: { background: serviceColor(l.service) } }), l.service),
        h("td", {}, h("span", { class: `level ${l.severity}` }, l.severity)),
        h("td", { class: "log-body" }, h("span", { class: "body-text" }, l.body),
          attrs.map(([k, v]) => h("span", { class: "chip attr" }, `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`))),
        h("td", { class: "nowrap" }, l.traceID
          ? (onSpan && l.spanID
            ? h("a", { href: ctx.withParams({ span: l.spanID }), class: "mono span-link", title: l.spanID, onclick: (e) => { e.preventDefault(); onSpan(l.spanID); } }, `span ${shortId(l.spanID)}`)
            : h("a", { class: "mono trace-link", title: l.traceID, href: ctx.href("trace", l.traceID, l.spanID ? { span: l.spanID } : {}) }, shortId(l.traceID)))
          : h("span", { class: "muted" }, "–")));
    })));
}

export async function render(root, ctx) {
  const { range } = ctx;
  const p = ctx.route.params;
  const services = await api.services();
  const form = h("form", { class: "search-form card", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    ctx.navigate(ctx.withParams({ service: data.get("service"), severity: data.get("severity"), q: data.get("q"), limit: data.get("limit") }));
  } },
    field("Service", select("service", [["", "All services"], ...services.map((s) => [s, s])], p.get("service") || "")),
    field("Severity", select("severity", [["", "Any"], ["debug", "Debug and above"], ["info", "Info and above"], ["warn", "Warn and above"], ["error", "Error and above"]], p.get("severity") || "")),
    h("label", { class: "field grow" }, h("span", {}, "Text"), h("input", { name: "q", type: "search", placeholder: "Text the message contains (case-sensitive)", value: p.get("q") || "" })),
    field("Limit", select("limit", ["100", "200", "500", "2000"].map((v) => [v, v]), p.get("limit") || "200")),
    h("button", { type: "submit", class: "primary" }, "Search logs"));
  for (const name of ["service", "severity"]) form.querySelector(`select[name=${name}]`).addEventListener("change", () => form.requestSubmit());
  const trace = p.get("trace") || "";
  root.append(pageHeader("Logs", `Newest first · ${range.label}`), form);
  if (trace) {
    root.append(h("p", { class: "trace-filter" }, "Only the logs of trace ",
      h("a", { class: "mono chip", href: ctx.href("trace", trace) }, shortId(trace)), " ",
      h("a", { class: "clear-trace", href: ctx.withParams({ trace: null }) }, "show all traces")));
  }
  const body = h("div", {}, loading());
  root.append(body);
  const logs = await api.logs({ trace, service: p.get("service") || "", severity: p.get("severity") || "", q: p.get("q") || "",
    start: range.start, end: range.end, limit: p.get("limit") || 200 });
  clear(body);
  if (!logs.length) {
    body.append(empty("No log records match.", "Loosen the filters or widen the time range."));
    return null;
  }
  const withTrace = logs.filter((l) => l.traceID).length;
  body.append(card(null, h("div", { class: "result-head" }, h("strong", { class: "result-count" }, `${logs.length} record${logs.length === 1 ? "" : "s"}`),
    h("span", { class: "muted" }, `${withTrace} linked to a trace`)), logTable(logs, ctx)));
  return null;
}
