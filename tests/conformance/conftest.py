"""Fixtures of the storage conformance suite: `backend` and an opened `storage`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.store.base import Storage
from tests.conformance.backends import BACKENDS, Backend


@pytest.fixture(params=BACKENDS, ids=str)
def backend(request: pytest.FixtureRequest) -> Backend:
    chosen: Backend = request.param
    reason = chosen.available()
    if reason:
        pytest.skip(f"{chosen.name}: {reason}")
    return chosen


@pytest.fixture
def storage(backend: Backend, tmp_path: Path) -> Iterator[Storage]:
    opened = backend.open(tmp_path)
    yield opened
    opened.close()
