// Trace view: header numbers, the waterfall (collapsible span tree on a time axis, errors
// marked, critical path highlighted), span details, and the trace's logs.
import { api, authorizedFetch, hasToken } from "../api.js";
import { card, clear, empty, h, kpi, pageHeader } from "../dom.js";
import { clock, dateTime, duration, serviceColor } from "../format.js";
import { isError, parentOf, serviceOf, spanTree, summarize, tagValue } from "../jaeger.js";
import { logTable } from "./logs.js";

const MAX_INDENT = 20;

// With a token, a plain link would open the JSON without it (401): fetch it with the token
// and show it from a blob: URL instead (the token never goes into a URL).
function openWithToken(event) {
  if (!hasToken()) return;
  event.preventDefault();
  const opened = window.open("", "_blank");
  authorizedFetch(event.currentTarget.getAttribute("href"), { Accept: "application/json" })
    .then((response) => response.blob())
    .then((blob) => { if (opened) opened.location = URL.createObjectURL(blob); })
    .catch(() => opened?.close());
}

const HIDDEN_TAGS = new Set(["span.kind", "otel.status_code", "otel.status_description", "error"]);

function kvTable(pairs, emptyText) {
  if (!pairs.length) return h("p", { class: "muted" }, emptyText);
  return h("table", { class: "kv" }, h("tbody", {}, pairs.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, String(v))))));
}

function ticks(totalUs) {
  return [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { class: "tick", style: { left: `${f * 100}%` } }, duration((f * totalUs) / 1000)));
}

function details(trace, span, t0, logs) {
  const status = tagValue(span.tags, "otel.status_code") || (isError(span) ? "ERROR" : "UNSET");
  const message = tagValue(span.tags, "otel.status_description") || "";
  const attrs = (span.tags || []).filter((t) => !HIDDEN_TAGS.has(t.key)).map((t) => [t.key, t.value]);
  const resource = (trace.processes?.[span.processID]?.tags || []).map((t) => [t.key, t.value]);
  const events = span.logs || [];
  const spanLogs = logs.filter((l) => l.spanID === span.spanID);
  return h("div", { class: "wf-details", role: "region", "aria-label": "Span details" },
    h("div", { class: "details-head" },
      h("strong", {}, serviceOf(trace, span), ": ", span.operationName),
      h("span", { class: `badge ${status === "ERROR" ? "bad" : status === "OK" ? "ok" : ""}` }, status),
      h("span", { class: "badge" }, tagValue(span.tags, "span.kind") || "internal")),
    h("div", { class: "details-grid" },
      h("section", {}, h("h3", {}, "Span"), kvTable([
        ["span id", span.spanID], ["parent", parentOf(span) || "–"],
        ["start", `+${duration((span.startTime - t0) / 1000)} (${clock(span.startTime / 1000)})`],
        ["duration", duration(span.duration / 1000)], ["status", message ? `${status}: ${message}` : status]], "")),
      h("section", {}, h("h3", {}, `Attributes (${attrs.length})`), kvTable(attrs, "No attributes.")),
      h("section", {}, h("h3", {}, `Resource (${resource.length})`), kvTable(resource, "No resource attributes.")),
      h("section", {}, h("h3", {}, `Events (${events.length})`), events.length
        ? h("ul", { class: "events" }, events.map((ev) => h("li", {},
          h("span", { class: "mono muted" }, `+${duration((ev.timestamp - t0) / 1000)}`), " ",
          h("strong", {}, String(tagValue(ev.fields, "event") ?? "event")), " ",
          (ev.fields || []).filter((f) => f.key !== "event").map((f) => h("span", { class: "chip" }, `${f.key}=${f.value}`)))))
        : h("p", { class: "muted" }, "No events.")),
      spanLogs.length ? h("section", { class: "wide" }, h("h3", {}, `Logs of this span (${spanLogs.length})`),
        h("ul", { class: "events" }, spanLogs.map((l) => h("li", {}, h("span", { class: `level ${l.severity}` }, l.severity), " ", l.body)))) : null));
}

