"""The one interface every backend implements.

A backend turns Requests into Completions. It never raises for a failed call: it returns a Completion with
`error` set (after its own retries), so one bad call cannot crash a run. A call the budget cannot cover is not
sent and comes back with `refused=True`; the Judge saves everything else, then stops the run. Backends record
every real call in the shared Accounting; the Judge above them handles the cache, so a backend only ever sees
cache misses.

`complete` takes a whole list at once so a backend can exploit structure across requests: the API backend runs
them concurrently, the local backend batches them and reuses the KV cache of shared prompt prefixes. It calls
`on_done(i, completion)` the moment request i has its answer (the API backend per answer, an in-process engine
when the computation holding it ends), so the Judge stores answers as they arrive and a killed run loses only
the calls still in flight.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

from ..types import Completion, Request

#: called with (index of the request, its completion) as each answer arrives
OnDone = Callable[[int, Completion], None]


@runtime_checkable
class Backend(Protocol):
    #: canonical model name; part of every cache key (a backend may add a `cache_id` attribute, e.g.
    #: "local:NAME@llama.cpp", when its answers differ from another engine's for the same model name)
    model: str

    async def complete(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Completion]:
        """One Completion per Request, same order. Failures are Completions with `error` set."""
        ...

    async def aclose(self) -> None:
        """Release clients, servers or model memory."""
        ...
