"""Run a command's event loop so that Ctrl-C stops it within seconds, even with calls in flight.

asyncio.run cancels the main task once on the first Ctrl-C. That single cancellation can be lost: before
Python 3.12, asyncio.wait_for swallows a cancellation that arrives just as the awaited call completes (the
race is likelier on a loaded machine, with many calls finishing at once), and the run then carries on to the
end as if nothing had been pressed. Here the main task is cancelled again every `repeat_s` until it is done,
so one lost cancellation costs seconds, not the rest of the run. What finished was appended as it arrived.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], repeat_s: float = 2.0) -> T:
    """asyncio.run(main); Ctrl-C (SIGINT) raises KeyboardInterrupt once the main task has stopped."""
    return asyncio.run(_interruptible(main, repeat_s))


async def _interruptible(main: Coroutine[Any, Any, T], repeat_s: float) -> T:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    handled = False
    # A process started with SIGINT ignored (nohup, `cmd &` in a script) keeps ignoring it, as Python does.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            handled = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals (Windows)
            pass
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=repeat_s)
            if interrupted and not task.done():
                task.cancel()  # the last one was swallowed (or cleanup is still running): ask again
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)
    if interrupted and task.cancelled():
        raise KeyboardInterrupt
    return task.result()
