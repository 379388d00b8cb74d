"""A scripted Backend for deterministic control-flow tests. It never stands in for an integration test."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

from judges.accounting import Accounting
from judges.backends.base import OnDone
from judges.backends.chat import stop_cut
from judges.types import Completion, Request, Usage

Script = Callable[[Request], "str | Completion"]


class ScriptedBackend:
    """Answers each request with `script(request)`; records every call like a real backend would."""

    def __init__(self, script: Script, model: str = "scripted", accounting: Accounting | None = None):
        self.script = script
        self.model = model
        self.accounting = accounting or Accounting()
        self.requests: list[Request] = []
        #: the requests of each complete() call: what an in-process model would have run as one batch
        self.batches: list[list[Request]] = []

    async def complete(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Completion]:
        self.batches.append(list(requests))
        out = []
        for i, req in enumerate(requests):
            self.requests.append(req)
            answer = self.script(req)
            completion = answer if isinstance(answer, Completion) else Completion(text=answer, usage=Usage(10, 1))
            cut = stop_cut(completion.text, req.params.stop)
            if cut is not None:  # as a real backend ends it: before the first stop string
                completion = replace(completion, text=completion.text[:cut])
            self.accounting.record_call(
                reserved_usd=0.0,
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
                cost_usd=completion.usage.cost_usd,
                latency_s=0.0,
                failed=not completion.ok,
                retries=0,
            )
            if on_done is not None:
                on_done(i, completion)
            out.append(completion)
        return out

    async def aclose(self) -> None:
        pass


def last_user(request: Request) -> str:
    return request.messages[-1]["content"]
