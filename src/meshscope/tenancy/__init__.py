"""Tenancy: each tenant's telemetry in its own store, derived by its own pipeline (ADR 0017).

With `tenancy.enabled`, every request runs with its tenant(s) in `context.current_tenants`
(set by `http.TenancyGate` and `grpc.TenancyInterceptor`); writes go to that tenant's
writer (`writers.TenantWriters`) and reads to that tenant's store (`storage.TenantStorage`),
out of `stacks.TenantStacks`: one store, pipeline and writer per tenant. Off (the default),
none of this is wired and meshscope is single-tenant as before.
"""
