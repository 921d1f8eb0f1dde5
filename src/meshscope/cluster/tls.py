"""How a node verifies its peers (and proves itself to them) on the internal routes.

With the peers' listeners on TLS (`server.tls`) under a private CA, `cluster.ca_file` names
that CA; with mutual TLS (`server.tls.client_ca_file` on the peers), `cluster.cert_file` and
`cluster.key_file` are the certificate this node presents. Without them peers are verified
against the system CAs. Files are read once at start; a bad one stops the start with one
line naming it.
"""

from __future__ import annotations

import ssl

from meshscope.cluster.config import ClusterConfig
from meshscope.errors import ConfigError


def peer_verify(config: ClusterConfig) -> ssl.SSLContext | bool:
    """What httpx verifies peers with: a context with the configured CA and client
    certificate, or True (the system CAs)."""
    if not (config.ca_file or config.cert_file):
        return True
    try:
        context = ssl.create_default_context(cafile=config.ca_file or None)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"setting cluster.ca_file {config.ca_file!r}: {error}") from None
    if config.cert_file:
        try:
            context.load_cert_chain(config.cert_file, config.key_file or None)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"settings cluster.cert_file / key_file {config.cert_file!r}: {error}"
            ) from None
    return context
