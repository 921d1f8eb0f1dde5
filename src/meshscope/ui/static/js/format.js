// Number, time and colour formatting shared by the views.

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms === 0) return "0";
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`; // 0.0004 ms was "0 µs"
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 100 ? 1 : 0)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  if (ms < 86400000) return `${(ms / 3600000).toFixed(1)} h`;
  return `${(ms / 86400000).toFixed(1)} d`; // 10 days was "14400.0 min"
}

export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined) return "–";
  if (perSecond === 0) return "0";
  if (perSecond < 0.01) return String(Number(perSecond.toPrecision(2))); // 0.005, not 5.0e-3
  if (perSecond < 10) return perSecond.toFixed(2);
  if (perSecond < 1000) return perSecond.toFixed(1);
  return `${(perSecond / 1000).toFixed(1)}k`;
}

export function percent(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "–";
  if (ratio === 0) return "0%";
  if (ratio < 0.001) return "<0.1%";
  if (ratio < 1 && ratio >= 0.9995) return ">99.9%"; // 1,999 errors of 2,000 read "100.0%"
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 2 : 1)}%`;
}

// A ratio near 1 (an SLI, an objective) with as many decimals as it needs to show how far
// from 100% it is (at least 2, at most 5): 0.99996 is "99.996%", never "100.00%" unless 1.
export function nines(ratio) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return "–";
  if (ratio >= 1) return `${(ratio * 100).toFixed(2)}%`;
  for (let digits = 2; digits <= 5; digits++) {
    const text = (ratio * 100).toFixed(digits);
    if (Number(text) < 100) return `${text}%`;
  }
  return ">99.99999%";
}

// A burn rate: two decimals below 1 (0.04 was "0.0"), one above.
export function burn(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return value === 0 ? "0" : value.toFixed(value < 1 ? 2 : 1);
}

export function count(n) {
  return n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US");
}

export function clock(ms) {
  const d = new Date(ms);
  const pad = (v, n = 2) => String(v).padStart(n, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function dateTime(ms) {
  const d = new Date(ms);
  const pad = (v) => String(v).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// Error ratio -> tone: a single scale used by every view (table cells, map edges, bars).
export function errorTone(ratio) {
  if (!ratio) return "ok";
  if (ratio < 0.01) return "warn";
  return "bad";
}

// Latency tone against the slowest of a set: the top third is hot.
export function latencyTone(ms, max) {
  if (!ms || !max) return "ok";
  const share = ms / max;
  return share > 0.66 ? "bad" : share > 0.33 ? "warn" : "ok";
}

export const COLORS = { ok: "#16a34a", warn: "#d97706", bad: "#dc2626", accent: "#4f46e5", muted: "#94a3b8" };

const PALETTE = ["#4f46e5", "#0891b2", "#059669", "#d97706", "#db2777", "#7c3aed", "#2563eb",
  "#65a30d", "#ea580c", "#0d9488", "#9333ea", "#ca8a04"];

export function serviceColor(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

// An id as 16 hex digits, leading zeros kept (they are part of the id): a span id whole; a
// trace id by its low half when the high half is zero (a 64-bit id of a Zipkin or Jaeger
// client), else by its first 16 digits.
export function shortId(id) {
  const hex = String(id);
  if (hex.length <= 16) return hex.padStart(16, "0");
  return /^0{16}/.test(hex) ? hex.slice(16) : hex.slice(0, 16);
}

// How the percentiles of `rows` (RED rows with `percentileError`) were computed, for a note
// next to them: from the exponential histogram within the largest bound, or from buckets.
export function percentileNote(rows, key = "percentileError") {
  const withData = rows.filter((r) => r && (r.p99Ms ?? r.p50Ms ?? null) !== null);
  if (!withData.length) return "";
  if (withData.some((r) => r[key] === null || r[key] === undefined)) {
    return "Percentiles are estimates: interpolated inside the span-metric histogram buckets (exact only to the bucket).";
  }
  const bound = Math.max(...withData.map((r) => r[key]));
  return `Percentiles are estimates from an exponential histogram of the span durations, within ±${(bound * 100).toFixed(1)}% of the exact value. Rates are per second of the time each service reported in the range.`;
}
