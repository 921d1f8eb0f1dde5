"""The DuckDB write transaction: queued Arrow inserts run in order, all or nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from meshscope.store.duckdb.database import Database


def rows(db: Database) -> list[tuple[str, str]]:
    return (
        db.read().execute("SELECT key, value FROM meta WHERE key LIKE 't%' ORDER BY key").fetchall()
    )


def meta(*pairs: tuple[str, str]) -> pa.Table:
    return pa.table({"key": [k for k, _ in pairs], "value": [v for _, v in pairs]})


def test_queued_inserts_and_direct_statements_run_in_the_order_given(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.duckdb")
    try:
        with db.transaction(single_threaded=True) as txn:
            txn.insert("meta", meta(("t1", "a")))
            # A direct statement sees what was queued before it.
            txn.con.execute("UPDATE meta SET value = value || '+' WHERE key = 't1'")
            txn.insert("meta", meta(("t2", "b")))
            txn.con.execute("UPDATE meta SET value = value || '+' WHERE key = 't2'")
            txn.insert("meta", meta(("t3", "c")))  # queued: sent with the COMMIT
        assert rows(db) == [("t1", "a+"), ("t2", "b+"), ("t3", "c")]
        threads = db.read().execute("SELECT current_setting('threads')").fetchone()
        assert threads is not None and int(threads[0]) == db._threads  # restored
    finally:
        db.close()


def test_a_failing_statement_rolls_back_the_whole_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.duckdb")
    undone: list[str] = []
    try:

        def write() -> None:
            with db.transaction(single_threaded=True) as txn:
                txn.on_rollback.append(lambda: undone.append("cache"))
                txn.insert("meta", meta(("t1", "a")))
                txn.insert("meta", meta(("t1", "dup")))  # primary key violated at commit

        with pytest.raises(duckdb.Error):
            write()
        assert rows(db) == [] and undone == ["cache"]
        with db.transaction() as txn:  # the connection is usable again
            txn.insert("meta", meta(("t3", "c")))
        assert rows(db) == [("t3", "c")]
        threads = db.read().execute("SELECT current_setting('threads')").fetchone()
        assert threads is not None and int(threads[0]) == db._threads
    finally:
        db.close()


def test_an_error_in_the_block_sends_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.duckdb")
    try:

        def write() -> None:
            with db.transaction() as txn:
                txn.insert("meta", meta(("t1", "a")))
                raise RuntimeError("caller failed")

        with pytest.raises(RuntimeError):
            write()
        assert rows(db) == []
    finally:
        db.close()
