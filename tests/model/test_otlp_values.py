"""Attribute values written back as OTLP (Tempo's trace API, the sidecar's export) are read
again as they were: every type, an empty value too."""

from __future__ import annotations

from meshscope.ingest.otlp_common import attributes
from meshscope.model.attributes import AttrValue
from meshscope.model.otlp import key_values


def test_every_value_reads_back_as_it_was_written() -> None:
    values: dict[str, AttrValue] = {
        "s": "text", "i": -(2**63), "f": 0.5, "b": True, "bytes": b"\x00\xff",
        "list": ["a", 1, 2.5, False], "map": {"k": "v", "n": 3}, "empty": None,
    }  # fmt: skip
    written = key_values(values)
    assert attributes(written) == values
    # An empty AnyValue stays empty (it was written as the string "").
    empty = next(kv.value for kv in written if kv.key == "empty")
    assert empty.WhichOneof("value") is None
