"""Connections to one ClickHouse database: one native-protocol client per thread (a client
is not thread-safe), and the write sequence that stands in for insertion order."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from clickhouse_driver import Client, defines
from clickhouse_driver import errors as ch_errors
from clickhouse_driver.block import BlockInfo, ColumnOrientedBlock
from clickhouse_driver.protocol import ClientPacketTypes
from clickhouse_driver.varint import write_varint
from clickhouse_driver.writer import write_binary_str, write_binary_uint8

from meshscope import stopping
from meshscope.store.base import QueryTooLargeError, StoreUnavailableError
from meshscope.store.clickhouse import native

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")

# The driver logs each failed connect with a traceback; we raise one clear error instead.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
# and warns on every read of an Array column through `arrays` that it decodes it generically.
logging.getLogger("clickhouse_driver.columns.service").setLevel(logging.ERROR)

MAX_QUERY_BYTES = 8 * 2**20
"""`max_query_size` for every statement: the fingerprints of a PromQL selector and users'
filter values are literals in the SQL, and ClickHouse's default (256 KiB) refused a selector
of ~12,000 series (well within `query.max_series`) or a 45 kB Jaeger tag key (its SQL 6
times over) as a syntax error. A larger read is a QueryTooLargeError (400), found before it
is sent (the native protocol cuts a 16 MiB query string: the server resets the connection)."""

SEND_RECEIVE_TIMEOUT_S = 30.0
"""How long the server may stay silent in a statement before it counts as unavailable,
unless the DSN says (`?send_receive_timeout=`). The driver's own default, 300 s, held every
ingest request that long on a hung (stopped, overloaded) server. A read silent that long
fails the same way: 18.16 sends no progress while it merges an aggregation."""


def redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return _PASSWORD.sub(r"\1:***@", dsn)


class ClickHouseUnavailableError(StoreUnavailableError):
    """The server cannot be reached, refused the connection or did not answer within the
    send/receive timeout; the message says which."""


class RemoteShardUnavailableError(ClickHouseUnavailableError):
    """The server answered, but a shard that a read through its Distributed tables needs
    could not be reached from it (`addresses`: the ones it named, host:port)."""

    def __init__(self, message: str, addresses: tuple[str, ...]) -> None:
        super().__init__(message)
        self.addresses = addresses


_REMOTE_UNREACHABLE = frozenset(
    (ch_errors.ErrorCodes.ALL_CONNECTION_TRIES_FAILED, ch_errors.ErrorCodes.NETWORK_ERROR,
     ch_errors.ErrorCodes.SOCKET_TIMEOUT)
)  # fmt: skip
"""What a server answers when a remote shard of a Distributed read cannot be reached."""
_ADDRESS = re.compile(r"\(([^()\s]+:\d+)\)")


def check_name(kind: str, name: str) -> str:
    """`name` if it can be spliced into SQL as a database or cluster name, else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits and underscores")
    return name


class NativeRows(tuple[tuple[str, native.Column], ...]):
    """An insert's columns already in Native format, by name, in the order the INSERT names
    them (a tuple, so that `Client.execute` takes it as an insert's data)."""


class _Client(Client):  # type: ignore[misc]
    """clickhouse-driver's client, which also sends `NativeRows` as they are: the block it
    would write for the same values (native.py), in its own Data packet, through its own
    (compressing or not) block stream. Everything else (the query, the sample block, the
    server's answers, errors, disconnecting on them) is the driver's `execute`."""

    def send_data(
        self, sample_block: Any, data: Any, types_check: bool = False, columnar: bool = False
    ) -> int:
        if not isinstance(data, NativeRows):
            rows: int = super().send_data(sample_block, data, types_check, columnar)
            return rows
        connection = self.connection
        revision = connection.server_info.used_revision
        names_types = sample_block.columns_with_types
        if len(names_types) != len(data):
            raise native.NativeTypeError(
                f"the server asks for {len(names_types)} columns, not {len(data)}"
            )
        count = len(data[0][1])
        write_varint(ClientPacketTypes.DATA, connection.fout)
        if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
            write_binary_str("", connection.fout)
        out = connection.block_out  # as BlockOutputStream.write writes a block
        fout = out.fout
        if revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO:
            BlockInfo().write(fout)
        write_varint(len(data), fout)
        write_varint(count, fout)
        for (name, spec), (ours, column) in zip(names_types, data, strict=True):
            if name != ours or len(column) != count:
                raise native.NativeTypeError(f"the server asks for column {name}, not {ours}")
            write_binary_str(name, fout)
            write_binary_str(spec, fout)
            if revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION:
                write_binary_uint8(0, fout)
            column.write(spec, fout)
        out.finalize()
        self.receive_profile_events()
        connection.send_data(ColumnOrientedBlock())  # the empty block that ends the data
        self.receive_profile_events()
        return count


