"""Whether a file changed since it was last read (for files reloaded without a restart)."""

from __future__ import annotations

import os
from pathlib import Path

Stamp = tuple[int, int, int]


def stamp(path: Path) -> Stamp | None:
    """The file's modification time, size and inode (None when it cannot be read): another
    stamp means the file was written or replaced."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)
