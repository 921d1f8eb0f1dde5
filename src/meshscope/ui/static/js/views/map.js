// Service map: the dependency graph laid out left to right by dagre (cytoscape-dagre),
// edges labelled with rate / errors / p99; problem edges in red. Click -> traces.
import { api } from "../api.js";
import { card, clear, empty, h, loading, pageHeader } from "../dom.js";
import { COLORS, duration, errorTone, percent, rate } from "../format.js";

const TONE = { ok: "#94a3b8", warn: COLORS.warn, bad: COLORS.bad };

function edgeTone(e, slowP99) {
  if (e.errorRatio >= 0.01) return "bad";
  if (e.errors > 0 || (e.p99Ms !== null && e.p99Ms >= slowP99)) return "warn";
  return "ok";
}

function edgeLabel(e) {
  return `${rate(e.rate)}/s · ${percent(e.errorRatio)} err · p99 ${duration(e.p99Ms)}`;
}

export async function render(root, ctx) {
  const { range } = ctx;
  const focus = ctx.route.params.get("focus") || "";
  root.append(pageHeader("Service map", `Calls between services · ${range.label}`,
    h("div", { class: "legend" }, h("span", { class: "swatch ok" }), "healthy", h("span", { class: "swatch warn" }), "some errors or slow",
      h("span", { class: "swatch bad" }), "≥ 1% errors")));
  const body = h("div", {}, loading());
  root.append(body);
  const [graph, red, services] = await Promise.all([
    api.graph({ start: range.start, end: range.end }),
    api.red({ start: range.start, end: range.end }),
    api.services(),
  ]);
  clear(body);
  if (!graph.edges.length && !graph.nodes.length) {
    body.append(empty("No calls between services in this range.", "The map is drawn from the service-graph metrics derived from traces."));
    return null;
  }
  const known = new Set(services);
  const redOf = new Map(red.map((r) => [r.service, r]));
  // An edge's traces: searched in the called service when it reports spans, else in the caller.
  const traceLink = (e) => ctx.href("traces", "", { service: known.has(e.target) ? e.target : e.source });
  const p99s = graph.edges.map((e) => e.p99Ms || 0).sort((a, b) => a - b);
  const slowP99 = Math.max(500, p99s[Math.floor(p99s.length * 0.9)] || 0);
  const canvas = h("div", { class: "map-canvas", id: "map-canvas", role: "img", "aria-label": "Service dependency graph" });
  body.append(h("section", { class: "card map-card" }, canvas));
  const elements = [
    ...graph.nodes.map((n) => {
      const r = redOf.get(n);
      const tone = r ? errorTone(r.errorRatio) : "ok";
      const sub = r ? `${rate(r.rate)} req/s · ${percent(r.errorRatio)}` : known.has(n) ? "" : "external";
      return { data: { id: n, label: sub ? `${n}\n${sub}` : n, tone, color: TONE[tone], virtual: known.has(n) ? 0 : 1 } };
    }),
    ...graph.edges.map((e, i) => {
      const tone = edgeTone(e, slowP99);
      return { data: { id: `e${i}`, source: e.source, target: e.target, label: edgeLabel(e), tone, color: TONE[tone], width: tone === "ok" ? 1.6 : 2.6 } };
    }),
  ];
  const cy = window.cytoscape({
    container: canvas, elements, wheelSensitivity: 0.3, minZoom: 0.2, maxZoom: 2.5,
    style: [
      { selector: "node", style: { shape: "round-rectangle", width: 150, height: 48, "background-color": "#ffffff",
        "border-width": 2, "border-color": "data(color)", label: "data(label)", "text-wrap": "wrap", "text-valign": "center",
        "font-family": "Inter, system-ui, sans-serif", "font-size": 12, color: "#0f172a", "text-max-width": 140 } },
      { selector: "node[virtual = 1]", style: { shape: "barrel", "background-color": "#f1f5f9", "border-style": "dashed", color: "#475569" } },
      { selector: "node:selected", style: { "border-width": 3, "border-color": COLORS.accent } },
      { selector: "edge", style: { width: "data(width)", "line-color": "data(color)", "target-arrow-color": "data(color)",
        "target-arrow-shape": "triangle", "curve-style": "bezier", label: "data(label)", "font-size": 10,
        "font-family": "Inter, system-ui, sans-serif", color: "#334155", "text-background-color": "#ffffff",
        "text-background-opacity": 0.9, "text-background-padding": 3, "text-rotation": "autorotate" } },
      { selector: "edge[tone = 'bad']", style: { color: COLORS.bad, "font-weight": 600 } },
      { selector: ".dim", style: { opacity: 0.25 } },
    ],
    layout: { name: "dagre", rankDir: "LR", nodeSep: 40, rankSep: 190, edgeSep: 20, padding: 24 },
  });
  if (focus && cy.getElementById(focus).nonempty()) {
    const hood = cy.getElementById(focus).closedNeighborhood();
    cy.elements().not(hood).addClass("dim");
    cy.getElementById(focus).select();
  }
  cy.on("tap", "node", (evt) => {
    const id = evt.target.id();
    ctx.navigate(ctx.href("traces", "", { service: known.has(id) ? id : "" }));
  });
  cy.on("tap", "edge", (evt) => ctx.navigate(traceLink(graph.edges[Number(evt.target.id().slice(1))])));
  cy.on("mouseover", "node, edge", () => { canvas.style.cursor = "pointer"; });
  cy.on("mouseout", "node, edge", () => { canvas.style.cursor = ""; });
  window.meshscope = { ...(window.meshscope || {}), cy };

  const edges = [...graph.edges].sort((a, b) => b.errorRatio - a.errorRatio || b.rate - a.rate);
  body.append(card("Edges", h("table", { class: "grid edges-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Caller → callee"), ["Calls", "Errors", "Requests/s", "Error rate", "p99 (server)"].map((t) => h("th", { class: "num" }, t)))),
    h("tbody", {}, edges.map((e) => {
      const tone = edgeTone(e, slowP99);
      return h("tr", { class: `edge-${tone}`, dataset: { edge: `${e.source}->${e.target}` } },
        h("td", {}, h("a", { href: traceLink(e) }, h("span", { class: `dot ${tone}` }), e.source, h("span", { class: "arrow" }, " → "), e.target)),
        h("td", { class: "num" }, Math.round(e.calls).toLocaleString("en-US")),
        h("td", { class: "num" }, Math.round(e.errors).toLocaleString("en-US")),
        h("td", { class: "num" }, rate(e.rate)),
        h("td", { class: `num tone-${errorTone(e.errorRatio)}` }, percent(e.errorRatio)),
        h("td", { class: "num" }, duration(e.p99Ms)));
    })))));
  return () => cy.destroy();
}
