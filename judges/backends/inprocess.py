"""What every in-process backend shares: one computation at a time in a worker thread, cancellation, accounting.

A local model is one object in memory that cannot run two batches at once. Callers queue on an asyncio lock (so
waiting requests do not each pin an executor thread), the batch runs in a worker thread (so the event loop stays
responsive while the CPU is busy), and a cancelled caller sets an event that the worker checks every decode step,
so Ctrl-C does not wait for a long generation that nobody will read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from ..accounting import Accounting
from ..loops import PerLoop
from ..types import Completion, Request
from .base import OnDone


class GenerationCancelled(BaseException):
    """Raised in the worker thread when the awaiting caller was cancelled; nobody reads its result. A
    BaseException, like KeyboardInterrupt, so the per-row `except Exception` fallbacks do not retry the rows."""


class InProcessBackend:
    """Base of the local backends. Subclasses implement `_compute` (and `_unload`) and set `model`."""

    model: str
    accounting: Accounting | None

    def __init__(self, accounting: Accounting | None) -> None:
        self.accounting = accounting
        self._lock = threading.Lock()  # one model, one computation at a time, whatever the event loop
        self._queues: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)  # requests of one loop wait their turn
        self._cancel: threading.Event | None = None  # set while a computation runs; checked every decode step

    async def complete(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Completion]:
        """One computation for the whole list (batching and prefix reuse need it whole): its answers are
        reported to `on_done` together, when it ends."""
        if not requests:
            return []
        queue = self._queues.get()
        async with queue:
            cancel = threading.Event()
            try:
                results = await asyncio.to_thread(self._run_locked, list(requests), cancel)
            except asyncio.CancelledError:
                cancel.set()
                raise
        if on_done is not None:
            for i, completion in enumerate(results):
                on_done(i, completion)
        return results

    async def aclose(self) -> None:
        await asyncio.to_thread(self._unload_locked)

    def load(self) -> None:
        """Load the model now rather than on the first request (e.g. to time loading separately)."""
        with self._lock:
            self._ensure_loaded()

    def _run_locked(self, requests: list[Request], cancel: threading.Event | None = None) -> list[Completion]:
        with self._lock:
            self._cancel = cancel
            try:
                results = self._compute(requests)
            finally:
                self._cancel = None
        self._record(results)
        return results

    def _unload_locked(self) -> None:
        with self._lock:
            self._unload()

    def _check_cancelled(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise GenerationCancelled("the caller was cancelled")

    def _record(self, results: list[Completion]) -> None:
        if self.accounting is None:
            return
        for c in results:
            self.accounting.record_call(
                reserved_usd=0.0,
                prompt_tokens=c.usage.prompt_tokens,
                cached_tokens=c.usage.cached_tokens,
                completion_tokens=c.usage.completion_tokens,
                cost_usd=0.0,
                latency_s=c.latency_s,
                failed=c.error is not None,
                retries=0,
            )

    # -- for subclasses ---------------------------------------------------------------------------------------
    def _ensure_loaded(self) -> object:
        raise NotImplementedError

    def _compute(self, requests: list[Request]) -> list[Completion]:
        """One Completion per Request; never raises for a failed request (it returns one with `error`)."""
        raise NotImplementedError

    def _unload(self) -> None:
        raise NotImplementedError
