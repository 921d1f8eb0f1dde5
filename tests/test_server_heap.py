"""`meshscope serve` freezes what startup built, so full garbage collections skip it."""

from __future__ import annotations

import gc

from meshscope.server import freeze_startup_heap


def test_startup_objects_leave_the_collectors_generations() -> None:
    kept = [[n] for n in range(1000)]  # alive, tracked containers
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
        oldest = {id(item) for item in gc.get_objects(generation=2)}
        assert not any(id(item) in oldest for item in kept)
    finally:
        gc.unfreeze()
