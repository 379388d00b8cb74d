"""What one prompt's refinement spent: its calls, hits, tokens, dollars and time per stage (CallMeter)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from judges.types import Completion, Usage

_COUNTED = ("calls", "cache_hits", "failures", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd",
            "seconds")


@dataclass
class CallMeter:
    """Calls, cache hits, tokens and cost per stage, counted from the completions and verdicts themselves.

    Not from Accounting snapshots: callers refine several prompts at once on one shared Accounting, and a
    before/after difference would then count the other prompts' calls too. A completion that was not served
    from the cache is one backend call; a grading call shared by k criteria counts 1/k for each. `seconds` is the
    wall time this prompt waited on a stage's calls (`timed`), so that a slow refine says where its time went.
    """

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    def _stage(self, stage: str) -> dict[str, float]:
        return self.stages.setdefault(stage, dict.fromkeys(_COUNTED, 0.0))

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the block (one call, or one batch of them, awaited) to `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._stage(stage)["seconds"] += time.perf_counter() - start

    def add(self, stage: str, cached: bool, failed: bool, usage: Usage, share: float = 1.0) -> float:
        """Record one (share of a) call; returns the calls it cost (0 for a cache hit)."""
        t = self._stage(stage)
        calls = 0.0 if cached else share
        t["calls"] += calls
        t["cache_hits"] += share - calls
        t["failures"] += share if failed else 0.0
        t["prompt_tokens"] += usage.prompt_tokens
        t["cached_tokens"] += usage.cached_tokens
        t["completion_tokens"] += usage.completion_tokens
        t["cost_usd"] += usage.cost_usd
        return calls

    def completion(self, stage: str, c: Completion) -> float:
        return self.add(stage, c.cached, not c.ok, c.usage)

    def totals(self) -> dict[str, float]:
        return {k: sum(t[k] for t in self.stages.values()) for k in _COUNTED}
