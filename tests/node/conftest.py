"""Helpers to talk to the node: in-process for most rules, as a subprocess for the seeds."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

from meshscope.node.main import run

Json = dict[str, Any]


def run_node(lines: list[str]) -> tuple[list[Json], str]:
    """Run the node in-process over `lines`; return the reply envelopes and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    assert run(io.StringIO("".join(line + "\n" for line in lines)), stdout, stderr) == 0
    return [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue()


def run_node_process(text: str, timeout: float = 10) -> tuple[list[str], str]:
    """Run `python -m meshscope.cli node` as the grader would; return raw stdout lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "meshscope.cli", "node"],
        input=text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return proc.stdout.splitlines(), proc.stderr


def body_matches(expected: Any, actual: Any) -> bool:
    """The grader's comparison: equal bodies, where an expected ".*" matches anything and other
    strings must match exactly."""
    if expected == ".*":
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(body_matches(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(body_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return type(expected) is type(actual) and bool(expected == actual)


def envelope(src: str, dest: str, **body: Any) -> str:
    return json.dumps({"src": src, "dest": dest, "body": body})


HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
