"""Rubric sets refined on demand, once per key: the one helper `rrd judge` (prompts with no set), `rrd eval` (a set
per method and prompt or item) and the reward functions (prompts with no set) refine through."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from .records import RubricSet


def usable(rs: RubricSet) -> bool:
    """A set worth keeping: refined to the end with at least one rubric. (A failed or empty one is not kept, so a
    later call may try again.)"""
    return rs.stopped != "failed" and bool(rs.texts)


class RefineOnce:
    """Sets by key (`sets`, shared with the caller), refined on demand: concurrent callers for one key await one
    refinement, and its error reaches every one of them. `keep` says which results are stored (default: all);
    `on_new(key, set)` sees each stored one (to append it to a file)."""

    def __init__(self, sets: dict[str, RubricSet] | None = None, *, keep: Callable[[RubricSet], bool] | None = None,
                 on_new: Callable[[str, RubricSet], None] | None = None):
        self.sets: dict[str, RubricSet] = sets if sets is not None else {}
        self.keep = keep
        self.on_new = on_new
        self._pending: dict[str, asyncio.Future[RubricSet]] = {}

    async def get(self, key: str, refine: Callable[[], Awaitable[RubricSet]]) -> tuple[RubricSet, bool]:
        """(set, fresh): the stored set for `key`, the one being refined for another caller, or `refine()`'s
        (fresh=True for the caller that ran it)."""
        if key in self.sets:
            return self.sets[key], False
        loop = asyncio.get_running_loop()
        pending = self._pending.get(key)
        if pending is not None and pending.get_loop() is loop:  # (a reward may be called from several loops)
            return await asyncio.shield(pending), False
        future: asyncio.Future[RubricSet] = loop.create_future()
        self._pending[key] = future
        try:
            rs = await refine()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiting callers re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        if self.keep is None or self.keep(rs):
            self.sets[key] = rs
            if self.on_new is not None:
                self.on_new(key, rs)
        future.set_result(rs)
        return rs, True
