from __future__ import annotations

import pytest

from meshscope.auth.principal import Principal
from meshscope.limits.tenant import TenantError, resolve_tenant

TWO = Principal("collector", frozenset({"b", "a"}), frozenset({"write"}), first_tenant="b")


def test_auth_off_takes_the_header_or_default() -> None:
    assert resolve_tenant(None, None) == "default"
    assert resolve_tenant(None, "") == "default"
    assert resolve_tenant(None, " team-a ") == "team-a"


def test_a_token_writes_for_its_first_tenant_or_the_one_it_names() -> None:
    assert resolve_tenant(TWO, None) == "b"  # the first in the tokens file, not sorted
    assert resolve_tenant(TWO, "a") == "a"


def test_naming_a_tenant_the_token_lacks_is_forbidden() -> None:
    with pytest.raises(TenantError, match="may not write for tenant 'c'") as raised:
        resolve_tenant(TWO, "c")
    assert raised.value.status == 403


@pytest.mark.parametrize("header", ["a|b", "x" * 151, "ü", "a b"])
def test_a_malformed_name_is_a_400(header: str) -> None:
    for principal in (None, TWO):
        with pytest.raises(TenantError) as raised:
            resolve_tenant(principal, header)
        assert raised.value.status == 400
