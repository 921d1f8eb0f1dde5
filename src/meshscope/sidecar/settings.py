"""Sidecar settings: one dataclass per proxied service, validated when parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"


class SettingsError(ValueError):
    """A sidecar option is invalid; the message names the option and why."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ExportSettings:
    """Where and how spans and access logs leave the sidecar (shared by all sidecars of one
    process). `max_buffer` bounds what waits in memory; beyond it new items are dropped.
    `max_batch` is small so that serializing one request (~2.8 us an item, in one call that
    holds the event loop) stays well under a millisecond of proxying time."""

    endpoint: str = DEFAULT_OTLP_ENDPOINT
    flush_interval_s: float = 0.5
    max_batch: int = 128
    max_buffer: int = 20_000
    timeout_s: float = 5.0
    headers: tuple[tuple[str, str], ...] = ()  # e.g. authorization (never logged)
    ca_file: str = ""  # the CA an https endpoint's certificate is checked against ("": system)

    def __post_init__(self) -> None:
        parse_url("--otlp-endpoint", self.endpoint)
        if self.flush_interval_s <= 0:
            raise SettingsError("--export-interval must be > 0")
        if self.max_batch < 1 or self.max_buffer < self.max_batch:
            raise SettingsError("--export-buffer must be >= 512 (one batch)")


@dataclass(frozen=True, slots=True)
class SidecarSettings:
    """One sidecar: `listen` proxies to `upstream` (inbound); `egress` proxies the service's
    outbound calls to `routes[target]` (absent: no egress listener)."""

    service: str
    listen: Address
    upstream: str
    egress: Address | None = None
    routes: dict[str, str] = field(default_factory=dict)
    upstream_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.service or "/" in self.service:
            raise SettingsError("--service must be a non-empty name without '/'")
        parse_url("--upstream", self.upstream)
        for name, url in self.routes.items():
            parse_url(f"--route {name}", url)
        if self.upstream_timeout_s <= 0:
            raise SettingsError("--upstream-timeout must be > 0")


def parse_address(option: str, value: str) -> Address:
    """`HOST:PORT` (or `:PORT` for 127.0.0.1); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{option} must be HOST:PORT, got {value!r}")
    return Address(host.strip("[]") or "127.0.0.1", int(port))


def parse_url(option: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{option} must be an http(s) URL, got {value!r}")
    try:
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as error:
        raise SettingsError(f"{option} has an invalid port: {value!r}") from error
    return value.rstrip("/")


def parse_route(value: str) -> tuple[str, str]:
    """`NAME=URL`: calls to target NAME through the egress go to URL (its sidecar)."""
    name, sep, url = value.partition("=")
    name = name.strip()
    if not sep or not name or "/" in name:
        raise SettingsError(f"--route must be NAME=URL, got {value!r}")
    return name, parse_url(f"--route {name}", url.strip())


def otlp_client_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """`ExportSettings` keywords from the OpenTelemetry exporter variables the SDKs read too:
    `OTEL_EXPORTER_OTLP_HEADERS` (`authorization=Bearer%20<token>`, as with
    `meshscope.instrument()`) and `OTEL_EXPORTER_OTLP_CERTIFICATE` (a CA file)."""
    from opentelemetry.util.re import parse_env_headers

    headers = parse_env_headers(environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), liberal=True)
    return {
        "headers": tuple(headers.items()),
        "ca_file": environ.get("OTEL_EXPORTER_OTLP_CERTIFICATE", ""),
    }
