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

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const message = body?.error || body?.errors?.[0]?.msg || `${response.status} ${response.statusText}`;
    throw new Error(message);
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
  services: async () => ((await getJSON("/api/services")).data || []).sort((a, b) => a.localeCompare(b)),
  operations: async (service) => (await getJSON(`/api/services/${enc(service)}/operations`)).data || [],
  red: async (params) => (await getJSON(`/api/meshscope/red?${qs(params)}`)).data,
  // RED per interval from the span metrics: {times (ms, interval ends), series: [{service,
  // operation?, rate, errorRatio, p50Ms, p95Ms, p99Ms}]} (arrays aligned to times).
  redRange: async (params) => (await getJSON(`/api/meshscope/red/range?${qs(params)}`)).data,
  slos: async (params) => (await getJSON(`/api/meshscope/slos?${qs(params)}`)).data.slos,
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
