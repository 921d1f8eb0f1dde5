"""A server that cannot take its auth or TLS settings says why in one line and exits 2 (as
every configuration error does), with no traceback and no secret, before opening the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth.certs import make_certs
from tests.auth.tokens import READER
from tests.e2e.test_durability import Ports, server_env

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "serve"],
        env=server_env(tmp_path / "db.duckdb", Ports(), settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs")
    make_certs(directory)
    return directory


def _cases(tmp_path: Path, certs: Path) -> dict[str, tuple[dict[str, str], str]]:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(f"tokens: [{{name: a, token: '{READER}, scopes: [read]}}]\n")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    auth = {"MESHSCOPE_AUTH__ENABLED": "true"}
    tls = {"MESHSCOPE_SERVER__TLS__CERT_FILE": str(certs / "server.pem"),
           "MESHSCOPE_SERVER__TLS__KEY_FILE": str(certs / "server.key")}  # fmt: skip
    return {
        "no tokens file": (auth, "auth.tokens_file is required"),
        "missing tokens file": (
            {**auth, "MESHSCOPE_AUTH__TOKENS_FILE": str(tmp_path / "absent.yaml")},
            f"cannot read auth.tokens_file {tmp_path / 'absent.yaml'}: No such file",
        ),
        "invalid tokens file": (
            {**auth, "MESHSCOPE_AUTH__TOKENS_FILE": str(bad_yaml)},
            f"auth.tokens_file {bad_yaml} is not valid YAML or JSON near line",
        ),
        "missing certificate": (
            {**tls, "MESHSCOPE_SERVER__TLS__CERT_FILE": str(tmp_path / "absent.pem")},
            f"cannot read server.tls.cert_file {tmp_path / 'absent.pem'}",
        ),
        "key without certificate": (
            {"MESHSCOPE_SERVER__TLS__KEY_FILE": str(certs / "server.key")},
            "server.tls.cert_file and server.tls.key_file go together",
        ),
        "key of another certificate": (
            {**tls, "MESHSCOPE_SERVER__TLS__KEY_FILE": str(certs / "client.key")},
            "server.tls: cannot use certificate",
        ),
        "garbage certificate": (
            {**tls, "MESHSCOPE_SERVER__TLS__CERT_FILE": str(garbage)},
            "server.tls: cannot use certificate",
        ),
        "garbage client CA": (
            {**tls, "MESHSCOPE_SERVER__TLS__CLIENT_CA_FILE": str(garbage)},
            f"server.tls.client_ca_file {garbage} holds no usable CA certificate",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no tokens file",
        "missing tokens file",
        "invalid tokens file",
        "missing certificate",
        "key without certificate",
        "key of another certificate",
        "garbage certificate",
        "garbage client CA",
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, certs_dir: Path, case: str) -> None:
    settings, expected = _cases(tmp_path, certs_dir)[case]
    result = _run(tmp_path, settings)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("meshscope: ") and expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr and READER not in result.stderr
    assert not (tmp_path / "db.duckdb").exists()  # the store was not opened
