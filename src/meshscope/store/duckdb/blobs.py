"""Histogram buckets as BLOBs of little-endian 8-byte numbers instead of LIST columns.

A metric flush appends hundreds of histogram samples every 15 s; as LIST columns DuckDB logged
each append together with the list data of every earlier row of its 2048-row vector since the
last checkpoint (ADR 0006 rev. 4). A BLOB appends only its own bytes, and reads back with no
per-element work: `lists` turns a column of them into the Arrow list array it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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
