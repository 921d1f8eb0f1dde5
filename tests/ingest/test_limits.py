from __future__ import annotations

import pytest

from meshscope.ingest.limits import MIB, IngestLimits


def test_defaults_follow_the_otlp_spec() -> None:
    limits = IngestLimits()
    assert limits.max_body_bytes == limits.max_compressed_bytes == 20 * MIB


@pytest.mark.parametrize(
    "kwargs", [{"max_body_bytes": 0}, {"max_compressed_bytes": -1}, {"offload_bytes": -1}]
)
def test_nonsense_limits_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        IngestLimits(**kwargs)
