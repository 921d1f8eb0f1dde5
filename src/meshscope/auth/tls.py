"""TLS for every listener from `server.tls`: one certificate for the UI/query, OTLP/HTTP,
Zipkin and OTLP/gRPC ports, and optionally a client CA that every client certificate must be
signed by (mutual TLS; then a connection without one is refused during the handshake).

The files are read and checked once at start (`load_tls`), so a missing file, a key that
does not match the certificate or an unreadable CA is one ConfigError line, not a traceback
from inside uvicorn or grpcio.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from meshscope.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """`server.tls`: empty cert_file = plain TCP (the default)."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The checked files' contents (grpcio takes bytes) and paths (uvicorn takes paths)."""

    config: TlsConfig
    cert: bytes
    key: bytes
    client_ca: bytes | None

    def uvicorn_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "ssl_certfile": self.config.cert_file,
            "ssl_keyfile": self.config.key_file,
        }
        if self.client_ca is not None:
            options["ssl_ca_certs"] = self.config.client_ca_file
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


def validate_tls(config: TlsConfig) -> None:
    """The settings' shape (not the files): both cert and key, a CA only with them."""
    if bool(config.cert_file) != bool(config.key_file):
        raise ConfigError("settings server.tls.cert_file and server.tls.key_file go together")
    if config.client_ca_file and not config.cert_file:
        raise ConfigError("setting server.tls.client_ca_file needs server.tls.cert_file")


def load_tls(config: TlsConfig) -> TlsFiles | None:
    """Read and check the files; None when TLS is off."""
    if not config.cert_file:
        return None
    cert = _read(config.cert_file, "cert_file")
    key = _read(config.key_file, "key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except (ssl.SSLError, ValueError) as error:
        raise ConfigError(
            f"server.tls: cannot use certificate {config.cert_file} with key"
            f" {config.key_file}: {getattr(error, 'reason', None) or error}"
        ) from None
    client_ca = None
    if config.client_ca_file:
        client_ca = _read(config.client_ca_file, "client_ca_file")
        try:
            context.load_verify_locations(config.client_ca_file)
        except ssl.SSLError as error:
            raise ConfigError(
                f"server.tls.client_ca_file {config.client_ca_file} holds no usable CA"
                f" certificate: {error.reason or error}"
            ) from None
    return TlsFiles(config, cert, key, client_ca)


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read server.tls.{setting} {path}: {error.strerror}") from None
