"""Running the async reward from synchronous code: one background event-loop thread for the object's lifetime,
so loop-bound backend clients stay valid across calls, and calls work even from inside a running event loop
(the calling thread blocks until the result is ready).

Why not anyio's `start_blocking_portal`, which does the same: its loop runs on a non-daemon executor thread that
lives until the portal's context exits, and a reward object is often never closed (verl builds one per worker and
drops it). Tried: with the portal the reward tests pass, then the interpreter hangs at exit waiting on that thread
(2 runs of 2); this bridge's thread is a daemon."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


class SyncBridge:
    def __init__(self, name: str = "rubric-reward-loop"):
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._background_loop()).result()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                t = threading.Thread(target=run, name=self.name, daemon=True)
                t.start()
                started.wait()
                self._loop, self._thread = loop, t
            return self._loop

    def close(self) -> None:
        """Stop the background loop (a later `run` starts a new one)."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(5)
        if loop is not None and not loop.is_running():
            loop.close()
