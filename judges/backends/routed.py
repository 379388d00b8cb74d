"""One local model on two engines, each request sent to the engine that is faster at its kind of work.

Measured on 2 cores with the embedded Qwen 1.5B (bench/bench_local_engines.py, docs/results/README.md): llama.cpp
decodes one answer about 3x faster than transformers, while transformers (bf16, prefix-batched) grades about 4x
more criteria per second, because a verdict is all prompt and one or two answer tokens. So requests whose answer
is short (`short_max_tokens`: verdicts, overlap/conflict checks, batched verdict lists) go to transformers and
everything that writes (samples, references, rubric lists, decompositions, pairwise reasoning) goes to llama.cpp.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Completion, Request
from .base import Backend, OnDone


class RoutedBackend:
    """Implements the Backend protocol over a `short` and a `long` backend of the same model."""

    def __init__(self, short: Backend, long: Backend, *, short_max_tokens: int = 64) -> None:
        if short.model != long.model:
            raise ValueError(f"one model on two engines, not {short.model!r} and {long.model!r}")
        self.short, self.long = short, long
        self.model = short.model
        self.cache_id = f"{self.model}@hybrid"  # a description only: cache keys come from cache_id_for
        self.short_max_tokens = short_max_tokens

    def load(self) -> None:
        """Load both engines now (e.g. to time loading apart from the first requests)."""
        for b in (self.short, self.long):
            load = getattr(b, "load", None)
            if load is not None:
                load()

    def route(self, request: Request) -> Backend:
        return self.short if request.params.max_tokens <= self.short_max_tokens else self.long

    def cache_id_for(self, request: Request) -> str:
        """The cache identity of the engine that answers this request, so its answers are shared with runs of
        that engine alone."""
        backend = self.route(request)
        return getattr(backend, "cache_id", None) or backend.model

    async def complete(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        for backend in (self.short, self.long):  # one after the other: both engines want every core
            idx = [i for i, r in enumerate(requests) if self.route(r) is backend]
            if idx:
                report = None if on_done is None else (lambda j, c, idx=idx: on_done(idx[j], c))
                for i, c in zip(idx, await backend.complete([requests[i] for i in idx], on_done=report)):
                    out[i] = c
        return [c if c is not None else Completion(error="internal: no result") for c in out]

    async def aclose(self) -> None:
        await self.short.aclose()
        await self.long.aclose()
