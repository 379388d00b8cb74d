"""API models: OpenAI GPT-4o, any litellm provider, and OpenAI-compatible servers (vLLM, llama.cpp) via api_base.

Concurrency is bounded by a semaphore; each request is retried on 429/5xx/timeouts/connection errors and on
malformed response bodies with exponential backoff and full jitter, honouring Retry-After when the server sends
one, up to a ceiling (`max_retry_after_s`: a server asking for an hour does not stall the run for an hour). The retries are ours
(tenacity, RetryPolicy.retrying): the openai SDK's and litellm's own are switched off, so there is one mechanism
with one policy whatever the transport. After the last attempt the request ends as a Completion with `error`
set (unscored downstream), never as an exception.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import tenacity

from ..accounting import Accounting, BudgetExceeded
from .base import OnDone
from ..loops import PerLoop
from ..types import Completion, Request, TokenLogprobs, Usage

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a cost map at import otherwise

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class MalformedResponse(ValueError):
    """A 200 answer whose body is not a usable chat completion (no choices): retried like a 500, since a
    proxy or an overloaded server sends one now and a good answer the next time."""


@dataclass
class RetryPolicy:
    max_retries: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    timeout_s: float = 120.0
    #: the longest a Retry-After header may make one retry wait
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff; a server's Retry-After is a floor, not a suggestion, up to
        `max_retry_after_s`."""
        backoff = random.uniform(0, min(self.max_delay_s, self.base_delay_s * (2**attempt)))
        return backoff if retry_after is None else max(min(retry_after, self.max_retry_after_s), backoff)

    def retrying(self, on_wait: Callable[[float], None] | None = None) -> tenacity.AsyncRetrying:
        """The retry loop of one call: retryable failures (is_retryable) up to max_retries times, waiting
        `delay` (the failure's Retry-After as a floor); the last failure is re-raised as it was. `on_wait` is
        told every wait, so a run can report how long it spent waiting."""

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            seconds = self.delay(state.attempt_number - 1, retry_after_seconds(exc) if exc is not None else None)
            if on_wait is not None:
                on_wait(seconds)
            return seconds

        return tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=wait,
                                      retry=tenacity.retry_if_exception(is_retryable), reraise=True)


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _headers(exc: BaseException) -> dict[str, str]:
    for attr in ("headers", "litellm_response_headers"):
        h = getattr(exc, attr, None)
        if h:
            return {str(k).lower(): str(v) for k, v in dict(h).items()}
    response = getattr(exc, "response", None)
    h = getattr(response, "headers", None)
    return {str(k).lower(): str(v) for k, v in dict(h).items()} if h else {}


