// The read APIs the UI uses: Jaeger, meshscope, Prometheus (PromQL). Errors become Error
// objects carrying the server's message.

function qs(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    out.set(key, String(value));
  }
  return out.toString();
}

// Authentication (docs/security.md): when meshscope answers 401 the UI asks for a token
// once, keeps it in this tab's sessionStorage and sends it as an Authorization header, never
// in a URL. Behind a reverse proxy that sets the header, no 401 comes and nothing is asked.
const TOKEN_KEY = "meshscope.token";
let asking = null;

// With tenancy on, a token of several tenants reads the one picked in the header's tenant
// picker (sent as X-Scope-OrgID, kept in this tab's sessionStorage); none picked: the
// token's first.
const TENANT_KEY = "meshscope.tenant";

export function authHeaders() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const tenant = sessionStorage.getItem(TENANT_KEY);
  if (tenant) headers["X-Scope-OrgID"] = tenant;
  return headers;
}

export function pickedTenant() {
  return sessionStorage.getItem(TENANT_KEY);
}

export function pickTenant(tenant) {
  if (tenant) sessionStorage.setItem(TENANT_KEY, tenant);
  else sessionStorage.removeItem(TENANT_KEY);
}

export function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TENANT_KEY);
}

// One dialog for every request refused at once; resolves to the token, or null (cancelled).
function askToken(message) {
  if (asking) return asking;
  const dialog = document.getElementById("login");
  const form = document.getElementById("login-form");
  const input = document.getElementById("login-token");
  document.getElementById("login-message").textContent = message;
  input.value = "";
  asking = new Promise((resolve) => {
    const done = (token) => {
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("close", cancel);
      asking = null;
      resolve(token);
    };
    const submit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      done(token);
      dialog.close();
    };
    const cancel = () => done(null);
    form.addEventListener("submit", submit);
    dialog.addEventListener("close", cancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

// Past the server's own query deadline (query.timeout_seconds, 120 s by default) plus a
// margin, a request that never answers is given up, so a view says so instead of loading
// for ever.
const REQUEST_TIMEOUT_MS = 150000;

export async function authorizedFetch(url, headers = {}) {
  for (;;) {
    let response;
    try {
      response = await fetch(url, { headers: { ...headers, ...authHeaders() }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (error) {
      if (error.name === "TimeoutError") throw new Error(`no answer from meshscope in ${REQUEST_TIMEOUT_MS / 1000} s`);
      throw new Error(`meshscope cannot be reached (${error.message})`);
    }
    if (response.status !== 401) return response;
    const refused = hasToken();
    const token = await askToken(refused
      ? "The token was not accepted. Enter another one."
      : "This meshscope asks for an access token (a token with the read scope).");
    if (token === null) return response;
    sessionStorage.setItem(TOKEN_KEY, token);
    document.dispatchEvent(new CustomEvent("meshscope:token"));
  }
}

// The texts of a Warning header (`199 meshscope "text", ...`): the server answered in part,
// e.g. with a ClickHouse shard down. The shell shows them above the view.
export function warningTexts(header) {
  return [...header.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, "$1"));
}

async function getJSON(url) {
  const response = await authorizedFetch(url, { Accept: "application/json" });
  const warning = response.headers.get("Warning");
  if (warning) document.dispatchEvent(new CustomEvent("meshscope:partial", { detail: warningTexts(warning) }));
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const message = body?.error || body?.errors?.[0]?.msg || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

const enc = encodeURIComponent;

// A PromQL string literal.
export function promString(value) {
  return `"${String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

export const api = {
  // Sorted by name: the Jaeger API answers them in no particular order.
  whoami: async () => (await getJSON("/api/meshscope/whoami")).data,
  services: async () => ((await getJSON("/api/services")).data || []).sort((a, b) => a.localeCompare(b)),
  operations: async (service) => (await getJSON(`/api/services/${enc(service)}/operations`)).data || [],
  red: async (params) => (await getJSON(`/api/meshscope/red?${qs(params)}`)).data,
  // RED per interval from the span metrics: {times (ms, interval ends), series: [{service,
  // operation?, rate, errorRatio, p50Ms, p95Ms, p99Ms}]} (arrays aligned to times).
  redRange: async (params) => (await getJSON(`/api/meshscope/red/range?${qs(params)}`)).data,
  slos: async (params) => (await getJSON(`/api/meshscope/slos?${qs(params)}`)).data.slos,
  // Pending and firing alerts of the rule files (PromQL, then LogQL), without the SLOs' own.
  alerts: async () => {
    const [prom, loki] = await Promise.all(["/api/v1/alerts", "/prometheus/api/v1/alerts"]
      .map(async (url) => (await getJSON(url)).data.alerts));
    return [...prom, ...loki].filter((a) => !a.labels.slo);
  },
  graph: async (params) => (await getJSON(`/api/meshscope/graph?${qs(params)}`)).data,
  traces: async (params) => (await getJSON(`/api/traces?${qs(params)}`)).data || [],
  trace: async (id) => (await getJSON(`/api/traces/${enc(id)}`)).data[0],
  traceStats: async (id) => (await getJSON(`/api/meshscope/traces/${enc(id)}/stats`)).data,
  traceLogs: async (id) => (await getJSON(`/api/meshscope/traces/${enc(id)}/logs`)).logs,
  logs: async (params) => (await getJSON(`/api/meshscope/logs?${qs(params)}`)).data,
  // A PromQL range query on a step grid: {xs (s), series: [{metric, values aligned to xs}]}.
  promRange: async (query, startMs, endMs, stepS) => {
    const start = Math.floor(startMs / 1000 / stepS) * stepS;
    const end = Math.ceil(endMs / 1000 / stepS) * stepS;
    const body = await getJSON(`/api/v1/query_range?${qs({ query, start, end, step: stepS })}`);
    const xs = [];
    for (let t = start; t <= end; t += stepS) xs.push(t);
    const series = body.data.result.map((r) => {
      const byTime = new Map(r.values.map(([t, v]) => [Math.round(t), Number(v)]));
      return { metric: r.metric, values: xs.map((t) => (byTime.has(t) && Number.isFinite(byTime.get(t)) ? byTime.get(t) : null)) };
    });
    return { xs, series };
  },
};

// A step giving about `points` points over the range, and a rate window covering 2 steps.
export function stepFor(range, points = 60) {
  const step = Math.max(15, Math.ceil((range.end - range.start) / 1000 / points));
  return { step, window: `${Math.max(60, 2 * step)}s` };
}
