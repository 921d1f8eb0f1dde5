"""Where receivers hand decoded batches: the seam between transports and the store owner.

A receiver calls `await sink.submit(batch)` and answers its client only after it returns:
returning means the batch is committed to the store (durable). When the pipeline is saturated
`submit` raises Overloaded at once, and the receiver answers 429/503 with Retry-After (OTLP
and Prometheus clients retry those), so memory stays bounded under overload.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, TypeGuard, get_args, runtime_checkable

from meshscope.ingest.errors import DecodeError
from meshscope.model.batch import Batch

if TYPE_CHECKING:
    from meshscope.ingest.otlp_common import Decoded


class OverloadedError(Exception):
    """The pipeline cannot take more now; retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnavailableError(Exception):
    """The store failed or is shutting down; the data was NOT committed (answer 503)."""

    outcome = "data not stored"
    """What the client is told became of its data."""


class PartlyStoredError(UnavailableError):
    """A request split between cluster nodes was not stored whole: some parts may be (a peer
    that timed out may still commit its part); a retry may store those again (503)."""

    outcome = "the data may be stored in part, a retry may store some of it twice"


BodyKind = Literal["traces", "logs", "zipkin"]
"""Bodies an EncodedSink decodes itself: OTLP traces and logs (protobuf or JSON) and Zipkin v2
JSON spans. OTLP metrics are not among them: their delta-to-cumulative state lives with the
receiver (`OtlpDecoders`), so they are decoded where that state is."""

_BODY_KINDS: frozenset[str] = frozenset(get_args(BodyKind))


def is_body_kind(kind: str | None) -> TypeGuard[BodyKind]:
    """Whether bodies of `kind` can be handed still encoded to an EncodedSink."""
    return kind in _BODY_KINDS


class UnstorableError(DecodeError):
    """The batch holds a value the store cannot take, which its decoder should have refused:
    it was NOT committed, the rest of its group was (answer 400 with the store's message)."""


class IngestSink(Protocol):
    async def submit(self, batch: Batch) -> None:
        """Return once `batch` is durable; raise OverloadedError or UnavailableError."""
        ...


@runtime_checkable
class EncodedSink(Protocol):
    """A sink that also takes still-encoded bodies (`BodyKind`) and decodes them itself (e.g.
    in worker processes). Raises what decoding raises (BodyError, DecodeError) besides the
    sink's own errors; returns the rejected counts for the OTLP response."""

    async def submit(self, batch: Batch) -> None: ...

    async def submit_encoded(
        self, kind: BodyKind, raw: bytes, encoding: str, *, json: bool
    ) -> Decoded: ...


_ENCODED: dict[type, bool] = {}


def takes_encoded(sink: IngestSink) -> TypeGuard[EncodedSink]:
    """Whether `sink` decodes bodies itself; remembered per type (a runtime Protocol check
    costs ~25 µs, too much once per request)."""
    known = _ENCODED.get(type(sink))
    if known is None:
        known = _ENCODED[type(sink)] = isinstance(sink, EncodedSink)
    return known
