"""`meshscope serve` freezes what startup built, so full garbage collections skip it, and
takes the open files its hard limit allows."""

from __future__ import annotations

import gc
import resource

from meshscope.server import freeze_startup_heap, raise_open_files_limit


def test_startup_objects_leave_the_collectors_generations() -> None:
    kept = [[n] for n in range(1000)]  # alive, tracked containers
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
        oldest = {id(item) for item in gc.get_objects(generation=2)}
        assert not any(id(item) in oldest for item in kept)
    finally:
        gc.unfreeze()


def test_the_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        got = raise_open_files_limit()
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard == resource.RLIM_INFINITY:  # left alone: an infinite soft limit is refused
            assert got == now == lowered
        else:
            assert got == now == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
