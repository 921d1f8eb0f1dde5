"""Histogram buckets as BLOBs instead of LIST columns.

A metric flush appends hundreds of histogram samples every 15 s; as LIST columns DuckDB logged
each append together with the list data of every earlier row of its 2048-row vector since the
last checkpoint (ADR 0006 rev. 4). A BLOB appends only its own bytes, and reads back with no
per-element Python work:
- `blob`/`lists`: little-endian 8-byte numbers (bucket bounds, stored once per distinct set);
- `narrow`/`narrow_lists`: bucket counts in the narrowest of 1, 2, 4 or 8 bytes that holds
  the largest, after a one-byte width tag (a flush of small counts logs ~8x fewer bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

FLOAT = np.dtype("<f8")
UINT = np.dtype("<u8")
_ARROW = {FLOAT: pa.float64(), UINT: pa.uint64()}


def blob(values: Sequence[Any], dtype: np.dtype[Any]) -> bytes:
    return np.asarray(values, dtype).tobytes()


def numbers(data: bytes, dtype: np.dtype[Any]) -> tuple[Any, ...]:
    return tuple(np.frombuffer(data, dtype).tolist())


def lists(column: pa.Array, dtype: np.dtype[Any]) -> pa.ListArray:
    """A (chunk-free) binary array of such BLOBs as a list array of their numbers (null stays
    null)."""
    large = pa.types.is_large_binary(column.type)
    offsets = np.frombuffer(column.buffers()[1], np.int64 if large else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    data = column.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    values = raw[offsets[0] : offsets[-1]].view(dtype)
    starts = pa.array((offsets - offsets[0]) // dtype.itemsize, pa.int32())
    mask = column.is_null() if column.null_count else None
    return pa.ListArray.from_arrays(starts, pa.array(values, _ARROW[dtype]), mask=mask)


def blobs(column: pa.Array) -> pa.Array:
    """The inverse of `lists`: a list array of 8-byte numbers as a binary array of BLOBs."""
    column = column.cast(pa.list_(column.type.value_type))
    offsets = np.asarray(column.offsets.to_numpy(zero_copy_only=False), np.int64)
    values = column.values.to_numpy(zero_copy_only=False)
    width = values.dtype.itemsize
    data = np.ascontiguousarray(values[offsets[0] : offsets[-1]]).astype(
        values.dtype.newbyteorder("<")
    )
    byte_offsets = pa.array((offsets - offsets[0]) * width, pa.int32())
    validity = column.is_valid().buffers()[1] if column.null_count else None
    return pa.Array.from_buffers(
        pa.binary(), len(column), [validity, byte_offsets.buffers()[1], pa.py_buffer(data)]
    )


_WIDTHS = ((1, 0xFF), (2, 0xFFFF), (4, 0xFFFF_FFFF), (8, 0xFFFF_FFFF_FFFF_FFFF))
"""Each width and the largest number it holds."""


def narrow(values: Sequence[int] | npt.NDArray[np.uint64]) -> bytes:
    """Unsigned integers as a width tag byte and the numbers in that many bytes each."""
    array = np.asarray(values, np.uint64)
    top = int(array.max()) if len(array) else 0
    width = next(width for width, limit in _WIDTHS if top <= limit)
    return bytes((width,)) + array.astype(f"<u{width}").tobytes()


def narrow_numbers(data: bytes) -> tuple[int, ...]:
    return tuple(np.frombuffer(data, f"<u{data[0]}", offset=1).tolist())


def narrow_lists(column: pa.Array) -> pa.ListArray:
    """A (chunk-free) binary array of `narrow` BLOBs as a list array of uint64 (null stays
    null): the width bytes are masked out, then each width class is viewed at its width;
    boolean masks only, no per-element index arrays."""
    large = pa.types.is_large_binary(column.type)
    offsets = np.frombuffer(column.buffers()[1], np.int64 if large else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    data = column.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    raw = raw[offsets[0] : offsets[-1]]
    starts, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    filled = lengths > 0  # null rows (and nothing else) have no bytes: not even a tag
    widths = np.ones(len(starts), np.int64)
    widths[filled] = raw[starts[filled]]
    body_lengths = np.where(filled, lengths - 1, 0)
    sizes = body_lengths // widths
    keep = np.ones(len(raw), bool)
    keep[starts[filled]] = False
    body = raw[keep]
    present = np.unique(widths[filled])
    if len(present) <= 1:
        width = int(present[0]) if len(present) else 1
        values = body.view(f"<u{width}").astype(np.uint64)
    else:
        values = np.zeros(int(sizes.sum()), np.uint64)
        for width in present.tolist():
            rows = filled & (widths == width)
            part = body[np.repeat(rows, body_lengths)].view(f"<u{width}")
            values[np.repeat(rows, sizes)] = part
    list_offsets = pa.array(np.concatenate(([0], np.cumsum(sizes))), pa.int32())
    mask = column.is_null() if column.null_count else None
    return pa.ListArray.from_arrays(list_offsets, pa.array(values, pa.uint64()), mask=mask)
