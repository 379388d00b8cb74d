"""Ctrl-C stops a run within seconds even when a cancellation is swallowed on the way (rrd.interrupt)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from rrd import interrupt


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """These tests send SIGINT to their own process: a test run started in the background (`pytest &`)
    inherits it ignored, which rrd.interrupt respects."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _sigint_after(seconds: float) -> None:
    threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT)).start()


async def _swallows_the_first_cancel(log: list[str]) -> str:
    """Like asyncio.wait_for before 3.12 when the call completes just as it is cancelled: the first
    cancellation is lost and the work goes on."""
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        log.append("swallowed")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        log.append("stopped")
        raise
    return "finished"


def test_a_swallowed_cancellation_is_repeated_until_the_run_stops():
    log: list[str] = []
    _sigint_after(0.3)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        interrupt.run(_swallows_the_first_cancel(log), repeat_s=0.5)
    assert log == ["swallowed", "stopped"]
    assert time.monotonic() - t0 < 5  # not the 60 s the work would take
    # the process' own Ctrl-C handling is back: asyncio.run's handler no longer installed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cleanup_in_finally_runs_and_results_pass_through():
    cleaned: list[bool] = []

    async def work() -> int:
        try:
            await asyncio.sleep(30)
            return 1
        finally:
            await asyncio.sleep(0)  # e.g. closing clients
            cleaned.append(True)

    _sigint_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        interrupt.run(work())
    assert cleaned == [True]

    async def quick() -> int:
        return 7

    assert interrupt.run(quick()) == 7


def test_an_ignored_sigint_stays_ignored():
    """Started with SIGINT ignored (nohup, `cmd &` in a script), a run is not stopped by it, as Python does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def work() -> str:
        await asyncio.sleep(0.6)
        return "done"

    _sigint_after(0.2)
    assert interrupt.run(work(), repeat_s=0.1) == "done"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
