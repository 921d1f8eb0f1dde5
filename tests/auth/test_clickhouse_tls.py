"""meshscope's ClickHouse store over TLS, against a real Debian ClickHouse 18.16 with a secure
native port: `clickhouses://...?ca_certs=` stores and reads spans; a server whose certificate
the given CA did not sign is refused at open, naming the server and not the password."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshscope.model.spans import Span, SpanKind
from meshscope.store.clickhouse import ClickHouseStorage, ClickHouseUnavailableError
from tests.auth.certs import Certs, make_certs
from tests.conformance import clickhouse_server
from tests.ingest.asgi_server import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(clickhouse_server.available()), reason="no clickhouse-server"),
]


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Certs]]:
    certs = make_certs(tmp_path_factory.mktemp("ch-certs"))
    port = free_port()
    extra = f"""<tcp_port_secure>{port}</tcp_port_secure>
    <openSSL><server><certificateFile>{certs.server_cert}</certificateFile>
        <privateKeyFile>{certs.server_key}</privateKeyFile>
        <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>
        <disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>
"""
    server = clickhouse_server.ClickHouseServer(extra_config=extra)
    try:
        yield port, certs
    finally:
        server.stop()


def test_spans_over_tls(secure: tuple[int, Certs]) -> None:
    port, certs = secure
    storage = ClickHouseStorage(
        f"clickhouses://default@127.0.0.1:{port}/default?ca_certs={certs.ca}", "tls_test"
    )
    try:
        now = time.time_ns()
        span = Span(trace_id="ab" * 16, span_id="cd" * 8, name="GET /", service="tls",
                    start_ns=now, end_ns=now + 1000, kind=SpanKind.SERVER)  # fmt: skip
        storage.traces.write_spans([span])
        assert [s.name for s in storage.traces.get_trace("ab" * 16)] == ["GET /"]
    finally:
        storage.close()


def test_an_untrusted_server_is_refused(secure: tuple[int, Certs], tmp_path: Path) -> None:
    port, certs = secure
    with pytest.raises(ClickHouseUnavailableError, match="CERTIFICATE_VERIFY_FAILED") as raised:
        ClickHouseStorage(
            f"clickhouses://default:pw-secret@127.0.0.1:{port}/default?ca_certs={certs.other_ca}",
            "tls_test",
        )
    assert f"127.0.0.1:{port}" in str(raised.value) and "pw-secret" not in str(raised.value)
