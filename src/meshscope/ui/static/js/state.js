// URL state: every view is `#/<view>[/<argument>]?<params>`, and the time range travels in
// the same params (`range=1h`, or absolute `from`/`to` in ms), so any view is shareable.
import { dateTime } from "./format.js";

export const PRESETS = [
  ["5m", 5 * 60e3, "Last 5 minutes"],
  ["15m", 15 * 60e3, "Last 15 minutes"],
  ["1h", 60 * 60e3, "Last hour"],
  ["6h", 6 * 60 * 60e3, "Last 6 hours"],
  ["24h", 24 * 60 * 60e3, "Last 24 hours"],
  ["7d", 7 * 24 * 60 * 60e3, "Last 7 days"],
];
export const DEFAULT_RANGE = "1h";
const RANGE_KEYS = ["range", "from", "to"];

export function parseHash(hash) {
  const raw = String(hash || "").replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return { view: parts[0] || "services", arg: parts.slice(1).join("/"), params };
}

// The time range of `params`: absolute when `from` < `to` are numbers, else a preset ending now.
export function timeRange(params, now = Date.now()) {
  const from = Number(params.get("from"));
  const to = Number(params.get("to"));
  if (params.get("from") && params.get("to") && Number.isFinite(from) && Number.isFinite(to) && from < to) {
    return { start: Math.floor(from), end: Math.floor(to), absolute: true, label: `${dateTime(from)} → ${dateTime(to)}` };
  }
  const preset = PRESETS.find(([key]) => key === params.get("range")) || PRESETS.find(([key]) => key === DEFAULT_RANGE);
  return { start: now - preset[1], end: now, absolute: false, key: preset[0], label: preset[2] };
}

// A link to `view` keeping the current time range (unless `params` sets one).
export function href(current, view, arg, params = {}) {
  const out = new URLSearchParams();
  const setsRange = RANGE_KEYS.some((k) => k in params);
  if (!setsRange) {
    for (const key of RANGE_KEYS) if (current.params.has(key)) out.set(key, current.params.get(key));
  }
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") out.set(key, String(value));
  }
  const path = arg ? `${view}/${encodeURIComponent(arg)}` : view;
  const query = out.toString();
  return `#/${path}${query ? `?${query}` : ""}`;
}

// The current route's params with some replaced (null removes), as a link to the same view.
export function withParams(current, changes) {
  const params = Object.fromEntries(current.params.entries());
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") delete params[key];
    else params[key] = String(value);
  }
  const out = new URLSearchParams(params).toString();
  const path = current.arg ? `${current.view}/${encodeURIComponent(current.arg)}` : current.view;
  return `#/${path}${out ? `?${out}` : ""}`;
}
