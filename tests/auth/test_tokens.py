"""The tokens file: what it accepts, what it refuses (never quoting a secret), lookups of
plain, hashed and basic-auth credentials, and reloading when the file changes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from meshscope.auth.tokens import TokenStore, read_tokens
from meshscope.errors import ConfigError
from tests.auth.tokens import ADMIN, GRAFANA, HASHED, READER, SECRETS, WRITER, WRONG, write_tokens


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lookups(tmp_path: Path) -> None:
    store = TokenStore(write_tokens(tmp_path / "tokens.yaml"))
    assert len(store) == 5
    writer = store.bearer(WRITER)
    assert writer is not None and writer.name == "collector"
    assert writer.scopes == {"write"} and writer.tenants == {"team-a"}
    reader = store.bearer(READER)
    assert reader is not None and reader.tenants == {"default"}  # no tenants: the default one
    assert store.bearer(ADMIN) is not None and store.bearer(HASHED) is not None
    assert store.bearer(WRONG) is None and store.bearer(WRITER + "x") is None
    grafana = store.basic(*GRAFANA)
    assert grafana is not None and grafana.scopes == {"read"}
    assert store.basic(GRAFANA[0], "wrong") is None and store.basic("nobody", GRAFANA[1]) is None
    assert store.basic(GRAFANA[0], "") is None
    assert store.bearer(HASHED.upper()) is None


def test_json_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    entry = {"name": "a", "token": READER, "scopes": ["read"]}
    path.write_text(json.dumps({"tokens": [entry]}))
    assert TokenStore(path).bearer(READER) is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "list `tokens`"),
        ("tokens: {}", "list `tokens`"),
        ("tokens: []\nextra: 1", "unknown key"),
        (f"tokens: [{{token: {READER}, scopes: [read]}}]", "name must be"),
        (f"tokens: [{{name: a, token: {READER}, scopes: [root]}}]", "scopes must be"),
        (f"tokens: [{{name: a, token: {READER}, scopes: []}}]", "scopes must be"),
        (f"tokens: [{{name: a, token: {READER}, scopes: [read], tenants: ['a b']}}]", "tenants"),
        (f"tokens: [{{name: a, token: {READER}, scopes: [read], colour: red}}]", "unknown field"),
        ("tokens: [{name: a, token: short-secret, scopes: [read]}]", "at least 16"),
        ("tokens: [{name: a, scopes: [read]}]", "exactly one of token"),
        (f"tokens: [{{name: a, token: {READER}, token_sha256: 00, scopes: [read]}}]",
         "exactly one of token"),
        ("tokens: [{name: a, token_sha256: 12ab, scopes: [read]}]", "64 hex"),
        (f"tokens: [{{name: a, token: {READER}, scopes: [read]}},"
         f" {{name: a, token: {WRITER}, scopes: [read]}}]", "used twice"),
        (f"tokens: [{{name: a, token: {READER}, scopes: [read]}},"
         f" {{name: b, token: {READER}, scopes: [read]}}]", "same token"),
        ("tokens: [{name: a, username: u, scopes: [read]}]", "exactly one of password"),
        (f"tokens: [{{name: a, username: u, password: p, token: {READER}, scopes: [read]}}]",
         "either token"),
        (f"tokens: [{{name: a, token: '{READER}, scopes: [read]}}]", "near line 1"),
    ],
)  # fmt: skip
def test_invalid_files_are_refused_without_quoting_secrets(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as raised:
        read_tokens(path)
    assert str(path) in str(raised.value)
    for secret in (READER, WRITER):
        assert secret not in str(raised.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read auth.tokens_file .*absent\.yaml"):
        TokenStore(tmp_path / "absent.yaml")


def test_a_changed_file_is_read_again_after_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens: [{{name: a, token: {READER}, scopes: [read]}}]")
    clock = Clock()
    store = TokenStore(path, reload_interval_s=5.0, monotonic=clock)
    path.write_text(f"tokens: [{{name: b, token: {WRITER}, scopes: [write]}}]")
    os.utime(path, ns=(1, 1))  # a different modification time even within one clock tick
    clock.now = 4.9
    assert store.bearer(READER) is not None  # not checked again yet
    clock.now = 5.0
    assert store.bearer(READER) is None
    principal = store.bearer(WRITER)
    assert principal is not None and principal.name == "b"
    assert store.reloads == 1


def test_a_broken_new_file_keeps_the_old_tokens_and_logs_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens: [{{name: a, token: {READER}, scopes: [read]}}]")
    clock = Clock()
    store = TokenStore(path, reload_interval_s=1.0, monotonic=clock)
    path.write_text(f"tokens: [{{name: b, token: '{WRITER}, scopes: [write]}}]")  # bad YAML
    os.utime(path, ns=(1, 1))
    clock.now = 2.0
    with caplog.at_level(logging.INFO):
        assert store.bearer(READER) is not None
        clock.now = 4.0
        assert store.bearer(READER) is not None  # the broken file is not re-read every time
    assert store.reload_failures == 1
    assert "not reloaded" in caplog.text
    for secret in SECRETS:
        assert secret not in caplog.text


def test_reload_now(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens: [{{name: a, token: {READER}, scopes: [read]}}]")
    store = TokenStore(path, reload_interval_s=0)  # SIGHUP only
    path.write_text(f"tokens: [{{name: b, token: {WRITER}, scopes: [write]}}]")
    os.utime(path, ns=(1, 1))
    assert store.bearer(WRITER) is None  # 0: never checked on lookups
    assert store.reload() is True
    assert store.bearer(WRITER) is not None and store.bearer(READER) is None


def test_clear_secrets_readable_by_others_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_tokens(tmp_path / "tokens.yaml")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        TokenStore(path)
    assert "chmod 600" in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        TokenStore(path)
    assert caplog.text == ""
    hashed = tmp_path / "hashed.yaml"
    hashed.write_text("tokens: [{name: a, token_sha256: " + "ab" * 32 + ", scopes: [read]}]")
    hashed.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        TokenStore(hashed)
    assert caplog.text == ""  # only hashes: nothing to hide
