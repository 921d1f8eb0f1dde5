"""Where each tenant's store lives, and which tenants already have one.

- DuckDB: the default tenant keeps `storage.path` (data written before tenancy is the
  default tenant's); tenant `t` gets `<dir>/<stem>.tenants/t.duckdb` beside it. Tenant names
  are letters, digits, `_`, `.` and `-`, so a name is a plain file name under that folder.
- ClickHouse: the default tenant keeps `storage.clickhouse.database`; tenant `t` gets the
  database `<database>_t_<t escaped>` (`_`, `.`, `-` as `_5f`, `_2e`, `_2d`: ClickHouse names
  here are letters, digits and underscores, and the escape is one-to-one). A sharded store's
  `<name>_dist` companion never decodes as a tenant (`_di` is no escape).
- Memory: nothing persists; no tenant is known at start.
"""

from __future__ import annotations

import re
from pathlib import Path

from meshscope.auth.principal import DEFAULT_TENANT
from meshscope.limits.config import TENANT_NAME

_ESCAPES = {"_": "_5f", ".": "_2e", "-": "_2d"}
_UNESCAPES = {code: char for char, code in _ESCAPES.items()}
_ESCAPED = re.compile(r"^(?:[A-Za-z0-9]|_5f|_2e|_2d)+$")


def duckdb_path(path: str, tenant: str) -> str:
    if tenant == DEFAULT_TENANT:
        return path
    base = Path(path)
    return str(base.parent / f"{base.stem}.tenants" / f"{tenant}.duckdb")


def duckdb_tenants(path: str) -> list[str]:
    """Tenants with a file under `path`'s tenants folder, by name."""
    base = Path(path)
    folder = base.parent / f"{base.stem}.tenants"
    if not folder.is_dir():
        return []
    names = [entry.stem for entry in folder.glob("*.duckdb") if entry.is_file()]
    return sorted(name for name in names if TENANT_NAME.match(name) and name != DEFAULT_TENANT)


def clickhouse_database(database: str, tenant: str) -> str:
    if tenant == DEFAULT_TENANT:
        return database
    return f"{database}_t_" + "".join(_ESCAPES.get(char, char) for char in tenant)


def clickhouse_tenant(database: str, name: str) -> str | None:
    """The tenant whose database `name` is (None: not a tenant database of `database`)."""
    prefix = f"{database}_t_"
    escaped = name[len(prefix) :]
    if not name.startswith(prefix) or not _ESCAPED.match(escaped):
        return None
    tenant = re.sub(r"_(5f|2e|2d)", lambda m: _UNESCAPES[m.group(0)], escaped)
    return tenant if TENANT_NAME.match(tenant) and tenant != DEFAULT_TENANT else None


def clickhouse_tenants(dsn: str, database: str) -> list[str]:
    """Tenants with a database on the server `dsn` names, by name."""
    from meshscope.store.clickhouse.connection import Connection

    rows = Connection(dsn, database).execute(
        "SELECT name FROM system.databases WHERE startsWith(name, %(prefix)s)",
        {"prefix": f"{database}_t_"},
    )
    found = (clickhouse_tenant(database, str(row[0])) for row in rows)
    return sorted(tenant for tenant in found if tenant is not None)
