"""What a stop could not write, kept in a file beside the store for the next start.

At stop the writer writes the spans tail sampling kept, the calls no request owned and the
derived metrics' totals (ADR 0023). When the store is down then (a ClickHouse server stopped
with meshscope, as a deploy does), those were lost: the totals went back to the last flush,
the spans were gone. They are written here instead, and the next start puts the spans and
calls back in the backlog and goes on from these totals (newer than the stored ones). Every
stop also keeps the spans waiting for their service-graph pair, so a call whose two sides
arrive either side of a restart is still paired.

The file is meshscope's own, beside its store (`<store path>.spool`), written whole (a
temporary file, fsync, rename) and read once: pickled, as the ingest workers hand these same
objects to the owner. It is trusted as the store itself is: whoever can write it can write
the store.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshscope.model.calls import Call
from meshscope.model.metrics import MetricPoint

log = logging.getLogger(__name__)

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Spooled:
    encoded: list[Any]  # span encodings of the store's own encoder
    calls: list[Call]
    points: list[MetricPoint]  # the derived series' totals at the stop
    pairs: Any = None  # the service-graph pairer's state (`SpanPairer.state`)


def save(path: Path, spooled: Spooled) -> None:
    """Write `spooled` to `path` whole (replacing any earlier spool)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as out:
        pickle.dump((_FORMAT, spooled), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def take(path: Path) -> Spooled | None:
    """The spool at `path` (then removed), or None: none, or one this version cannot read
    (kept aside as `<path>.unreadable` and logged, never a failed start)."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as source:
            version, spooled = pickle.load(source)  # meshscope's own file (module doc)
        if version != _FORMAT or not isinstance(spooled, Spooled):
            raise ValueError(f"format {version!r}")
    except Exception as error:
        aside = path.with_name(path.name + ".unreadable")
        os.replace(path, aside)
        log.error("the spool %s cannot be read (%s); kept as %s", path, error, aside)
        return None
    path.unlink()
    return spooled
