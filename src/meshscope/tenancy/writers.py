"""The writer receivers and ingest workers see with tenancy on: each batch goes to the
writer of the tenant of the request that submits it (`context.write_tenant`).

It has what they use of a `BatchWriter` (`pipeline.writer.Committer`): `pipeline` is the
default tenant's, for what every tenant's pipeline has alike (the span encoders, the
span-metric buckets, the tail-sampling matcher), so worker processes prepare bodies the same
way whichever tenant they belong to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from meshscope.ingest.sink import UnavailableError
from meshscope.model.batch import Batch
from meshscope.pipeline.chain import Pipeline
from meshscope.pipeline.prepared import Prepared
from meshscope.tenancy.context import write_tenant
from meshscope.tenancy.stacks import Stack, TenantOpenError, TenantStacks


class TenantWriters:
    def __init__(self, stacks: TenantStacks) -> None:
        self.stacks = stacks

    @property
    def pipeline(self) -> Pipeline:
        return self.stacks.default.pipeline

    @property
    def pending_items(self) -> int:
        return sum(stack.writer.pending_items for stack in self.stacks.all())

    async def submit(self, batch: Batch | Prepared) -> None:
        """Return once `batch` is committed to its tenant's store."""
        if not len(batch):
            return
        stack = await self._stack()
        await stack.writer.submit(batch)

    async def queue(self, batch: Batch | Prepared) -> None:
        """Queue `batch` for its tenant's writer without waiting for its commit."""
        if len(batch):
            stack = await self._stack()
            await stack.writer.queue(batch)

    async def _stack(self) -> Stack:
        tenant = write_tenant()
        stack = self.stacks.find(tenant)
        if stack is not None:
            return stack
        try:  # opening a store is file or network work: not on the event loop
            return await asyncio.to_thread(self.stacks.open, tenant)
        except TenantOpenError as error:  # past max_tenants the gates refuse first
            raise UnavailableError(str(error)) from None

    def saturated(self) -> bool:
        """Whether the submitting tenant's writer would refuse a new batch now."""
        stack = self.stacks.find(write_tenant())
        return stack is not None and stack.writer.saturated()

    def nudge(self) -> None:
        for stack in self.stacks.all():
            stack.writer.nudge()

    def expect_from(self, upstream: Callable[[], int]) -> None:
        self.stacks.expect_from(upstream)
