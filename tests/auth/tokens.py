"""A tokens file with one credential per scope, a hashed one and a basic-auth user."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

WRITER = "writer-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef0"
HASHED = "hashed-reader-token-0123456789"  # the file holds only its sha256
WRONG = "no-such-token-0123456789abcdef"
GRAFANA = ("grafana", "grafana-password-42")
SECRETS = (WRITER, READER, ADMIN, HASHED, GRAFANA[1])


def tokens_yaml() -> str:
    digest = hashlib.sha256(HASHED.encode()).hexdigest()
    return f"""tokens:
  - {{name: collector, token: {WRITER}, scopes: [write], tenants: [team-a]}}
  - {{name: dashboards, token: {READER}, scopes: [read]}}
  - {{name: operator, token: {ADMIN}, scopes: [admin]}}
  - {{name: hashed, token_sha256: {digest}, scopes: [read]}}
  - {{name: grafana, username: {GRAFANA[0]}, password: {GRAFANA[1]}, scopes: [read]}}
"""


def write_tokens(path: Path) -> Path:
    path.write_text(tokens_yaml())
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}
