"""The tokens file and the `TokenStore` every listener asks who a credential is.

The file (YAML, or JSON, which YAML reads too) lists credentials:

    tokens:
      - name: otel-collector        # shown in logs instead of the secret
        token: 6f1c...              # a bearer token (at least 16 characters), or
        # token_sha256: 9b2e...     # only its sha256 in hex, so the file holds no secret
        scopes: [write]             # write, read, admin
        tenants: [default]          # optional; whose data it may write and read (ADR 0017)
      - name: grafana
        username: grafana           # HTTP basic auth, as Grafana data sources send it
        password: s3cret            # or password_sha256
        scopes: [read]

Lookups hash the presented secret once with sha256 and find it in a dict (bearer tokens) or
compare it with `hmac.compare_digest` (basic auth, found by user name): the cost does not grow
with the number of tokens and does not depend on how much of a secret matched. Secrets never
appear in messages: a YAML error is reported by line number only.

The file is read again when its modification time, size or inode changes (checked at most
every `reload_interval_s`, on the next lookup) and on `reload()` (SIGHUP): a file that has
become invalid is logged and the tokens read before stay in force.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from meshscope import watched_file
from meshscope.auth.principal import DEFAULT_TENANT, SCOPES, Principal, Scope
from meshscope.errors import ConfigError

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TENANT = re.compile(r"^[A-Za-z0-9_.\-]{1,150}$")
_FIELDS = frozenset(
    {"name", "token", "token_sha256", "username", "password", "password_sha256", "scopes",
     "tenants"}
)  # fmt: skip


def sha256(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class Tokens:
    """The parsed file: bearer digests and basic-auth users, each naming a principal."""

    bearer: Mapping[bytes, Principal]
    basic: Mapping[str, tuple[bytes, Principal]]
    plain: bool = False  # some secret is written in clear (not as sha256)

    def __len__(self) -> int:
        return len(self.bearer) + len(self.basic)


def parse_tokens(raw: Any, where: str) -> Tokens:
    """Validate the loaded file; `where` prefixes every message (the file's path)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
        raise ConfigError(f"{where}: must be a mapping with a list `tokens`")
    if set(raw) - {"tokens"}:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(set(raw) - {'tokens'}))}")
    bearer: dict[bytes, Principal] = {}
    basic: dict[str, tuple[bytes, Principal]] = {}
    names: set[str] = set()
    plain = False
    for index, entry in enumerate(raw["tokens"]):
        at = f"{where}: tokens[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at} must be a mapping")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigError(f"{at}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        principal = _principal(entry, at)
        plain = plain or "token" in entry or "password" in entry
        if principal.name in names:
            raise ConfigError(f"{at}: name {principal.name!r} is used twice")
        names.add(principal.name)
        at = f"{where}: token {principal.name!r}"
        if "username" in entry:
            if "token" in entry or "token_sha256" in entry:
                raise ConfigError(f"{at}: give either token(_sha256) or username and password")
            username = _text(entry, "username", at)
            if username in basic:
                raise ConfigError(f"{at}: username {username!r} is used twice")
            basic[username] = (_digest(entry, "password", at, 1), principal)
        else:
            digest = _digest(entry, "token", at, MIN_TOKEN_LENGTH)
            if digest in bearer:
                raise ConfigError(f"{at}: the same token as {bearer[digest].name!r}")
            bearer[digest] = principal
    return Tokens(bearer, basic, plain)


def _text(entry: Mapping[str, Any], key: str, at: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{at}: {key} must be a non-empty string")
    return value


def _digest(entry: Mapping[str, Any], key: str, at: str, min_length: int) -> bytes:
    """The sha256 of the secret `key`, given plain or as `<key>_sha256` (hex)."""
    hashed = f"{key}_sha256"
    if (key in entry) == (hashed in entry):
        raise ConfigError(f"{at}: give exactly one of {key} and {hashed}")
    if hashed in entry:
        value = entry[hashed]
        if not isinstance(value, str) or not _HEX_SHA256.match(value):
            raise ConfigError(f"{at}: {hashed} must be 64 hex digits")
        return bytes.fromhex(value)
    secret = entry[key]
    if not isinstance(secret, str) or len(secret) < min_length:
        # Never echo the value: it is a secret, even a wrong one.
        raise ConfigError(f"{at}: {key} must be a string of at least {min_length} characters")
    return sha256(secret)


def _principal(entry: Mapping[str, Any], at: str) -> Principal:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{at}: name must be a non-empty string")
    scopes = entry.get("scopes")
    if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
        raise ConfigError(f"{at} ({name}): scopes must be a list of {', '.join(SCOPES)}")
    tenants = entry.get("tenants", [DEFAULT_TENANT])
    if (
        not isinstance(tenants, list)
        or not tenants
        or any(not isinstance(t, str) or not _TENANT.match(t) for t in tenants)
    ):
        raise ConfigError(
            f"{at} ({name}): tenants must be a list of names of letters, digits, _ . -"
        )
    scope_set = frozenset(cast(list[Scope], scopes))
    return Principal(name, frozenset(tenants), scope_set, first_tenant=tenants[0])


def read_tokens(path: Path) -> Tokens:
    """Read and validate the tokens file; ConfigError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read auth.tokens_file {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"auth.tokens_file {path} is not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # PyYAML's message quotes the offending line, which may hold a secret: position only.
        mark = getattr(error, "problem_mark", None)
        line = f" near line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"auth.tokens_file {path} is not valid YAML or JSON{line}") from None
    return parse_tokens(raw, f"auth.tokens_file {path}")


def _warn_if_readable(path: Path, tokens: Tokens) -> None:
    """Secrets in clear in a file other users may read: say so (once per read)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if tokens.plain and mode & 0o077:
        logger.warning(
            "the tokens file holds secrets in clear and other users may read it:"
            " chmod 600 it, or keep only token_sha256/password_sha256",
            extra={"path": str(path), "mode": oct(mode & 0o777)},
        )


class TokenStore:
    """Who a credential is, from the tokens file, kept current without a restart."""

    def __init__(
        self,
        path: str | Path,
        reload_interval_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.reload_interval_s = reload_interval_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stamp = watched_file.stamp(self.path)
        self._tokens = read_tokens(self.path)  # ConfigError at start: the server does not start
        _warn_if_readable(self.path, self._tokens)
        self._next_check = monotonic() + reload_interval_s
        self.reloads = 0
        self.reload_failures = 0
        # Refused requests by (transport, reason): counted by the HTTP gates and the gRPC
        # interceptor, in the event loop's thread; exported by `AuthCollector`.
        self.refusals: Counter[tuple[str, str]] = Counter()

    def __len__(self) -> int:
        return len(self._tokens)

    def bearer(self, token: str) -> Principal | None:
        self._check()
        digest = sha256(token)
        principal = self._tokens.bearer.get(digest)
        return principal

    def basic(self, username: str, password: str) -> Principal | None:
        self._check()
        found = self._tokens.basic.get(username)
        # Hash and compare even for an unknown user, so timing does not tell users apart.
        expected, principal = found if found is not None else (b"\0" * 32, None)
        return principal if hmac.compare_digest(sha256(password), expected) else None

    def _check(self) -> None:
        if self.reload_interval_s > 0 and self._monotonic() >= self._next_check:
            self._next_check = self._monotonic() + self.reload_interval_s
            if watched_file.stamp(self.path) != self._stamp:
                self.reload()

    def reload(self) -> bool:
        """Read the file again now; False (logged, old tokens kept) if it is invalid."""
        with self._lock:
            stamp = watched_file.stamp(self.path)
            try:
                tokens = read_tokens(self.path)
            except ConfigError as error:
                self._stamp = stamp  # do not re-read a broken file on every check
                self.reload_failures += 1
                logger.error(
                    "tokens file not reloaded, the previous tokens stay in force: %s", error
                )
                return False
            self._tokens, self._stamp = tokens, stamp
            self.reloads += 1
        _warn_if_readable(self.path, tokens)
        logger.info("tokens file reloaded", extra={"path": str(self.path), "tokens": len(tokens)})
        return True
