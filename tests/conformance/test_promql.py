"""Runs the PromQL `.test` files in tests/conformance/promql/ against our engine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshscope.store.clickhouse import ClickHouseStorage
from tests.conformance import clickhouse_server
from tests.conformance.promqltest import Case, expand_values, load_cases, run

TEST_FILES = sorted((Path(__file__).parent / "promql").glob("*.test"))
CASES = [case for path in TEST_FILES for case in load_cases(path)]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_promql_case(case: Case) -> None:
    assert run(case) == 0  # the vectorised evaluator had an array form for every node


# All cases over ClickHouse take ~70 s on 2 busy cores (the per-step evaluator reads once per
# step); the suite runs every fifth, MESHSCOPE_PROMQL_CLICKHOUSE=all runs all (they pass).
CLICKHOUSE_CASES = CASES if os.environ.get("MESHSCOPE_PROMQL_CLICKHOUSE") == "all" else CASES[::5]


@pytest.mark.parametrize("case", CLICKHOUSE_CASES, ids=lambda case: case.id)
def test_promql_case_over_clickhouse(case: Case, tmp_path: Path) -> None:
    """The same cases over the ClickHouse metric store on a real server (a fresh database
    each), so the engine's reads through its `select`/`latest`/array methods agree."""
    reason = clickhouse_server.available()
    if reason:
        pytest.skip(reason)
    storage = ClickHouseStorage(clickhouse_server.dsn(), clickhouse_server.database_for(tmp_path))
    try:
        run(case, storage.metrics)
    finally:
        storage.drop()


def test_there_are_cases_in_every_file() -> None:
    files = {case.file for case in CASES}
    assert files == {path.name for path in TEST_FILES}  # no file without a case
    assert len(files) >= 6
    assert len(CASES) >= 150


def test_expand_values() -> None:
    assert expand_values("0+10x3 _ 5 _x2 1-1x2 2x1") == [
        0,
        10,
        20,
        30,
        None,
        5,
        None,
        None,
        1,
        0,
        -1,
        2,
        2,
    ]