class Connection:
    """Queries against `database` on the server `dsn` names (clickhouse://host:port/...)."""

    def __init__(self, dsn: str, database: str, settings: dict[str, Any] | None = None) -> None:
        """`settings`: ClickHouse settings sent with every statement (e.g. a sharded store's
        `distributed_product_mode`)."""
        self.dsn = dsn
        self._settings = {"max_query_size": MAX_QUERY_BYTES, **(settings or {})}
        self.database = check_name("database", database)
        if not dsn.startswith(("clickhouse://", "clickhouses://")):
            raise ValueError(f"clickhouse dsn {redacted(dsn)!r} must start with clickhouse://")
        try:
            self._template = Client.from_url(dsn)
        except (ValueError, KeyError) as error:
            raise ValueError(f"clickhouse dsn {redacted(dsn)!r}: {error}") from None
        given = parse_qs(urlparse(dsn).query)
        self._timeout_s: float = (
            self._template.connection.send_receive_timeout
            if "send_receive_timeout" in given
            else SEND_RECEIVE_TIMEOUT_S
        )
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()
        self._last_seq = 0
        self._killer: Client | None = None
        self._kill_lock = threading.Lock()
        self._setups: list[Callable[[], object]] = []
        self._setup_lock = threading.Lock()

    @property
    def address(self) -> str:
        """host:port of the server, as a server names it in its errors."""
        host, port = self._template.connection.hosts[0]
        return f"{host}:{port}"

    def on_first_use(self, setup: Callable[[], object]) -> None:
        """Run `setup` before the next statement, and before each until it succeeds (a
        server unreachable at start: its tables are created once it answers). Other threads
        wait for it; statements `setup` runs itself do not."""
        with self._setup_lock:
            self._setups.append(setup)

    def set_up(self) -> None:
        """Run what `on_first_use` left to run (nothing once it succeeded)."""
        if not self._setups or getattr(self._local, "setting_up", False):
            return
        with self._setup_lock:
            self._local.setting_up = True
            try:
                while self._setups:
                    self._setups[0]()
                    self._setups.pop(0)
            finally:
                self._local.setting_up = False

    def _client(self, arrays: bool = False) -> Client:
        """This thread's client; with `arrays`, the one that reads numeric columns into
        NumPy arrays straight from the wire (the driver's `use_numpy`), not Python tuples."""
        key = "arrays" if arrays else "client"
        client: Client | None = getattr(self._local, key, None)
        if client is None:
            client = self._new_client(arrays)
            setattr(self._local, key, client)
        return client

    def _new_client(self, arrays: bool = False) -> Client:
        """A copy of the DSN's client, without a database (ours may not exist yet), closed
        by `close`."""
        c = self._template.connection
        client = _Client(
            host=c.hosts[0][0],
            port=c.hosts[0][1],
            user=c.user,
            password=c.password,
            secure=c.secure_socket,
            # TLS options of the DSN (ca_certs, certfile, keyfile, verify, ...) as given.
            verify=c.verify_cert,
            check_hostname=c.check_hostname,
            server_hostname=c.server_hostname,
            **c.ssl_options,
            connect_timeout=c.connect_timeout,
            send_receive_timeout=self._timeout_s,
            settings={**self._settings, "use_numpy": arrays},
        )
        with self._lock:
            self._clients.append(client)
        return client

    def execute(self, sql: str, params: Any = None, arrays: bool = False, **kw: Any) -> Any:
        """Run one statement; connection failures become ClickHouseUnavailableError. Under a
        query budget it is killed once the budget is spent (deadline passed or client gone:
        `meshscope.stopping`), and the server stops it by itself at the deadline
        (`max_execution_time`, whole seconds rounded up: never before it) should the kill
        not get through."""
        self.set_up()
        left = stopping.remaining_s()
        if left != math.inf:
            settings = kw.get("settings") or {}
            kw["settings"] = {**settings, "max_execution_time": max(1, math.ceil(left))}
            query_id = kw["query_id"] = uuid.uuid4().hex
            stopping.on_stop(query_id, lambda: self._kill_soon(query_id))
        try:
            client = self._client(arrays)
            if isinstance(params, dict):  # a read's values: substituted here to bound its size
                sql = client.substitute_params(sql, params, client.connection.context)
                params = None
                if len(sql) > MAX_QUERY_BYTES // 4 and len(sql.encode()) > MAX_QUERY_BYTES:
                    raise QueryTooLargeError(
                        f"the query's values make a statement over {MAX_QUERY_BYTES} bytes"
                    )
            return client.execute(sql, params, **kw)
        except (ch_errors.SocketTimeoutError, TimeoutError) as error:
            # The driver's own message is only "Code: 209. (host:port)".
            c = self._template.connection
            why = (
                f"no answer in time (connect_timeout {c.connect_timeout:g} s,"
                f" send_receive_timeout {self._timeout_s:g} s): {error}"
            )
        except EOFError as error:
            why = f"connection lost: {error}"
        except (ch_errors.NetworkError, OSError) as error:
            why = str(error)
        except ch_errors.ServerException as error:
            if error.code == ch_errors.ErrorCodes.SYNTAX_ERROR and "Max query size" in str(error):
                raise QueryTooLargeError(
                    f"the query's values make a statement over {MAX_QUERY_BYTES} bytes"
                ) from None
            if error.code not in _REMOTE_UNREACHABLE:
                raise
            # The server's message is a page of stack trace; the addresses are what matter.
            addresses = tuple(dict.fromkeys(_ADDRESS.findall(str(error))))
            raise RemoteShardUnavailableError(
                f"clickhouse at {redacted(self.dsn)}: a shard it reads from is unreachable"
                f" ({', '.join(addresses) or f'code {error.code}'})",
                addresses,
            ) from None
        raise ClickHouseUnavailableError(f"clickhouse at {redacted(self.dsn)}: {why}")

    def _kill_soon(self, query_id: str) -> None:
        """Ask the server to stop the statement `query_id`, from a thread of its own (the
        watchdog calling this must not wait on the network), over one client kept for kills.
        A statement already done is not found: nothing happens."""

        def kill() -> None:
            with self._kill_lock:
                if self._killer is None:
                    self._killer = self._new_client()
                try:
                    self._killer.execute(
                        "KILL QUERY WHERE query_id = %(id)s ASYNC", {"id": query_id}
                    )
                except Exception as error:  # the statement still ends at its deadline
                    log.warning("clickhouse: could not kill query %s: %s", query_id, error)

        threading.Thread(target=kill, name="meshscope-clickhouse-kill", daemon=True).start()

    def rows(self, sql: str, params: Any = None, binary: bool = False) -> list[tuple[Any, ...]]:
        """A query's rows; with `binary`, String columns as bytes (payloads), not text."""
        settings = {"strings_as_bytes": True} if binary else None
        found: list[tuple[Any, ...]] = self.execute(sql, params, settings=settings)
        return found

    def arrays(self, sql: str, params: Any = None) -> list[Any]:
        """A query's columns, numeric ones as NumPy arrays (strings as object arrays, arrays
        as tuples of lists), or [] when it has no rows. ~5x faster than `rows` for millions
        of samples: the driver decodes a numeric column with one `frombuffer`, not a Python
        object per value."""
        columns: list[Any] = self.execute(sql, params, arrays=True, columnar=True)
        return columns

    def insert(self, table: str, columns: dict[str, list[Any]]) -> None:
        """A synchronous columnar insert: when it returns, the rows are in the table."""
        if not columns or not next(iter(columns.values())):
            return
        names = ", ".join(columns)
        self.execute(
            f"INSERT INTO {self.database}.{table} ({names}) VALUES",
            list(columns.values()),
            columnar=True,
        )

    def insert_native(self, table: str, columns: dict[str, native.Column]) -> None:
        """`insert` of columns in Native format (native.py): the owner sends what the ingest
        workers wrote, no value by value work here. A column the server types differently
        than the store made it is a NativeTypeError (the insert fails, nothing stored)."""
        if not columns or not len(next(iter(columns.values()))):
            return
        names = ", ".join(columns)
        self.execute(
            f"INSERT INTO {self.database}.{table} ({names}) VALUES",
            NativeRows(columns.items()),
        )

    def seq(self, count: int) -> int:
        """The first of `count` increasing write sequence numbers (wall-clock ns based, so
        later writers, restarts included, get larger ones): orders equal keys by write."""
        with self._lock:
            first = max(self._last_seq + 1, time.time_ns())
            self._last_seq = first + count - 1
            return first

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.disconnect()
