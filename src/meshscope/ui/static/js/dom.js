// DOM building without HTML parsing: every piece of text goes in through textContent or a
// text node, so telemetry (span names, attributes, log lines) can never become markup.

export function h(tag, props, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "style") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function loading(text = "Loading…") {
  return h("div", { class: "state loading", role: "status" }, h("span", { class: "spinner" }), text);
}

export function empty(text, hint) {
  return h("div", { class: "state empty" }, h("strong", {}, text), hint ? h("p", {}, hint) : null);
}

export function failure(error) {
  return h("div", { class: "state error", role: "alert" },
    h("strong", {}, "Could not load this view"), h("p", {}, String(error?.message || error)));
}

export function kpi(label, value, tone, testId) {
  return h("div", { class: `kpi ${tone || ""}`, dataset: { kpi: testId || label } },
    h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value));
}

export function pageHeader(title, subtitle, ...actions) {
  return h("div", { class: "page-header" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    h("div", { class: "actions" }, actions));
}

export function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", { class: "card-title" }, title) : null, body);
}

export function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

export function select(name, options, value) {
  return h("select", { name },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}
