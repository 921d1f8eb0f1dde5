"""Suite-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Hypothesis's timing checks (slow data generation, per-example deadlines) measure wall-clock
# time, which on a busy 2-core machine says more about the machine than about the code.
settings.register_profile("meshscope", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("meshscope")


@pytest.fixture(scope="session", autouse=True)
def _stop_clickhouse_at_the_end() -> Iterator[None]:
    """The ClickHouse server some tests start (once per run) stops with the run."""
    yield
    from tests.conformance import clickhouse_server

    clickhouse_server.stop_shared()
