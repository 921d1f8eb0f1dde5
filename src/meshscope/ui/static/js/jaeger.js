// Reading Jaeger-model traces (`/api/traces`): summaries, span trees, tags.

export function tagValue(tags, key) {
  const tag = (tags || []).find((t) => t.key === key);
  return tag ? tag.value : undefined;
}

export function isError(span) {
  const error = tagValue(span.tags, "error");
  return error === true || error === "true" || tagValue(span.tags, "otel.status_code") === "ERROR";
}

export function serviceOf(trace, span) {
  return trace.processes?.[span.processID]?.serviceName || "unknown";
}

export function parentOf(span) {
  const ref = (span.references || []).find((r) => r.refType === "CHILD_OF") || (span.references || [])[0];
  return ref ? ref.spanID : "";
}

export function summarize(trace) {
  const spans = trace.spans || [];
  const ids = new Set(spans.map((s) => s.spanID));
  const start = Math.min(...spans.map((s) => s.startTime));
  const end = Math.max(...spans.map((s) => s.startTime + s.duration));
  // The root rule of the server's trace stats (query/traces.py): earliest start, then longest.
  const roots = spans.filter((s) => !ids.has(parentOf(s)))
    .sort((a, b) => a.startTime - b.startTime || b.duration - a.duration);
  const root = roots[0] || spans[0];
  return {
    traceID: trace.traceID,
    startUs: start,
    durationUs: end - start,
    spanCount: spans.length,
    errorCount: spans.filter(isError).length,
    rootService: root ? serviceOf(trace, root) : "",
    rootOperation: root ? root.operationName : "",
    services: [...new Set(spans.map((s) => serviceOf(trace, s)))].sort(),
  };
}

// Depth-first rows of the span tree, children by start time: [{span, depth, children}].
export function spanTree(trace) {
  const spans = [...(trace.spans || [])].sort((a, b) => a.startTime - b.startTime);
  const ids = new Set(spans.map((s) => s.spanID));
  const children = new Map();
  for (const s of spans) {
    // A parent missing from the trace, or the span itself, makes the span a root.
    const parent = ids.has(parentOf(s)) && parentOf(s) !== s.spanID ? parentOf(s) : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const rows = [];
  const seen = new Set();
  // Depth first with a stack of its own (recursion overflowed the call stack past ~7,000
  // levels of parents); children pushed in reverse so they come out in start order.
  const walk = (top) => {
    const stack = [[top, 0, ""]];
    while (stack.length) {
      const [span, depth, parentID] = stack.pop();
      if (seen.has(span.spanID)) continue;
      seen.add(span.spanID);
      const kids = children.get(span.spanID) || [];
      rows.push({ span, depth, parentID, childCount: kids.length });
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1, span.spanID]);
    }
  };
  for (const root of children.get("") || []) walk(root);
  for (const s of spans) walk(s);
  return rows;
}
