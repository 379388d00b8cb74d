"""One object per running event loop, weakly keyed by the loop.

asyncio primitives (semaphores, locks) and aiohttp sessions are bound to the loop that first used them, and a
sync caller (rewards' sync bridge, a notebook) may run several loops over one backend's lifetime. Keying by
`id(loop)` is wrong: Python reuses the id of a dead loop, so a new loop could be handed a semaphore bound to the
old one. A WeakKeyDictionary on the loop itself forgets an entry when its loop is collected."""

from __future__ import annotations

import asyncio
import weakref
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """`get()` returns this loop's object, made by `make()` on first use in the loop."""

    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        item = self._items.get(loop)
        if item is None:
            item = self._items[loop] = self._make()
        return item

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))

    def clear(self) -> None:
        self._items.clear()
