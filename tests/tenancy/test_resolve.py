"""Which tenants a request may use, and where each tenant's store lives: hostile header
values and tenant names (property-based) never get past as anything but 400/403 or a valid
tenant, and the ClickHouse database of a tenant maps back to exactly that tenant."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshscope.auth.principal import Principal
from meshscope.limits.config import TENANT_NAME
from meshscope.limits.tenant import TenantError
from meshscope.tenancy import places, resolve

TOKEN = Principal("t", frozenset({"team-a", "team-b"}), frozenset({"read"}), "team-a")
NAMES = st.from_regex(r"[A-Za-z0-9_.\-]{1,40}", fullmatch=True)


def test_reads_default_to_the_tokens_first_tenant_or_default() -> None:
    assert resolve.read_tenants(TOKEN, None, several=False) == ("team-a",)
    assert resolve.read_tenants(None, None, several=False) == ("default",)
    assert resolve.read_tenants(None, " ", several=False) == ("default",)
    assert resolve.read_tenants(None, "x", several=False) == ("x",)


def test_several_tenants_only_where_allowed_and_only_the_tokens() -> None:
    assert resolve.read_tenants(TOKEN, "team-b|team-a|team-b", several=True) == (
        "team-b",
        "team-a",
    )
    with pytest.raises(TenantError) as refused:
        resolve.read_tenants(TOKEN, "team-a|team-b", several=False)
    assert refused.value.status == 400
    with pytest.raises(TenantError) as refused:
        resolve.read_tenants(TOKEN, "team-a|team-c", several=True)
    assert refused.value.status == 403 and "team-c" in refused.value.message
    with pytest.raises(TenantError) as refused:
        resolve.write_tenants(TOKEN, "team-c")
    assert refused.value.status == 403


@given(st.text(max_size=300), st.booleans(), st.booleans())
def test_any_header_is_a_valid_tenant_list_or_a_clear_refusal(
    header: str, several: bool, authenticated: bool
) -> None:
    principal = TOKEN if authenticated else None
    refused: TenantError | None = None
    try:
        tenants = resolve.read_tenants(principal, header, several=several)
    except TenantError as error:
        refused = error
    if refused is not None:
        assert refused.status in (400, 403) and refused.message
        return
    assert tenants and all(TENANT_NAME.match(tenant) for tenant in tenants)
    assert len(tenants) == 1 or several
    if principal is not None:
        assert set(tenants) <= principal.tenants


@given(NAMES)
def test_a_tenants_database_maps_back_to_it(tenant: str) -> None:
    database = places.clickhouse_database("meshscope", tenant)
    if tenant == "default":
        assert database == "meshscope"
        return
    assert database.replace("_", "").isalnum()
    assert places.clickhouse_tenant("meshscope", database) == tenant
    # A sharded store's companion database is no tenant's.
    assert places.clickhouse_tenant("meshscope", database + "_dist") is None


@given(NAMES, NAMES)
def test_two_tenants_never_share_a_database(one: str, other: str) -> None:
    if one != other:
        assert places.clickhouse_database("m", one) != places.clickhouse_database("m", other)


def test_duckdb_files_sit_beside_the_default_one(tmp_path: object) -> None:
    assert places.duckdb_path("/data/m.duckdb", "default") == "/data/m.duckdb"
    assert places.duckdb_path("/data/m.duckdb", "..") == "/data/m.tenants/...duckdb"
    assert places.duckdb_path("/data/m.duckdb", "team-a") == "/data/m.tenants/team-a.duckdb"
