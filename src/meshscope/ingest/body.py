"""Reading an HTTP request body safely: bounded reads, bounded decompression.

Both limits hold at every step: the wire body is read chunk by chunk and refused (413) as soon
as it passes `max_compressed_bytes` (or at once when Content-Length says it will), and it is
inflated with zlib's `max_length` so a gzip bomb never produces more than `max_body_bytes`
(plus one byte) before it is refused.
"""

from __future__ import annotations

import zlib

from starlette.requests import ClientDisconnect, Request

from meshscope.ingest.limits import IngestLimits

ENCODINGS = ("gzip", "deflate", "identity")
_ALIASES = {"": "identity", "x-gzip": "gzip"}
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS


class BodyError(Exception):
    """The body cannot be taken: `status` is the HTTP answer (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def content_encoding(header: str | None) -> str:
    """The normalized Content-Encoding (`gzip`, `deflate` or `identity`); 415 otherwise."""
    value = (header or "").strip().lower()
    value = _ALIASES.get(value, value)
    if value not in ENCODINGS:
        raise BodyError(
            415, f"unsupported Content-Encoding {header!r}; supported: {', '.join(ENCODINGS)}"
        )
    return value


async def read_body(request: Request, limits: IngestLimits) -> bytes:
    """The raw (still encoded) body, at most `limits.max_compressed_bytes` long."""
    cap = limits.max_compressed_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise BodyError(400, f"invalid Content-Length {declared!r}") from None
        if length > cap:
            raise BodyError(413, f"request body of {length} bytes exceeds the limit of {cap}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise BodyError(413, f"request body exceeds the limit of {cap} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyError(400, "client disconnected before sending the whole body") from None
    return b"".join(chunks)


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    """Decode `data` per its (normalized) encoding; 413 past `limit` bytes, 400 if corrupt."""
    if encoding == "identity":
        if len(data) > limit:
            raise BodyError(413, f"request body exceeds the limit of {limit} bytes")
        return data
    if encoding == "gzip":
        return _inflate(data, _GZIP_WBITS, limit, "gzip")
    try:
        return _inflate(data, _ZLIB_WBITS, limit, "deflate")
    except BodyError as error:
        # RFC 9110's "deflate" is zlib-wrapped, but some clients send raw deflate.
        if error.status != 400:
            raise
        return _inflate(data, _RAW_WBITS, limit, "deflate")


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    out: list[bytes] = []
    total = 0
    pending = data
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            total = _inflate_member(inflater, pending, out, total, limit)
        except zlib.error as exc:
            raise BodyError(400, f"invalid {name} body: {exc}") from None
        if not inflater.eof:
            raise BodyError(400, f"invalid {name} body: truncated stream")
        pending = inflater.unused_data
        if not pending:
            return b"".join(out)
        if wbits != _GZIP_WBITS or not pending.startswith(_GZIP_MAGIC):
            raise BodyError(400, f"invalid {name} body: trailing data after the stream")
        # A gzip body may hold several members, which decode to their concatenation.


def _inflate_member(
    inflater: zlib._Decompress, data: bytes, out: list[bytes], total: int, limit: int
) -> int:
    """Inflate one zlib/gzip member into `out`, never producing more than limit + 1 bytes."""
    pending = data
    while pending and not inflater.eof:
        piece = inflater.decompress(pending, limit - total + 1)
        total += len(piece)
        if total > limit:
            raise BodyError(413, f"decompressed request body exceeds the limit of {limit} bytes")
        out.append(piece)
        if not piece and inflater.unconsumed_tail == pending:
            raise BodyError(400, "invalid compressed body: the stream makes no progress")
        pending = inflater.unconsumed_tail
    piece = inflater.flush()  # at most a few hundred bytes are ever held back
    total += len(piece)
    if total > limit:
        raise BodyError(413, f"decompressed request body exceeds the limit of {limit} bytes")
    out.append(piece)
    return total
