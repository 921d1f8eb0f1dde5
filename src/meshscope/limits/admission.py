"""What receivers call: the limits of the request being handled, if any.

The write routes (`limits/http.py`) and gRPC methods (`limits/grpc.py`) put the request's
tenant and the limiter in `current_admission` for the handler's whole run (asyncio tasks and
`to_thread` copy it); receivers call `admit_bytes` on the body as read, before decoding, and
`admit_batch` / `admit_items` once decoding has counted the items, before the batch is
queued for commit. With limits off the variable is None and each call is one lookup.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from meshscope.limits.limiter import Limiter
from meshscope.model.batch import Batch


@dataclass(frozen=True, slots=True)
class Admission:
    limiter: Limiter
    tenant: str


current_admission: ContextVar[Admission | None] = ContextVar("current_admission", default=None)


def admit_bytes(size: int) -> None:
    """Charge a request body of `size` bytes (as received) to its tenant's bytes/s limit."""
    admission = current_admission.get()
    if admission is not None:
        admission.limiter.admit(admission.tenant, (("bytes", size),))


def admit_items(spans: int, logs: int, metrics: int) -> None:
    """Charge a decoded request's items to its tenant; raises RateLimitedError (429) or
    TooLargeError (413), and then nothing of the request may be stored."""
    admission = current_admission.get()
    if admission is not None:
        admission.limiter.admit(
            admission.tenant, (("spans", spans), ("logs", logs), ("metrics", metrics))
        )


def admit_batch(batch: Batch) -> None:
    """`admit_items` for a decoded batch, whose metric points also count against the
    tenant's active-series limits."""
    admission = current_admission.get()
    if admission is not None:
        admission.limiter.admit(
            admission.tenant,
            (("spans", len(batch.spans)), ("logs", len(batch.logs)),
             ("metrics", len(batch.metrics))),
            batch.metrics,
        )  # fmt: skip


def admit_body_items(kind: str, items: int) -> None:
    """`admit_items` for `items` of a still-encoded body of `kind` (`traces` or `zipkin`:
    spans, `logs`: log records), as counted when a body is split without decoding it."""
    if current_admission.get() is not None:
        spans = items if kind in ("traces", "zipkin") else 0
        admit_items(spans, items - spans, 0)