def retry_after_seconds(exc: BaseException) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header: delta-seconds or an HTTP date."""
    h = _headers(exc)
    if "retry-after-ms" in h:
        try:
            return float(h["retry-after-ms"]) / 1000.0
        except ValueError:
            pass
    value = h.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts, dropped connections and malformed bodies. litellm's exceptions subclass openai's, so
    this covers both."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, asyncio.TimeoutError,
                        openai.APIResponseValidationError, json.JSONDecodeError, MalformedResponse)):
        return True
    return _status(exc) in RETRY_STATUS


def _logprobs(choice: Any) -> list[TokenLogprobs]:
    lp = getattr(choice, "logprobs", None)
    content = getattr(lp, "content", None) if lp is not None else None
    if content is None and isinstance(lp, dict):
        content = lp.get("content")
    out: list[TokenLogprobs] = []
    for item in content or []:
        get = item.get if isinstance(item, dict) else lambda k, it=item: getattr(it, k, None)
        top = [
            (t["token"], float(t["logprob"])) if isinstance(t, dict) else (t.token, float(t.logprob))
            for t in (get("top_logprobs") or [])
        ]
        out.append(TokenLogprobs(token=get("token"), logprob=float(get("logprob")), top=top))
    return out


Transport = Literal["auto", "litellm", "openai"]


class ApiBackend:
    """API Backend. `model` is any litellm model string, e.g. "gpt-4o" or "hosted_vllm/meta-llama/...".

    Two transports behind the same retries, budget and accounting:
    - "litellm": every provider litellm knows (Anthropic, Bedrock, Vertex, ...).
    - "openai": the openai SDK on an aiohttp connection pool, for OpenAI itself and any OpenAI-compatible server
      (vLLM, llama.cpp) given by `api_base`. It costs ~1 ms of CPU per call against litellm's ~5-7 ms, which
      decides throughput at high concurrency (see bench/bench_judge_overhead.py).
    "auto" (default) picks "openai" where it applies and litellm elsewhere. For an `api_base` server a bare
    model name is routed as "openai/<name>"; provider prefixes like "hosted_vllm/" are stripped for the openai
    transport, which sends the served model name.

    Several servers of one model (`api_base` "http://a:8000/v1,http://b:8000/v1", replicas behind no balancer)
    go through litellm's Router: calls are spread over the replicas, and a replica that fails is cooled down, so
    the retry (ours, as for one server) goes to another. They are one judge: one cache identity, one budget.
    """

    def __init__(
        self,
        model: str,
        accounting: Accounting | None = None,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        concurrency: int = 16,
        retry: RetryPolicy | None = None,
        transport: Transport = "auto",
        extra_params: dict[str, Any] | None = None,
    ):
        self.model = model
        self.api_bases = [b.strip().rstrip("/") for b in (api_base or "").split(",") if b.strip()]
        self.api_base = self.api_bases[0] if self.api_bases else None
        self.api_key = api_key
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.accounting = accounting or Accounting()
        self.extra_params = dict(extra_params or {})
        self._route = model if (api_base is None or "/" in model) else f"openai/{model}"
        self.transport: Transport = self._pick_transport(transport)
        # one of each per event loop: asyncio primitives and aiohttp sessions are bound to their loop
        self._semaphores: PerLoop[asyncio.Semaphore] = PerLoop(lambda: asyncio.Semaphore(self.concurrency))
        self._clients: PerLoop[Any] = PerLoop(self._make_openai_client)
        self._routers: PerLoop[Any] = PerLoop(self._make_router)
        self._priced: bool | None = None

    @property
    def cache_id(self) -> str:
        """The model's name in cache keys. Two servers serving one model name are two judges (different weights,
        quantisation or chat template), so a server's address is part of it."""
        return f"{self.model}@{','.join(sorted(self.api_bases))}" if self.api_bases else self.model

    @property
    def routed(self) -> bool:
        """Whether calls go through litellm's Router (several replicas of one model)."""
        return len(self.api_bases) > 1

    def _pick_transport(self, transport: Transport) -> Transport:
        if len(self.api_bases) > 1:
            if transport == "openai":
                raise ValueError("several --api-base servers are balanced by litellm's Router: use --transport "
                                 "auto or litellm, or give one server")
            return "litellm"
        if transport != "auto":
            return transport
        if self.api_base:
            return "openai"
        provider = self._route.split("/", 1)[0] if "/" in self._route else None
        if provider == "openai" or (provider is None and self._route.startswith(("gpt-", "o1", "o3", "o4"))):
            return "openai"
        return "litellm"

    def _make_openai_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(
            base_url=self.api_base,
            api_key=self._key(),
            max_retries=0,  # RetryPolicy.retrying is the one retry mechanism
            timeout=self.retry.timeout_s,
            http_client=openai.DefaultAioHttpClient(timeout=self.retry.timeout_s),
        )

    #: the Router's name for the replicas of this backend's model
    _ALIAS = "judge-replicas"

    def _make_router(self) -> Any:
        from litellm import Router

        deployments = [{"model_name": self._ALIAS,
                        "litellm_params": {"model": self._route, "api_base": base, "api_key": self._key()}}
                       for base in self.api_bases]
        # No retries in the Router (ours are the one mechanism); a replica that fails once is cooled down for a
        # while, so the next attempt is routed to another one.
        return Router(model_list=deployments, num_retries=0, allowed_fails=0,
                      cooldown_time=max(1.0, self.retry.max_delay_s / 6), routing_strategy="simple-shuffle")

    def _key(self) -> str | None:
        if self.api_key:
            return self.api_key
        env = os.environ.get("OPENAI_API_KEY")
        return env or ("sk-no-key" if self.api_base else None)

    def _is_priced(self) -> bool:
        if self._priced is None:
            import litellm

            try:
                litellm.cost_per_token(model=self._route, prompt_tokens=1, completion_tokens=1)
                self._priced = True
            except Exception:  # a local server or a model missing from litellm's price map
                self._priced = False
        return self._priced

    def _cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if not self._is_priced():
            return 0.0
        import litellm

        p, c = litellm.cost_per_token(
            model=self._route, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(p + c)

    def estimate_cost(self, request: Request) -> float:
        """Pessimistic dollar cost of one call (full max_tokens); 0 for models litellm has no price for."""
        if not self._is_priced():
            return 0.0
        import litellm

        prompt_tokens = litellm.token_counter(model=self._route, messages=request.messages)
        return self._cost(prompt_tokens, request.params.max_tokens)

    def _kwargs(self, request: Request) -> dict[str, Any]:
        p = request.params
        kw: dict[str, Any] = {
            "messages": request.messages,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if p.stop:
            kw["stop"] = list(p.stop)
        if p.seed is not None:
            kw["seed"] = p.seed + p.sample_index
        if p.logprobs:
            kw["logprobs"] = True
            kw["top_logprobs"] = p.top_logprobs
        if p.repetition_penalty != 1.0 and self.api_base:
            # Not in OpenAI's schema: self-hosted servers read it from the body (vLLM `repetition_penalty`,
            # llama.cpp `repeat_penalty`); OpenAI itself would refuse the unknown field, so it is never sent there.
            kw["extra_body"] = {"repetition_penalty": p.repetition_penalty, "repeat_penalty": p.repetition_penalty}
        if self.transport == "openai":
            kw["model"] = self._route.split("/", 1)[1] if "/" in self._route else self._route
        elif self.routed:
            kw.update(model=self._ALIAS, timeout=self.retry.timeout_s, num_retries=0)
        else:
            kw.update(model=self._route, timeout=self.retry.timeout_s, num_retries=0)
            if self.api_base:
                kw.update(api_base=self.api_base, api_key=self._key())
            elif self.api_key:
                kw["api_key"] = self.api_key
        kw.update(self.extra_params)
        return kw

    async def _send(self, request: Request) -> Any:
        if self.transport == "openai":
            return await self._clients.get().chat.completions.create(**self._kwargs(request))
        if self.routed:
            return await self._routers.get().acompletion(**self._kwargs(request))
        import litellm

        return await litellm.acompletion(**self._kwargs(request))

    async def _attempts(self, request: Request) -> Completion:
        """Send one request, retrying what is worth retrying (tenacity, with RetryPolicy's backoff and the
        server's Retry-After as a floor); the last failure becomes an error Completion, never an exception."""
        start = time.perf_counter()
        attempts = 0
        try:
            async for attempt in self.retry.retrying(on_wait=self.accounting.record_wait):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    resp = await _within(self._send(request), self.retry.timeout_s + 5)
                    completion = self._to_completion(resp)
        except Exception as exc:  # noqa: BLE001 — every failure is recorded, none crashes the run
            status = _status(exc)
            error = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + f": {exc}"
            return Completion(error=error[:2000], attempts=attempts, latency_s=time.perf_counter() - start,
                              retryable=is_retryable(exc))
        completion.attempts = attempts
        completion.latency_s = time.perf_counter() - start
        return completion

    async def _one(self, request: Request) -> Completion:
        budgeted = self.accounting.budget_usd is not None
        estimate = self.estimate_cost(request) if budgeted else 0.0
        async with self._semaphores.get():
            try:
                self.accounting.reserve(estimate)
            except BudgetExceeded as exc:  # nothing was sent; the Judge stops the run after saving the rest
                return Completion(error=str(exc), refused=True, attempts=0)
            completion = await self._attempts(request)
        cost = completion.usage.cost_usd
        if budgeted and cost > estimate:
            # The reservation is the most this request can cost (its prompt as sent, every max_tokens token): a
            # server reporting more is wrong, and trusting it would take the run past its budget.
            self.accounting.record_overreport()
            cost = estimate
        self.accounting.record_call(
            reserved_usd=estimate,
            prompt_tokens=completion.usage.prompt_tokens,
            cached_tokens=completion.usage.cached_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cost_usd=cost,
            latency_s=completion.latency_s,
            failed=not completion.ok,
            retries=completion.attempts - 1,
        )
        return completion

    def _to_completion(self, resp: Any) -> Completion:
        if not getattr(resp, "choices", None):
            raise MalformedResponse(f"response has no choices: {str(resp)[:300]}")
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        # OpenAI, vLLM and llama.cpp's server report the prompt tokens their prompt cache served here
        cached_tokens = int(getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0)
        return Completion(
            text=choice.message.content or "",
            logprobs=_logprobs(choice),
            usage=Usage(prompt_tokens, completion_tokens, self._cost(prompt_tokens, completion_tokens),
                        min(cached_tokens, prompt_tokens)),
        )

    async def complete(self, requests: Sequence[Request], on_done: OnDone | None = None) -> list[Completion]:
        async def one(i: int, request: Request) -> Completion:
            completion = await self._one(request)
            if on_done is not None:
                on_done(i, completion)
            return completion

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))

    async def aclose(self) -> None:
        for client in self._clients:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 — closing a client bound to a finished loop is best effort
                pass
        self._clients.clear()
        self._routers.clear()
        self._semaphores.clear()


async def _within(call: Any, seconds: float) -> Any:
    """await call with a deadline. asyncio.timeout (3.11+) never swallows a cancellation; wait_for before 3.12
    can, when the call completes just as Ctrl-C cancels it, and the run would then go on."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, timeout=seconds)
