"""Embedded ClickHouse (chdb-core, 26.x, from PyPI) for checking the `modern` schema profile:
Debian's server is 18.16, which takes only `compat` (ADR 0011).

chdb cannot listen on a port, so the store cannot reach it through clickhouse-driver.
`ChdbConnection` stands in for the store's `Connection`: the same SQL, with the driver's
own client-side `%(name)s` substitution (`clickhouse_driver.util.escape`), run in one chdb
session per test run (chdb allows one per process), results read back as Arrow. Inserts
take the column dicts the stores build and send them as `INSERT ... VALUES` rows escaped by
the same helper (bytes, the trace-id table's payloads, as `\\xHH` escapes; read back as bytes
where the store asks for `strings_as_bytes`). Each test uses a database of its own
(`clickhouse_server.database_for`).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from clickhouse_driver.util.escape import escape_param, escape_params

from meshscope.store.clickhouse.connection import MAX_QUERY_BYTES, Connection, check_name

INSERT_ROWS = 20_000
"""Rows per INSERT: one part each; bounds the size of one VALUES text."""


def available() -> str:
    """Why chdb cannot be used here ("" when it can). In CI (CI=true) a missing chdb is a
    failure, not a skip: the caller gets "" and `session()` raises."""
    if importlib.util.find_spec("chdb") is None and os.environ.get("CI", "").lower() not in (
        "1",
        "true",
        "yes",
    ):
        return "chdb-core is not installed (pip install 'chdb-core>=26.9'; in the dev extra)"
    return ""


_shared: Any = None
_dir: Path | None = None
_lock = threading.RLock()  # session() is called with it held


def session() -> Any:
    """The run's chdb session (a fresh data directory), opened on first use."""
    global _shared, _dir
    with _lock:
        if _shared is None:
            from chdb import session as chdb_session

            _dir = Path(tempfile.mkdtemp(prefix="meshscope-chdb-"))
            _shared = chdb_session.Session(str(_dir / "data"))  # type: ignore[no-untyped-call]
            _shared.query(f"SET max_query_size = {MAX_QUERY_BYTES}")  # as Connection's
            atexit.register(_close)
        return _shared


def _close() -> None:
    global _shared
    if _shared is not None:
        opened, _shared = _shared, None
        opened.close()
    if _dir is not None:
        shutil.rmtree(_dir, ignore_errors=True)


def substitute(sql: str, params: Any) -> str:
    """`sql` with its `%(name)s` parameters replaced as clickhouse-driver does client side
    (`Client.substitute_params`); unchanged when `params` is None, as in the driver."""
    if params is None:
        return sql
    substituted: str = sql % escape_params(params, None)
    return substituted


def _literal(value: Any) -> str:
    """A value as SQL, as the driver escapes it; bytes (payloads) as a string of \\xHH."""
    if isinstance(value, bytes):
        return "'" + "".join(f"\\x{byte:02x}" for byte in value) + "'"
    return str(escape_param(value, None))


def _table(sql: str, params: Any) -> pa.Table | None:
    with _lock:
        table: pa.Table | None = session().query(substitute(sql, params), "ArrowTable")
    return None if table is None or table.num_columns == 0 or table.num_rows == 0 else table


def query(sql: str, params: Any = None, binary: bool = False) -> list[tuple[Any, ...]]:
    """Rows of `sql` run in the shared session (Python values, as clickhouse-driver gives;
    with `binary`, strings as bytes, as its `strings_as_bytes`)."""
    table = _table(sql, params)
    if table is None:
        return []
    columns = [
        (column.cast(pa.binary()) if binary and _is_text(column.type) else column).to_pylist()
        for column in table.columns
    ]
    return list(zip(*columns, strict=True))


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def read_arrays(sql: str, params: Any = None) -> list[Any]:
    """The columns of `sql` as clickhouse-driver's `use_numpy` client gives them: numbers as
    NumPy arrays, strings as object arrays, arrays as tuples of lists; [] for no rows."""
    table = _table(sql, params)
    if table is None:
        return []
    out: list[Any] = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            out.append(column.to_numpy())
        elif _is_text(kind):
            out.append(np.array(column.to_pylist(), dtype=object))
        else:
            out.append(tuple(column.to_pylist()))
    return out


class ChdbConnection(Connection):
    """The store's `Connection` over the shared chdb session (same methods, no server)."""

    def __init__(self, database: str) -> None:
        # Not Connection.__init__: there is no DSN and no native-protocol client.
        self.dsn = "chdb://"
        self.database = check_name("database", database)
        self._lock = threading.Lock()
        self._last_seq = 0

    def execute(self, sql: str, params: Any = None, arrays: bool = False, **kw: Any) -> Any:
        if arrays:
            return read_arrays(sql, params)
        rows = query(sql, params, binary=bool((kw.get("settings") or {}).get("strings_as_bytes")))
        if kw.get("columnar"):
            return [list(column) for column in zip(*rows, strict=True)] if rows else []
        return rows

    def insert(self, table: str, columns: dict[str, list[Any]]) -> None:
        if not columns or not next(iter(columns.values())):
            return
        names = ", ".join(columns)
        rows = list(zip(*columns.values(), strict=True))
        for first in range(0, len(rows), INSERT_ROWS):
            values = ", ".join(
                "(" + ", ".join(_literal(value) for value in row) + ")"
                for row in rows[first : first + INSERT_ROWS]
            )
            query(f"INSERT INTO {self.database}.{table} ({names}) VALUES {values}")

    def insert_native(self, table: str, columns: dict[str, Any]) -> None:
        """The Native columns' values inserted as `insert` inserts them (chdb takes no
        Native blocks here; their bytes are checked against clickhouse-driver's in
        tests/store/test_clickhouse_native.py and sent to a real server by the suite)."""
        self.insert(table, {name: column.values() for name, column in columns.items()})

    def close(self) -> None:
        """The session is shared by the whole run; it closes at exit."""
