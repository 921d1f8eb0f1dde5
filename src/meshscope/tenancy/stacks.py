"""One store, pipeline and writer per tenant, opened on first use and kept until stop.

Separate stores make isolation structural (a read of tenant A cannot see B's rows, whatever
the query) and keep every backend's schema as it is; separate pipelines make derivation per
tenant (A's client span never pairs with B's server span, span metrics and tail sampling
count each tenant's traces alone). Tempo, Loki and Mimir keep tenants apart the same way
(per-tenant blocks and TSDBs). The cost is per tenant: a writer's two threads and a store's
memory, hence `tenancy.max_tenants`.

The default tenant's stack always exists (its store is where data written before tenancy
lives) and so does every tenant's with a store at start (retention applies to them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.writer import BatchWriter
from meshscope.store.base import Storage
from meshscope.store.warm import WarmUpThread


class TenantOpenError(Exception):
    """A new tenant's stack cannot be opened (its store failed to open)."""


class TenantLimitError(TenantOpenError):
    """A new tenant past `tenancy.max_tenants`."""


@dataclass(slots=True)
class Stack:
    tenant: str
    storage: Storage
    pipeline: Pipeline
    writer: BatchWriter
    warm_up: WarmUpThread | None = None

    def start(self) -> None:
        if self.warm_up is not None:
            self.warm_up.start()
        self.writer.start()

    def stop(self) -> None:
        """Commit what was accepted, flush derived metrics, close the store."""
        self.writer.stop()
        if self.warm_up is not None:
            self.warm_up.stop()
        self.storage.close()


class TenantStacks:
    def __init__(
        self, make: Callable[[str], Stack], known: Iterable[str], max_tenants: int
    ) -> None:
        self._make = make
        self.max_tenants = max_tenants
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False
        self._upstream: Callable[[], int] | None = None
        self._stacks: dict[str, Stack] = {}
        for tenant in dict.fromkeys([DEFAULT_TENANT, *known]):
            self._stacks[tenant] = make(tenant)

    @property
    def default(self) -> Stack:
        return self._stacks[DEFAULT_TENANT]

    def find(self, tenant: str) -> Stack | None:
        """The tenant's stack if it has one (a read of a tenant without one finds nothing)."""
        return self._stacks.get(tenant)

    def can_open(self, tenant: str) -> bool:
        """Whether a write for `tenant` would find or get a stack."""
        return tenant in self._stacks or len(self._stacks) < self.max_tenants

    def open(self, tenant: str) -> Stack:
        """The tenant's stack, made (and started) on first use; raises TenantLimitError past
        `max_tenants`, TenantOpenError when its store cannot be opened."""
        found = self._stacks.get(tenant)
        if found is not None:
            return found
        with self._lock:
            found = self._stacks.get(tenant)
            if found is not None:
                return found
            if self._stopped:  # a writer made now would never be started or stopped
                raise TenantOpenError(f"tenant {tenant!r}: meshscope is shutting down")
            if len(self._stacks) >= self.max_tenants:
                raise TenantLimitError(
                    f"tenant {tenant!r} is new and meshscope already holds"
                    f" tenancy.max_tenants ({self.max_tenants}) tenants"
                )
            try:
                stack = self._make(tenant)
            except Exception as error:
                message = f"tenant {tenant!r}: its store cannot be opened: {error}"
                raise TenantOpenError(message) from None
            if self._upstream is not None:
                stack.writer.expect_from(self._upstream)
            if self._started:
                stack.start()
            # Published last: readers and writers see only a started stack.
            self._stacks = {**self._stacks, tenant: stack}
            return stack

    def all(self) -> list[Stack]:
        return list(self._stacks.values())

    def expect_from(self, upstream: Callable[[], int]) -> None:
        """Every writer's `expect_from` (ingest workers prepare batches for all tenants)."""
        with self._lock:
            self._upstream = upstream
            for stack in self._stacks.values():
                stack.writer.expect_from(upstream)

    def start(self) -> None:
        with self._lock:
            self._started = True
            for stack in self._stacks.values():
                stack.start()

    def stop(self) -> None:
        with self._lock:
            self._started = False
            self._stopped = True
            stacks = list(self._stacks.values())
        for stack in stacks:
            stack.stop()
