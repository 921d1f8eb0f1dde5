// Trace search: service, operation, tags, durations, status over the time range; results as
// a duration-over-time scatter and a list.
import { api } from "../api.js";
import { durationScatter } from "../charts.js";
import { card, clear, empty, field, h, loading, pageHeader, select } from "../dom.js";
import { clock, dateTime, duration, serviceColor, shortId } from "../format.js";
import { summarize } from "../jaeger.js";

// `key=value key2="a b"` -> {key: value, key2: "a b"}.
export function parseTags(text) {
  const tags = {};
  const re = /([^\s=]+)=("([^"]*)"|\S*)/g;
  let m;
  while ((m = re.exec(text || ""))) tags[m[1]] = m[3] !== undefined ? m[3] : m[2];
  return tags;
}

export async function render(root, ctx) {
  const { range } = ctx;
  const p = ctx.route.params;
  const services = await api.services();
  // No default service: the search needs one (Jaeger's API has no "all services"), so until
  // the URL names one the form asks for it. A service no longer reported keeps its option.
  const service = p.get("service") || "";
  const choices = service && !services.includes(service) ? [...services, service] : services;
  const operations = service ? await api.operations(service).catch(() => []) : [];
  const form = h("form", { class: "search-form card", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const changes = {};
    for (const key of ["service", "operation", "tags", "minDuration", "maxDuration", "status", "limit"]) changes[key] = (data.get(key) || "").trim() || null;
    if (changes.service !== service) changes.operation = changes.operation && operations.includes(changes.operation) ? changes.operation : null;
    ctx.navigate(ctx.withParams(changes));
  } },
    field("Service", select("service", [["", "Choose a service…"], ...choices.map((s) => [s, s])], service)),
    field("Operation", select("operation", [["", "All operations"], ...operations.sort().map((o) => [o, o])], p.get("operation") || "")),
    field("Tags", h("input", { name: "tags", placeholder: "http.status_code=500 customer.tier=gold", value: p.get("tags") || "" })),
    field("Min duration", h("input", { name: "minDuration", placeholder: "e.g. 100ms", value: p.get("minDuration") || "", size: 8 })),
    field("Max duration", h("input", { name: "maxDuration", placeholder: "e.g. 2s", value: p.get("maxDuration") || "", size: 8 })),
    field("Status", select("status", [["", "Any"], ["error", "Error"]], p.get("status") || "")),
    field("Limit", select("limit", ["20", "50", "100", "500"].map((v) => [v, v]), p.get("limit") || "50")),
    h("button", { type: "submit", class: "primary" }, "Find traces"));
  form.querySelector("select[name=service]").addEventListener("change", () => form.requestSubmit());
  root.append(pageHeader("Traces", `Search · ${range.label}`), form);
  const body = h("div", {}, loading("Searching…"));
  root.append(body);
  if (!service) {
    clear(body).append(services.length
      ? empty("Choose a service to search its traces.", `${services.length} service${services.length === 1 ? "" : "s"} reported spans.`)
      : empty("No services yet.", "Traces appear here once spans are received."));
    return null;
  }
  const tags = parseTags(p.get("tags"));
  if (p.get("status") === "error") tags.error = "true";
  const found = await api.traces({
    service, operation: p.get("operation") || "",
    tags: Object.keys(tags).length ? JSON.stringify(tags) : "",
    minDuration: p.get("minDuration") || "", maxDuration: p.get("maxDuration") || "",
    start: range.start * 1000, end: range.end * 1000, limit: p.get("limit") || 50,
  });
  clear(body);
  const rows = found.map(summarize).sort((a, b) => b.startUs - a.startUs);
  if (!rows.length) {
    body.append(empty("No traces match.", "Loosen the filters or widen the time range."));
    return null;
  }
  const open = (id) => ctx.navigate(ctx.href("trace", id));
  const errors = rows.filter((r) => r.errorCount).length;
  const maxDuration = Math.max(...rows.map((r) => r.durationUs));
  body.append(card(null, h("div", { class: "result-head" },
    h("strong", { class: "result-count" }, `${rows.length} trace${rows.length === 1 ? "" : "s"}`),
    h("span", { class: "muted" }, `${errors} with errors · newest first · click a point or row`)),
  durationScatter(rows.map((r) => ({ x: r.startUs / 1e6, y: r.durationUs / 1000, error: r.errorCount > 0, id: r.traceID,
    label: `${r.rootService}: ${r.rootOperation}` })), (pt) => open(pt.id))));
  body.append(h("section", { class: "card" }, h("table", { class: "grid traces-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Trace"), h("th", {}, "Started"), h("th", {}, "Duration"), h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Errors"), h("th", {}, "Services"))),
    h("tbody", {}, rows.map((r) => h("tr", { class: r.errorCount ? "has-error" : "", dataset: { trace: r.traceID } },
      h("td", {}, h("a", { class: "trace-link", href: ctx.href("trace", r.traceID) },
        h("span", { class: "root-service", style: { color: serviceColor(r.rootService) } }, r.rootService), ": ",
        h("span", { class: "root-op" }, r.rootOperation)), h("div", { class: "mono muted trace-id", title: r.traceID }, shortId(r.traceID))),
      h("td", { title: dateTime(r.startUs / 1000) }, clock(r.startUs / 1000)),
      h("td", { class: "duration-cell" }, h("div", { class: "mini-bar" }, h("div", { class: r.errorCount ? "bad" : "", style: { width: `${Math.max(2, (100 * r.durationUs) / maxDuration)}%` } })),
        h("span", { class: "num" }, duration(r.durationUs / 1000))),
      h("td", { class: "num", dataset: { col: "spans" } }, r.spanCount),
      h("td", { class: `num ${r.errorCount ? "tone-bad" : "muted"}`, dataset: { col: "errors" } }, r.errorCount),
      h("td", {}, r.services.map((s) => h("span", { class: "chip", style: { borderColor: serviceColor(s) } }, s)))))))));
  return null;
}
