"""Known generated logs for the Loki tests, as plain Python, and their push bodies.

Three services log one line every 10 s for 30 minutes, alternately JSON and logfmt, with
levels, status codes, durations and (for every other line) a trace and span id in structured
metadata. Expected answers in the tests are computed from `LINES` directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import snappy

from meshscope.ingest.lokipb.push_pb2 import PushRequest

S = 10**9
T0 = 1_700_000_000 * S
SERVICES = ("cart", "pay", "web")
LEVELS = ("info", "info", "warn", "error", "debug")
STATUSES = (200, 200, 201, 404, 500, 503)


@dataclass(frozen=True)
class Line:
    service: str
    time_ns: int
    level: str
    status: int
    duration_ms: int
    body: str
    trace_id: str = ""
    span_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def _make() -> list[Line]:
    lines: list[Line] = []
    for n in range(180):
        for k, service in enumerate(SERVICES):
            i = n * 3 + k
            level, status, duration = LEVELS[i % 5], STATUSES[i % 6], (i * 37) % 900
            if i % 2:
                body = json.dumps(
                    {
                        "msg": f"handled {i}",
                        "status": status,
                        "duration": f"{duration}ms",
                        "user": {"id": i % 7},
                    }
                )
            else:
                body = f'msg="handled {i}" status={status} duration={duration}ms path=/p{i % 4}'
            traced = i % 2 == 0
            lines.append(
                Line(
                    service,
                    T0 + n * 10 * S + k,
                    level,
                    status,
                    duration,
                    body,
                    f"{i + 1:032x}" if traced else "",
                    f"{i + 1:016x}" if traced else "",
                    {"service_name": service, "env": "prod" if k < 2 else "dev", "level": level},
                )
            )
    return lines


LINES = _make()


def json_push(lines: list[Line]) -> bytes:
    """Loki's JSON push body: one stream per line's labels, trace ids as structured metadata."""
    streams: dict[str, dict[str, object]] = {}
    for line in lines:
        key = json.dumps(line.labels, sort_keys=True)
        stream = streams.setdefault(key, {"stream": line.labels, "values": []})
        value: list[object] = [str(line.time_ns), line.body]
        if line.trace_id:
            value.append({"trace_id": line.trace_id, "span_id": line.span_id})
        stream["values"].append(value)  # type: ignore[attr-defined]
    return json.dumps({"streams": list(streams.values())}).encode()


def protobuf_push(lines: list[Line]) -> bytes:
    """The snappy-compressed `logproto.PushRequest` Promtail would send for `lines`."""
    request = PushRequest()
    for line in lines:
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(line.labels.items()))
        entry = request.streams.add(labels="{" + labels + "}").entries.add(line=line.body.encode())
        entry.timestamp.FromNanoseconds(line.time_ns)
        if line.trace_id:
            entry.structuredMetadata.add(name="traceID", value=line.trace_id.upper())
            entry.structuredMetadata.add(name="span_id", value=line.span_id)
    return bytes(snappy.compress(request.SerializeToString()))