export async function render(root, ctx) {
  const id = ctx.route.arg;
  // The critical path and the logs are extras: if they fail the trace is still shown, and
  // says what failed (it read as "no logs" and no critical path).
  let statsError = "";
  let logsError = "";
  const [trace, stats, logs] = await Promise.all([
    api.trace(id).catch((error) => { if (error.status === 404) return null; throw error; }),
    api.traceStats(id).catch((error) => { statsError = error.message; return null; }),
    api.traceLogs(id).catch((error) => { logsError = error.message; return []; }),
  ]);
  if (!trace || !trace.spans?.length) {
    root.append(empty(`Trace ${id} was not found.`));
    return null;
  }
  const sum = summarize(trace);
  const t0 = sum.startUs;
  const total = Math.max(sum.durationUs, 1);
  const critical = new Map();
  for (const seg of stats?.criticalPath || []) {
    if (!critical.has(seg.spanID)) critical.set(seg.spanID, []);
    critical.get(seg.spanID).push(seg);
  }
  let showCritical = ctx.route.params.get("critical") !== "off";
  let selected = ctx.route.params.get("span") || "";
  const collapsed = new Set();
  const rows = spanTree(trace);
  // What Jaeger UI flags too: spans naming a parent the trace does not hold (drawn as roots),
  // and spans starting before their parent (the hosts' clocks disagree).
  const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  const orphan = new Set(trace.spans.filter((s) => parentOf(s) && (!byId.has(parentOf(s)) || parentOf(s) === s.spanID)).map((s) => s.spanID));
  const skewed = new Set(trace.spans.filter((s) => byId.has(parentOf(s)) && s.startTime < byId.get(parentOf(s)).startTime).map((s) => s.spanID));

  // The explorer filtered to this trace over the trace's own time (plus a minute each side for
  // logs written just before or after a span): a wide window's newest lines may all be others'.
  const explorer = ctx.href("logs", "", { trace: sum.traceID, from: Math.floor(t0 / 1000) - 60000, to: Math.ceil((t0 + total) / 1000) + 60000 });
  root.append(h("nav", { class: "breadcrumb" }, h("a", { href: ctx.href("traces", "", { service: sum.rootService }) }, "Traces"), h("span", {}, "/"), h("span", { class: "mono" }, sum.traceID)));
  const critButton = h("button", { type: "button", class: "button toggle", "aria-pressed": String(showCritical && !statsError),
    disabled: statsError ? true : null, title: statsError ? `Critical path unavailable: ${statsError}` : null }, "Critical path");
  root.append(pageHeader(h("span", {}, h("span", { style: { color: serviceColor(sum.rootService) } }, sum.rootService), ": ", sum.rootOperation),
    `Trace ${sum.traceID} · started ${dateTime(t0 / 1000)}`,
    critButton,
    h("button", { type: "button", class: "button", onclick: () => { collapsed.clear(); draw(); } }, "Expand all"),
    h("button", { type: "button", class: "button", onclick: () => { rows.forEach((r) => r.childCount && r.depth > 0 && collapsed.add(r.span.spanID)); draw(); } }, "Collapse all"),
    // A real link (to the explorer on this trace's logs) for a new tab or a copied link; a
    // click scrolls to the logs below (it was `#trace-logs`: opened alone, the services view).
    h("a", { class: "button", href: explorer, onclick: (e) => { e.preventDefault(); document.getElementById("trace-logs")?.scrollIntoView({ behavior: "smooth" }); } }, logsError ? "Logs (failed)" : `Logs (${logs.length})`),
    h("a", { class: "button", href: `/api/traces/${encodeURIComponent(sum.traceID)}`, target: "_blank", rel: "noopener", onclick: openWithToken }, "Trace JSON")));
  root.append(h("div", { class: "kpis" },
    kpi("Total latency", duration(sum.durationUs / 1000), "", "latency"),
    kpi("Spans", sum.spanCount, "", "spans"),
    kpi("Errors", sum.errorCount, sum.errorCount ? "bad" : "ok", "errors"),
    kpi("Root service", sum.rootService, "", "root"),
    kpi("Services", sum.services.length, "", "services")));

  const list = h("div", { class: "wf-rows", role: "tree", "aria-label": "Spans" });
  const waterfall = h("section", { class: `card waterfall ${showCritical ? "" : "no-critical"}` },
    h("div", { class: "wf-head" }, h("div", { class: "wf-label" }, "Service & operation"), h("div", { class: "wf-track wf-axis" }, ticks(total))),
    list);
  root.append(waterfall);
  root.append(h("section", { class: "card", id: "trace-logs" }, h("div", { class: "card-title split" }, h("h2", {}, logsError ? "Logs of this trace" : `Logs of this trace (${logs.length})`),
    h("a", { class: "explore-logs", href: explorer }, "This trace's logs in the explorer →")),
    logsError ? h("p", { class: "error-note", role: "alert" }, `Could not load this trace's logs: ${logsError}`)
      : logs.length ? logTable(logs, ctx, { onSpan: (spanID) => select(spanID, true) }) : h("p", { class: "muted" }, "No log records carry this trace id.")));
  const oddities = [
    orphan.size ? `${orphan.size} span${orphan.size > 1 ? "s name a parent" : " names a parent"} not in this trace (shown as ${orphan.size > 1 ? "roots" : "a root"})` : "",
    skewed.size ? `${skewed.size} span${skewed.size > 1 ? "s start" : " starts"} before ${skewed.size > 1 ? "their parents" : "its parent"} (clock skew between hosts?)` : "",
  ].filter(Boolean);
  if (oddities.length) root.querySelector(".kpis")?.after(h("p", { class: "warn-note", dataset: { note: "oddities" } }, `⚠ ${oddities.join("; ")}.`));
  if (statsError) root.querySelector(".kpis")?.after(h("p", { class: "error-note", role: "alert" }, `Could not compute the critical path: ${statsError}`));

  function visibleRows() {
    const out = [];
    let hideBelow = Infinity;
    for (const row of rows) {
      if (row.depth > hideBelow) continue;
      hideBelow = collapsed.has(row.span.spanID) ? row.depth : Infinity;
      out.push(row);
    }
    return out;
  }

  function rowEl(row) {
    const s = row.span;
    const service = serviceOf(trace, s);
    const error = isError(s);
    const left = (100 * (s.startTime - t0)) / total;
    const width = Math.max(0.2, (100 * s.duration) / total);
    const open = !collapsed.has(s.spanID);
    const segs = critical.get(s.spanID) || [];
    const el = h("div", { class: `wf-row ${error ? "error" : ""} ${selected === s.spanID ? "selected" : ""} ${segs.length ? "on-critical" : ""}`,
      role: "treeitem", tabindex: "0", "aria-level": row.depth + 1, "aria-expanded": row.childCount ? String(open) : null,
      "aria-selected": String(selected === s.spanID), dataset: { span: s.spanID },
      onclick: () => select(s.spanID === selected ? "" : s.spanID) },
    // Indented up to MAX_INDENT levels (deeper, 1,000 levels pushed the names out of the
    // column); deeper rows say their depth.
    h("div", { class: "wf-label", style: { paddingLeft: `${8 + Math.min(row.depth, MAX_INDENT) * 16}px` } },
      row.depth > MAX_INDENT ? h("span", { class: "depth-mark", title: `depth ${row.depth}` }, `${row.depth}›`) : null,
      row.childCount
        ? h("button", { type: "button", class: "twisty", tabindex: "-1", "aria-label": open ? "Collapse" : "Expand",
          onclick: (e) => { e.stopPropagation(); toggle(s.spanID); } }, open ? "▾" : "▸")
        : h("span", { class: "twisty-space" }),
      h("span", { class: "svc-chip", style: { background: serviceColor(service) } }),
      h("span", { class: "svc-name", title: service }, service),
      h("span", { class: "op-name" }, s.operationName),
      error ? h("span", { class: "err-mark", title: "error" }, "!") : null,
      orphan.has(s.spanID) ? h("span", { class: "skew-mark", title: `parent ${parentOf(s)} is not in this trace` }, "⚠ no parent") : null,
      skewed.has(s.spanID) ? h("span", { class: "skew-mark", title: "starts before its parent: clock skew between hosts?" }, "⚠ skew") : null,
      !open ? h("span", { class: "hidden-count" }, `+${row.childCount}`) : null),
    h("div", { class: "wf-track" },
      h("div", { class: `wf-bar ${error ? "error" : ""}`, style: { left: `${left}%`, width: `${width}%`, background: error ? "" : serviceColor(service) } }),
      segs.map((c) => h("div", { class: "wf-crit", title: "critical path",
        style: { left: `${(100 * (c.start - t0)) / total}%`, width: `${Math.max(0.2, (100 * (c.end - c.start)) / total)}%` } })),
      h("span", { class: "wf-dur", style: left + width > 82 ? { right: `${100 - left + 0.5}%` } : { left: `${left + width + 0.5}%` } }, duration(s.duration / 1000))));
    return el;
  }

  function draw(focusID) {
    clear(list);
    for (const row of visibleRows()) {
      list.append(rowEl(row));
      if (row.span.spanID === selected) list.append(details(trace, row.span, t0, logs));
    }
    const target = focusID && list.querySelector(`[data-span="${CSS.escape(focusID)}"]`);
    if (target) target.focus();
  }

  function toggle(spanID) {
    if (collapsed.has(spanID)) collapsed.delete(spanID); else collapsed.add(spanID);
    draw(spanID);
  }

  // The URL shares the selected span and the critical-path toggle.
  const share = () => history.replaceState(null, "", ctx.withParams({ span: selected || null, critical: showCritical ? null : "off" }));
  const rowOf = (spanID) => (spanID ? list.querySelector(`[data-span="${CSS.escape(spanID)}"]`) : null);

  // Selecting changes two rows and the details in place: redrawing every row took ~3 s per
  // click or key in a 10,000-span trace. Only opening collapsed ancestors redraws.
  function select(spanID, reveal) {
    const before = selected;
    selected = spanID;
    let opened = false;
    if (reveal) {  // open every collapsed ancestor
      const parents = new Map(rows.map((r) => [r.span.spanID, r.parentID]));
      for (let p = parents.get(spanID); p; p = parents.get(p)) opened = collapsed.delete(p) || opened;
    }
    share();
    const target = rowOf(spanID);
    if (opened || (spanID && !target)) {
      draw(spanID);
    } else {
      const old = rowOf(before);
      if (old) {
        old.classList.remove("selected");
        old.setAttribute("aria-selected", "false");
        if (old.nextElementSibling?.classList.contains("wf-details")) old.nextElementSibling.remove();
      }
      if (target) {
        target.classList.add("selected");
        target.setAttribute("aria-selected", "true");
        const row = rows.find((r) => r.span.spanID === spanID);
        target.after(details(trace, row.span, t0, logs));
        target.focus();
      }
    }
    if (reveal) rowOf(spanID)?.scrollIntoView({ block: "center" });
  }

  critButton.addEventListener("click", () => {
    showCritical = !showCritical;
    critButton.setAttribute("aria-pressed", String(showCritical));
    waterfall.classList.toggle("no-critical", !showCritical);  // the segments are always drawn
    share();
  });
  list.addEventListener("keydown", (e) => {
    const row = e.target.closest?.(".wf-row");
    if (!row) return;
    const id = row.dataset.span;
    const info = rows.find((r) => r.span.spanID === id);
    const step = (dir) => {
      const all = [...list.querySelectorAll(".wf-row")];
      all[all.indexOf(row) + dir]?.focus();
    };
    if (e.key === "ArrowDown") step(1);
    else if (e.key === "ArrowUp") step(-1);
    else if (e.key === "ArrowLeft") { if (info.childCount && !collapsed.has(id)) toggle(id); else if (info.parentID) list.querySelector(`[data-span="${CSS.escape(info.parentID)}"]`)?.focus(); }
    else if (e.key === "ArrowRight") { if (collapsed.has(id)) toggle(id); }
    else if (e.key === "Enter" || e.key === " ") select(id === selected ? "" : id);
    else return;
    e.preventDefault();
  });
  const onEscape = () => {  // keyboard focus stays on the row (it went to the page: ↑ ↓ stopped)
    if (!selected) return;
    const row = selected;
    select("");
    rowOf(row)?.focus();
  };
  document.addEventListener("meshscope:escape", onEscape);
  draw();
  if (selected) list.querySelector(`[data-span="${CSS.escape(selected)}"]`)?.scrollIntoView({ block: "center" });
  return () => document.removeEventListener("meshscope:escape", onEscape);
}
