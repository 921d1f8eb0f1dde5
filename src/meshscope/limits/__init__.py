"""Per-tenant ingest limits (docs/security.md#limits, ADR 0016).

`config` is the `limits` section; `tenant` says whose a write is (reused by tenancy);
`bucket` is the token bucket; `limiter` keeps one bucket per (tenant, signal) and counts
what it admits and refuses; `admission` is what receivers call (a context variable set per
request, None with limits off); `http` and `grpc` set it on the write routes and methods;
`metrics` puts the counts on `/metrics`.
"""
