"""Per-run accounting of calls, cache hits, tokens and dollars, and the budget cap.

One Accounting object is shared by everything in a run (refine, judge, eval, rewards), so the progress bar and
the final summary see every call. The budget check happens *before* a call is sent, against the spend so far
plus a pessimistic estimate of that call, so a run stops cleanly without going past the cap.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field


class BudgetExceeded(RuntimeError):
    """Raised instead of sending a call that could take spending past the budget."""


@dataclass
class Accounting:
    budget_usd: float | None = None
    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    #: answers that arrived but could not be read as a verdict (unscored and, like failures, never cached)
    unreadable: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    #: prompt tokens served from a cache of evaluated prefixes (Usage.cached_tokens), not evaluated again
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    #: seconds spent waiting before retries (backoff and Retry-After, each capped)
    waited_s: float = 0.0
    #: calls whose server reported a cost above their reservation (charged at the reservation)
    overreported: int = 0
    reserved_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.budget_usd is not None and not (math.isfinite(self.budget_usd) and self.budget_usd > 0):
            raise ValueError(f"budget_usd must be a finite number > 0, not {self.budget_usd!r}")

    def reserve(self, estimate_usd: float) -> None:
        """Claim room for one call before sending it; raises BudgetExceeded if it might not fit."""
        with self._lock:
            if self.budget_usd is not None and self.cost_usd + self.reserved_usd + estimate_usd > self.budget_usd:
                raise BudgetExceeded(
                    f"budget ${self.budget_usd:.4f} reached: spent ${self.cost_usd:.4f}, in flight "
                    f"${self.reserved_usd:.4f}, next call up to ${estimate_usd:.4f}"
                )
            self.reserved_usd += estimate_usd

    def record_call(
        self,
        *,
        reserved_usd: float,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_s: float,
        failed: bool,
        retries: int,
        cached_tokens: int = 0,
    ) -> None:
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
            self.calls += 1
            self.failures += int(failed)
            self.retries += retries
            self.prompt_tokens += prompt_tokens
            self.cached_tokens += cached_tokens
            self.completion_tokens += completion_tokens
            self.cost_usd += cost_usd
            self.latency_s += latency_s

    def record_unreadable(self, n: int = 1) -> None:
        with self._lock:
            self.unreadable += n

    #: the counters, summed when the accountings of several processes are added up (Ray workers)
    COUNTERS = ("calls", "cache_hits", "failures", "unreadable", "retries", "prompt_tokens", "cached_tokens",
                "completion_tokens", "cost_usd", "latency_s", "waited_s", "overreported")

    def add(self, other: Accounting | dict[str, float | int | None]) -> None:
        """Add another accounting's counters (an Accounting or its snapshot) to this one."""
        get = other.get if isinstance(other, dict) else lambda k, d=0: getattr(other, k, d)
        with self._lock:
            for key in self.COUNTERS:
                setattr(self, key, getattr(self, key) + (get(key, 0) or 0))

    def record_wait(self, seconds: float) -> None:
        with self._lock:
            self.waited_s += seconds

    def record_overreport(self) -> None:
        with self._lock:
            self.overreported += 1

    def record_hit(self) -> None:
        with self._lock:
            self.cache_hits += 1

    def snapshot(self) -> dict[str, float | int | None]:
        with self._lock:
            return {
                k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "reserved_usd"
            }

    def summary(self) -> str:
        """One line of what this run sent and spent, for the end-of-run summaries of every command."""
        with self._lock:
            line = (f"{self.calls} calls, {self.cache_hits} cache hits, {self.failures} failed, {self.unreadable} "
                    f"unreadable answers, {self.prompt_tokens + self.completion_tokens} tokens, "
                    f"${self.cost_usd:.4f}")
            if self.cached_tokens:
                line += (f" ({self.prompt_tokens - self.cached_tokens} prompt tokens evaluated, {self.cached_tokens} "
                         f"reused from evaluated prefixes: {self.cached_tokens / max(1, self.prompt_tokens):.0%})")
            if self.waited_s:
                line += f", {self.waited_s:.1f} s waiting to retry"
            if self.overreported:
                line += (f"; {self.overreported} calls reported more than they could cost (charged at their "
                         "reservation)")
            return line

    def postfix(self) -> str:
        """Short text for a tqdm postfix."""
        unreadable = f" unreadable={self.unreadable}" if self.unreadable else ""
        return f"calls={self.calls} hits={self.cache_hits} fail={self.failures}{unreadable} ${self.cost_usd:.4f}"
