"""PromQL over a small `Queryable`: parse with promql-parser, evaluate like Prometheus 2.x.

Start with `Engine(MetricStoreQueryable(store)).range(query, start_ms, end_ms, step_ms)`.
"""
