"""PerLoop: one object per event loop, forgotten with its loop (an id() key could be reused by a new loop)."""

from __future__ import annotations

import asyncio
import gc

from judges.loops import PerLoop


def test_one_object_per_loop_and_dead_loops_are_forgotten():
    made = []
    per = PerLoop(lambda: made.append(object()) or made[-1])

    async def get_twice():
        return per.get(), per.get()

    first = asyncio.run(get_twice())
    second = asyncio.run(get_twice())
    assert first[0] is first[1] and second[0] is second[1]  # the same object within a loop
    assert first[0] is not second[0] and len(made) == 2  # a new loop gets its own
    gc.collect()
    assert list(per) == []  # asyncio.run closed both loops; nothing keeps them or their objects
