"""Reading an HTTP request body safely: bounded reads, bounded decompression.

Both limits hold at every step: the wire body is read chunk by chunk and refused (413) as soon
as it passes `max_compressed_bytes` (or at once when Content-Length says it will), and it is
inflated chunk by chunk with zlib's `max_length` so a gzip bomb never produces more than
`max_body_bytes` (plus one byte) before it is refused. Multi-member gzip bodies decode to
their concatenation, as `gzip -d` does; "deflate" may be zlib-wrapped (RFC 9110) or raw.
"""

from __future__ import annotations

import zlib

import cramjam
from starlette.requests import ClientDisconnect, Request

from meshscope.ingest.errors import DecodeError
from meshscope.ingest.limits import IngestLimits

ENCODINGS = ("gzip", "deflate", "identity")
_ALIASES = {"": "identity", "x-gzip": "gzip"}
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_WBITS = -zlib.MAX_WBITS
_CHUNK = 64 * 1024
_OUT_CHUNK = 1024 * 1024


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
    # RFC 9110's "deflate" is zlib-wrapped, but some clients send raw deflate.
    wbits = _ZLIB_WBITS if _is_zlib_header(data) else _RAW_WBITS
    return _inflate(data, wbits, limit, "deflate")


def _is_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


class _Output:
    """Decompressed pieces, refused (413) as soon as they pass `limit` bytes in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.parts: list[bytes] = []

    def room(self) -> int:
        """How much to ask zlib for: one byte more than allowed, to see that it is too much."""
        return self.limit - self.total + 1

    def add(self, piece: bytes) -> None:
        self.total += len(piece)
        if self.total > self.limit:
            raise BodyError(
                413, f"decompressed request body exceeds the limit of {self.limit} bytes"
            )
        self.parts.append(piece)


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    output = _Output(limit)
    view = memoryview(data)
    offset = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            offset = _inflate_member(inflater, view, offset, output)
        except zlib.error as exc:
            raise BodyError(400, f"invalid {name} body: {exc}") from None
        if not inflater.eof:
            raise BodyError(400, f"invalid {name} body: truncated stream")
        if offset == len(view):
            return b"".join(output.parts)
        if wbits != _GZIP_WBITS or view[offset : offset + 2] != _GZIP_MAGIC:
            raise BodyError(400, f"invalid {name} body: trailing data after the stream")
        # A gzip body may hold several members, which decode to their concatenation.


def _inflate_member(
    inflater: zlib._Decompress, view: memoryview, offset: int, output: _Output
) -> int:
    """Inflate the member starting at `offset` into `output`; return the offset after it.

    Input is fed in chunks and output asked for in pieces of at most 1 MiB, so the copies zlib
    makes (`unconsumed_tail`, each piece) stay small: memory peaks near `limit`, not twice it.
    """
    while offset < len(view) and not inflater.eof:
        pending: bytes | memoryview = view[offset : offset + _CHUNK]
        offset += len(pending)
        while pending and not inflater.eof:
            piece = inflater.decompress(pending, min(output.room(), _OUT_CHUNK))
            if not piece and len(inflater.unconsumed_tail) == len(pending):
                raise BodyError(400, "invalid compressed body: the stream makes no progress")
            output.add(piece)
            pending = inflater.unconsumed_tail
    output.add(inflater.flush())  # at most a few hundred bytes are ever held back
    # At the end of the stream, zlib keeps the rest of the last chunk as `unused_data`.
    return offset - len(inflater.unused_data)


class BodyTooLargeError(DecodeError):
    """A compressed body declares it inflates past the limit (an HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"snappy body inflates to {size} bytes, over the limit of {limit}")
        self.size = size
        self.limit = limit


def uncompress_snappy(body: bytes, limit: int) -> bytes:
    """Snappy block format (not framed), as Prometheus remote write and Loki push send it;
    refused before inflating when it declares more than `limit` bytes."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
        if size > limit:
            raise BodyTooLargeError(size, limit)
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as error:
        raise DecodeError(f"invalid snappy body (block format expected): {error}") from None
