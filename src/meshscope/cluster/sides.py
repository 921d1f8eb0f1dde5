"""Pairing records between nodes: what a trace's owner needs of a span another node stored.

Over a shared store (`cluster.shards`) and without tail sampling, the node that receives a
span stores it and counts its span metrics itself (both are per span; reads sum the nodes'
series), and sends the trace's owner only the span's pairing record (`servicegraph.Side`:
13 plain fields), so that the owner pairs every call of the trace (ADR 0015, revision
2026-12-07). A part is one msgpack array of the 13 fields' columns, so that the owner
checks them a column at a time and rebuilds the records in C (~1.0 us a record in one
process, against 1.2 a record at a time: unpacking the strings and making the tuples are
most of it); the parts for one peer concatenate into one request, a stream of such arrays,
as OTLP protobuf parts do.

`decode_sides` is total: any body gives records of exactly the fields and ranges a Side has,
or a DecodeError naming the problem. A record the pairer cannot hold never reaches a commit
group (where it would fail other clients' requests); every record a walk makes is one
(`side_fields` bounds the status; the decoders, the times and the kind).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from meshscope.ingest.errors import DecodeError
from meshscope.pipeline.derive.servicegraph import MAX_STATUS

MEDIA_TYPE = "application/vnd.msgpack"

_FIELDS = (str, str, str, str, int, int, int, bool, int, str, str, str, str)
"""The type of each field of a `Side`, in order (msgpack keeps bool apart from int)."""
_MAX_INT64 = 2**63 - 1
_RANGES = {4: (0, 5), 5: (-_MAX_INT64, _MAX_INT64), 6: (0, _MAX_INT64), 8: (0, MAX_STATUS)}
"""The bounds of the integer fields: kind, start, duration, HTTP status."""


def encode_sides(sides: Sequence[tuple[Any, ...]]) -> bytes:
    """A part of records: one array of their columns (b"" for none)."""
    if not sides:
        return b""
    packed: bytes = msgpack.packb(list(zip(*sides, strict=True)), use_bin_type=True)
    return packed


def decode_sides(body: bytes) -> list[tuple[Any, ...]]:
    """The records of a stream of parts; raises DecodeError on anything that is not one."""
    unpacker = msgpack.Unpacker(
        use_list=False,
        raw=False,
        max_buffer_size=max(len(body), 1),
        max_str_len=max(len(body), 1),  # any length a span's attribute may have
        max_bin_len=0,
        max_array_len=max(len(body), len(_FIELDS)),
        max_map_len=0,
        max_ext_len=0,
    )
    unpacker.feed(body)
    sides: list[tuple[Any, ...]] = []
    end = 0  # where the last whole part ends
    try:
        for part in unpacker:
            end = unpacker.tell()
            _check(part, len(sides))
            sides += zip(*part, strict=True)
    except DecodeError:
        raise
    except (ValueError, msgpack.UnpackException) as error:
        why = str(error) or type(error).__name__
        raise DecodeError(f"invalid pairing records (msgpack): {why}") from None
    if end != len(body):
        raise DecodeError(
            f"invalid pairing records: the body ends inside a part (after {len(sides)})"
        )
    return sides


def _check(part: Any, first: int) -> None:
    """Raise DecodeError unless `part` is 13 columns of one length, of a Side's field types
    and ranges (`first`: how many records came before it, for the message)."""
    where = f"invalid pairing records (from #{first})"
    if type(part) is not tuple or len(part) != len(_FIELDS):
        raise DecodeError(f"{where}: not an array of {len(_FIELDS)} columns")
    if any(type(column) is not tuple for column in part) or len(set(map(len, part))) != 1:
        raise DecodeError(f"{where}: the columns are not arrays of one length")
    for index, (column, wanted) in enumerate(zip(part, _FIELDS, strict=True)):
        types = set(map(type, column))
        if types and types != {wanted}:
            found = ", ".join(sorted(t.__name__ for t in types - {wanted}))
            raise DecodeError(f"{where}: field {index} holds {found}, not {wanted.__name__}")
    for index, (low, high) in _RANGES.items():
        column = part[index]
        if column and not (low <= min(column) and max(column) <= high):
            raise DecodeError(f"{where}: field {index} has a value out of range")
