"""`meshscope.instrument(tenant=...)` against a real app with tenancy on: the spans land in
that tenant's store."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import meshscope
from meshscope.app import App, build
from meshscope.config import Config, StorageConfig
from meshscope.tenancy.config import TenancyConfig
from meshscope.tenancy.context import as_tenants
from tests.serving import serving


@pytest.fixture
def app() -> Iterator[tuple[App, str]]:
    built = build(Config(storage=StorageConfig(kind="memory"), tenancy=TenancyConfig(True)))
    built.start()
    try:
        with serving(built.otlp_http) as url:
            yield built, url
    finally:
        built.stop()


def test_instrument_sends_its_tenant(app: tuple[App, str]) -> None:
    built, url = app
    obs = meshscope.instrument(
        service="checkout", endpoint=url, set_global=False, stream=None, tenant="team-x"
    )
    with obs.tracer.start_as_current_span("charge"):
        pass
    obs.flush()
    obs.shutdown()
    deadline = time.monotonic() + 10
    while True:
        with as_tenants("team-x"):
            counts = built.storage.traces.span_counts()
        if counts or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counts == {"checkout": 1}
    with as_tenants("default"):
        assert built.storage.traces.span_counts() == {}
