"""The demo mesh: which services exist, who calls whom, and where everything listens.

    traffic -> web -> api -> cache
                        \\-> db
                        \\-> worker (accepts a job with 202, processes it in the background)

Every service has its own sidecar (inbound listener + egress listener). Ports are laid out
from one base port so two demos (or a test) can run side by side.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from meshscope.demo.faults import Faults

SERVICES = ("web", "api", "db", "cache", "worker")
CALLS: dict[str, tuple[str, ...]] = {"web": ("api",), "api": ("cache", "db", "worker")}


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Everything the demo's child processes need, passed to them as JSON."""

    otlp_endpoint: str
    host: str = "127.0.0.1"
    base_port: int = 18000
    rate: float = 5.0  # requests/s from the traffic generator; 0 = none
    faults: Faults = field(default_factory=Faults)
    export_interval_s: float = 0.5

    def app_port(self, service: str) -> int:
        return self.base_port + SERVICES.index(service)

    def inbound_port(self, service: str) -> int:
        return self.base_port + 10 + SERVICES.index(service)

    def egress_port(self, service: str) -> int:
        return self.base_port + 20 + SERVICES.index(service)

    @property
    def admin_port(self) -> int:
        """The sidecars' `/metrics` and `/health`."""
        return self.base_port + 30

    @property
    def control_port(self) -> int:
        """The fault switch (`GET`/`PUT /faults`) and the traffic generator's counters."""
        return self.base_port + 31

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    @property
    def entry_url(self) -> str:
        """Where outside traffic enters the mesh: web's sidecar."""
        return self.url(self.inbound_port("web"))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DemoSettings:
        raw: dict[str, Any] = json.loads(text)
        raw["faults"] = Faults.from_dict(raw.get("faults") or {})
        return cls(**raw)
