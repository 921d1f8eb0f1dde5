// The single-page shell: hash router, time picker, keyboard shortcuts.
import { api, forgetToken, hasToken, pickTenant, pickedTenant } from "./api.js";
import { destroyCharts } from "./charts.js";
import { clear, failure, h } from "./dom.js";
import { PRESETS, href, parseHash, timeRange, withParams } from "./state.js";
import * as logs from "./views/logs.js";
import * as map from "./views/map.js";
import * as service from "./views/service.js";
import * as services from "./views/services.js";
import * as trace from "./views/trace.js";
import * as traces from "./views/traces.js";

const VIEWS = { services, service, map, traces, trace, logs };
const NAV = { service: "services", trace: "traces" };
const main = document.getElementById("view");
let cleanup = null;

function navigate(link) {
  if (location.hash === link) render();
  else location.hash = link;
}

function renderTimePicker(route, range) {
  const box = clear(document.getElementById("timepicker"));
  const options = PRESETS.map(([key, , label]) => h("option", { value: key, selected: !range.absolute && key === range.key }, label));
  if (range.absolute) options.unshift(h("option", { value: "", selected: true }, range.label));
  const picker = h("select", { "aria-label": "Time range", id: "range", onchange: (e) => {
    if (e.target.value) navigate(withParams(route, { range: e.target.value, from: null, to: null }));
  } }, options);
  box.append(h("span", { class: "clock-icon", "aria-hidden": "true" }, "◷"), picker);
}

// Warnings of the answers behind the current view (api.js `meshscope:partial`).
const partial = document.getElementById("partial");
const partialTexts = new Set();
document.addEventListener("meshscope:partial", (event) => {
  for (const text of event.detail) partialTexts.add(text);
  partial.textContent = `Partial answer: ${[...partialTexts].join("; ")}`;
  partial.hidden = false;
});

async function render() {
  delete document.body.dataset.ready;
  partialTexts.clear();
  partial.hidden = true;
  const route = parseHash(location.hash);
  const view = VIEWS[route.view] || services;
  const range = timeRange(route.params);
  if (cleanup) cleanup();
  cleanup = null;
  destroyCharts();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === (NAV[route.view] || route.view));
    a.href = href(route, a.dataset.view, "");
  }
  renderTimePicker(route, range);
  const root = h("div", { class: `page page-${route.view}` });
  clear(main).append(root);
  const ctx = {
    route, range,
    href: (v, arg, params) => href(route, v, arg, params),
    withParams: (changes) => withParams(route, changes),
    navigate,
    zoom: (from, to) => navigate(withParams(route, { from, to, range: null })),
  };
  try {
    cleanup = (await view.render(root, ctx)) || null;
  } catch (error) {
    if (root.isConnected) clear(root).append(failure(error));
    console.error(error);
  }
  if (root.isConnected) document.body.dataset.ready = route.view;
}

let pendingG = false;
document.addEventListener("keydown", (e) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) || e.target.isContentEditable;
  if (e.key === "Escape") {
    if (typing) e.target.blur();
    document.dispatchEvent(new CustomEvent("meshscope:escape"));
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const route = parseHash(location.hash);
  if (pendingG) {
    pendingG = false;
    const view = { s: "services", m: "map", t: "traces", l: "logs" }[e.key];
    if (view) { e.preventDefault(); navigate(href(route, view, "")); }
    return;
  }
  if (e.key === "g") { pendingG = true; setTimeout(() => { pendingG = false; }, 1200); }
  else if (e.key === "/") {
    const first = main.querySelector("input, select");
    if (first) { e.preventDefault(); first.focus(); }
  } else if (e.key === "r") render();
  else if (e.key === "?") document.getElementById("help").showModal();
});

document.getElementById("refresh").addEventListener("click", () => render());
const tokenButton = document.getElementById("token-button");
const showTokenButton = () => { tokenButton.hidden = !hasToken(); };
document.addEventListener("meshscope:token", showTokenButton);
tokenButton.addEventListener("click", () => { forgetToken(); showTokenButton(); render(); });
document.getElementById("login-cancel").addEventListener("click", () => document.getElementById("login").close());
showTokenButton();

// The tenant picker: shown when tenancy is on and the token may read several tenants.
const tenantPicker = document.getElementById("tenant-picker");
async function showTenants() {
  let who;
  try { who = await api.whoami(); } catch { tenantPicker.hidden = true; return; }
  if (!who.tenancy || who.tenants.length < 2) { tenantPicker.hidden = true; return; }
  tenantPicker.replaceChildren(...who.tenants.map((tenant) => {
    const option = document.createElement("option");
    option.value = option.textContent = tenant;
    return option;
  }));
  tenantPicker.value = pickedTenant() || who.tenant || who.tenants[0];
  tenantPicker.hidden = false;
}
tenantPicker.addEventListener("change", () => { pickTenant(tenantPicker.value); render(); });
document.addEventListener("meshscope:token", showTenants);
tokenButton.addEventListener("click", () => { tenantPicker.hidden = true; });
showTenants();
document.getElementById("help-button").addEventListener("click", () => document.getElementById("help").showModal());
window.addEventListener("hashchange", render);
render();
