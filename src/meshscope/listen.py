"""Binding the listeners before anything starts, and naming who holds a busy port.

`meshscope serve` binds every port first, so a port in use is reported as one line and
nothing (store, worker processes, other listeners) has been started. The holder of a port
is looked up in /proc (Linux, best effort: another user's processes are not readable).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


class StartupError(Exception):
    """Why the server cannot start, as one line for the user."""


def bind_tcp(host: str, port: int, name: str) -> socket.socket:
    """A listening-ready TCP socket bound to host:port (not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise StartupError(
                f"cannot listen on {host}:{port} ({name}): port in use{_by(holder(port))}"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port} ({name}): {error.strerror}") from None
    return sock


def holder(port: int) -> int | None:
    """The id of a process listening on TCP `port`, if one can be found."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:
            continue
    return None


def describe(pid: int) -> str:
    """`pid 123 (command line)`, the command line when readable."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        command = " ".join(part.decode(errors="replace") for part in argv if part)
    except OSError:
        command = ""
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def _by(pid: int | None) -> str:
    return "" if pid is None else f" by {describe(pid)}"
