"""The Judge: grading criteria, pairwise judging and free-text generation over any backend, with the cache.

The Judge knows nothing of rubrics or RRD: it grades plain criterion strings against a response. Every model
call goes through `run`, which serves cache hits, sends each distinct miss once (identical requests in one
batch — e.g. repeated completions in a GRPO group — cost one call), stores successes as soon as the batch
returns, and stops the run with BudgetExceeded only after saving everything that was paid for.
"""

from __future__ import annotations

import glob
import inspect
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping, Sequence

from . import templates
from .accounting import Accounting, BudgetExceeded
from .backends.api import ApiBackend, RetryPolicy
from .backends.base import Backend
from .cache import CompletionCache, cache_key, default_cache_path
from .settings import COUNT, POSITIVE, SECONDS, ConfigError, config_from_mapping, number, setting, validate
from .parsing import (batch_p_yes, first_verdict_p_yes, pairwise_p_a, parse_json_verdicts, parse_pairwise,
                      parse_yes_no)
from .types import Completion, Message, PairVerdict, Request, SamplingParams, Usage, Verdict, failure_reason

DEFAULT_JUDGE = "local:qwen2.5-coder-1.5b"
GradingMode = Literal["single", "batch"]


@dataclass
class JudgeConfig:
    """How to reach a model and how to grade with it. Every field but `api_key` (given as --api-key-env, the
    variable that holds it, so a key never lands in shell history) has a CLI flag (judges.settings)."""

    model: str = setting(DEFAULT_JUDGE, flag="--judge",
                         help="model string: gpt-4o, hosted_vllm/meta-llama/Llama-3.1-8B-Instruct, "
                              "local:qwen2.5-coder-1.5b (default), local:smollm2-135m, local:/path/model.gguf")
    api_base: str | None = setting(None, env="RRD_API_BASE",
                                   help="OpenAI-compatible server for the judge (vLLM, llama.cpp), e.g. "
                                        "http://127.0.0.1:8000/v1; several replicas of one model comma-separated "
                                        "(balanced by litellm's Router, a failed call retried on another) "
                                        "(default: $RRD_API_BASE)")
    api_key: str | None = None
    concurrency: int = setting(16, type=POSITIVE, help="max calls in flight (API backends)")
    transport: Literal["auto", "litellm", "openai"] = setting(
        "auto", help="auto: openai SDK for OpenAI and --api-base servers, litellm for other providers")
    max_retries: int = setting(5, type=COUNT, help="retries of a call that failed for a reason that may pass "
                                                  "(429, 5xx, timeouts, dropped connections)")
    timeout_s: float = setting(120.0, flag="--timeout", type=SECONDS, help="seconds per call before it is retried")
    max_retry_after_s: float = setting(60.0, flag="--max-retry-after", type=SECONDS,
                                       help="longest wait a server's Retry-After may impose before one retry")
    grading_mode: GradingMode = setting(
        "single", help="single: one criterion per call (paper-faithful); batch: --batch-size criteria per call, "
                       "JSON list answer")
    batch_size: int = setting(8, type=POSITIVE, help="criteria per call in batch grading mode")
    logprobs: bool = setting(True, flag="--no-logprobs", negate=True,
                             help="for servers without logprobs: text verdicts only (no P(YES))")
    top_logprobs: int = setting(20, type=COUNT, help="alternatives per token asked for with logprobs")
    include_prompt: bool = setting(False, help="show the user prompt to the satisfaction judge (the paper shows "
                                               "only the response)")
    verdict_max_tokens: int = setting(2, type=POSITIVE, help="length cap of a single YES/NO verdict")
    pairwise_max_tokens: int = setting(1024, type=POSITIVE, help="length cap of a direct pairwise judgement "
                                                                 "(reasoning, then the verdict)")
    reask_unreadable: int = setting(0, type=COUNT,
                                    help="re-asks of a grading answer that cannot be read, with the answer and a "
                                         "reminder of the format (0: it stays unscored; the paper is silent)")
    cache: bool = setting(True, flag="--no-cache", negate=True, help="do not read or write the on-disk cache")
    cache_path: str | None = setting(None, help="SQLite cache file (default ~/.cache/rrd/judge-cache.sqlite)")
    budget_usd: float | None = setting(None, type=number(float, strict=True),
                                       help="stop cleanly before spending more than this (dollars, > 0); see "
                                            "README, How it behaves")
    local_dtype: str = setting("bfloat16", help="transformers engine: the dtype local models run in")
    local_max_batch: int = setting(16, type=POSITIVE, help="transformers engine: most sequences per forward pass")
    local_threads: int | None = setting(None, type=POSITIVE, help="torch/llama.cpp threads for local models "
                                                                 "(default: all cores)")
    local_device: str = setting("auto", help="auto: CUDA when visible (e.g. evaluating a trained checkpoint on "
                                             "the training GPU), else CPU")
    local_engine: Literal["auto", "hybrid", "llama.cpp", "transformers"] = setting(
        "auto", help="what runs local: models; auto = llama.cpp for GGUF/bundled models on CPU when "
                     "llama-cpp-python is installed (under 3 GB for the embedded judge), else transformers, or "
                     "the engine $RRD_LOCAL_ENGINE names; hybrid = verdicts on transformers, generation on "
                     "llama.cpp (judges/backends/routed.py: faster grading on CPUs with AMX-bf16, for 3x the "
                     "memory)")
    local_parallel: int = setting(8, type=POSITIVE, help="llama.cpp: most requests decoded together in one batch "
                                                         "(each up to 2,048 tokens of prompt + answer; longer ones run alone)")
    local_max_context: int = setting(16384, type=POSITIVE, help="llama.cpp: the longest request (run alone)")
    local_prefix_store_mb: int = setting(512, type=COUNT, help="llama.cpp: memory for evaluated prompt prefixes, "
                                                               "restored instead of evaluated again (0: off)")
    local_weights: Literal["auto", "repacked", "plain"] = setting(
        "auto", help="llama.cpp: the layout the weights run in; auto times both once per machine and model (a few "
                     "seconds, remembered in the model cache) and keeps the faster for a refine's mix of prompt "
                     "evaluation and decoding; repacked = llama.cpp's CPU repacking, plain = the file's own")

    def __post_init__(self) -> None:
        validate(self)


def judge_config_from_mapping(d: Mapping[str, Any] | None, where: str, source: str | None = None) -> JudgeConfig:
    """A JudgeConfig from a YAML section (`rrd train`, the verl reward's settings): every key a JudgeConfig field,
    plus `api_key_env`, the environment variable that holds the key (a key never sits in a config file). Errors
    name the file, section and key."""
    d = dict(d or {})
    env = d.pop("api_key_env", None)
    if env is not None and not isinstance(env, str):
        raise ConfigError(f"{source or 'config'}: {where}.api_key_env must be an environment variable name")
    cfg = config_from_mapping(JudgeConfig, d, where, source)
    if env:
        cfg.api_key = os.environ.get(env) or cfg.api_key
    return cfg


def _local_device(device: str) -> str:
    if device != "auto":
        return device
    if sys.platform.startswith("linux") and not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/dxg")):
        return "cpu"  # no NVIDIA device node, so no CUDA: spares the llama.cpp engine torch's import (~0.3 GB)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def local_engine(config: JudgeConfig) -> Literal["hybrid", "llama.cpp", "transformers"]:
    """The engine that runs a `local:` model under this config (see JudgeConfig.local_engine)."""
    if config.local_engine != "auto":
        return config.local_engine
    chosen = os.environ.get("RRD_LOCAL_ENGINE") or "auto"  # e.g. to run the test suite on another engine
    if chosen != "auto":
        if chosen not in ("hybrid", "llama.cpp", "transformers"):
            raise ValueError(f"RRD_LOCAL_ENGINE must be auto, hybrid, llama.cpp or transformers, not {chosen!r}")
        return chosen  # type: ignore[return-value]
    from .backends import llamacpp
    from .models import REGISTRY

    spec = config.model.removeprefix("local:").strip()
    gguf = spec in REGISTRY or spec.endswith(".gguf")
    if gguf and _local_device(config.local_device) == "cpu" and llamacpp.available():
        # one engine: the hybrid grades faster where torch has AMX-bf16 kernels, but holds a bf16 copy of the
        # model beside the GGUF (8.5 GB against 2.7 GB for the quickstart refine, docs/results/README.md)
        return "llama.cpp"
    return "transformers"


def make_backend(config: JudgeConfig, accounting: Accounting) -> Backend:
    """`local:NAME|PATH` runs in-process (llama.cpp or transformers); any other string is an API model."""
    if config.model.startswith("local:"):
        from .models import check_local_model

        check_local_model(config.model)  # a missing model is one error now, not a failure per call
        spec = config.model.removeprefix("local:")
        engine = local_engine(config)
        if engine == "transformers":
            return _transformers_backend(config, accounting)
        from .backends.llamacpp import LlamaCppBackend

        llama = LlamaCppBackend(
            spec, accounting, n_seq=config.local_parallel, max_context=config.local_max_context,
            threads=config.local_threads, prefix_store_mb=config.local_prefix_store_mb, weights=config.local_weights,
        )
        if engine == "llama.cpp":
            return llama
        from .backends.routed import RoutedBackend

        return RoutedBackend(_transformers_backend(config, accounting), llama)
    return ApiBackend(
        config.model,
        accounting,
        api_base=config.api_base,
        api_key=config.api_key,
        concurrency=config.concurrency,
        transport=config.transport,
        retry=RetryPolicy(max_retries=config.max_retries, timeout_s=config.timeout_s,
                          max_retry_after_s=config.max_retry_after_s),
    )


def _transformers_backend(config: JudgeConfig, accounting: Accounting) -> Backend:
    from .backends.local import LocalBackend  # torch/transformers load only when a local model is used

    return LocalBackend(
        config.model.removeprefix("local:"),
        accounting,
        dtype=config.local_dtype,
        max_batch=config.local_max_batch,
        device=_local_device(config.local_device),
        threads=config.local_threads,
    )


@dataclass
class GradeItem:
    """Criteria to check against one response (the prompt is shown only with include_prompt)."""

    criteria: Sequence[str]
    response: str
    prompt: str | None = None


@dataclass
class Judge:
    config: JudgeConfig = field(default_factory=JudgeConfig)
    backend: Backend | None = None
    cache: CompletionCache | None = None
    accounting: Accounting | None = None

    def __post_init__(self) -> None:
        if self.accounting is None:
            self.accounting = Accounting(budget_usd=self.config.budget_usd)
        if self.backend is None:
            self.backend = make_backend(self.config, self.accounting)
        if self.cache is None and self.config.cache:
            self.cache = CompletionCache(self.config.cache_path or default_cache_path())

    @property
    def model(self) -> str:
        assert self.backend is not None
        return self.backend.model

    @property
    def cache_id(self) -> str:
        """The model's name in cache keys: its `model`, plus the engine where two engines answer differently."""
        return getattr(self.backend, "cache_id", None) or self.model

    def _cache_id(self, request: Request) -> str:
        """Per request: a backend that routes requests to two engines names the one that answers this one."""
        for_request = getattr(self.backend, "cache_id_for", None)
        return for_request(request) if for_request is not None else self.cache_id

    # -- the one path to the model ------------------------------------------------------------------------
    async def run(self, requests: Sequence[Request],
                  storable: Callable[[int, Completion], bool] | None = None) -> list[Completion]:
        """Completions for `requests`, from the cache where it has them. Fresh answers are stored the moment they
        arrive (a killed run loses only the calls in flight), unless `storable(i, completion)` says the answer to
        request i is not worth keeping: an unreadable verdict must be asked again next run, not served forever."""
        assert self.backend is not None and self.accounting is not None
        results: list[Completion | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        hits: Any = (self.cache.get_many([(self._cache_id(req), req) for req in requests])
                     if self.cache is not None else [None] * len(requests))
        if inspect.isawaitable(hits):  # a cache in another process answers without blocking the loop (rrd.cluster)
            hits = await hits
        for i, (req, hit) in enumerate(zip(requests, hits)):
            if hit is not None:
                # the stored usage is that of the call that filled the cache; this answer cost nothing
                results[i] = replace(hit, usage=Usage())
                self.accounting.record_hit()
                continue
            key = cache_key(self._cache_id(req), req)
            if key in pending:
                self.accounting.record_hit()  # an identical request in this batch: answered by the same call
            pending.setdefault(key, []).append(i)
        if pending:
            order = list(pending.values())
            cache = self.cache

            def store(j: int, c: Completion) -> None:
                i = order[j][0]
                if cache is not None and c.ok and (storable is None or storable(i, c)):
                    cache.put(self._cache_id(requests[i]), requests[i], c)

            fresh = await self.backend.complete([requests[idx[0]] for idx in order], on_done=store)
            refused: Completion | None = None
            for idx, completion in zip(order, fresh):
                if completion.refused:
                    refused = completion
                for n, i in enumerate(idx):
                    results[i] = completion if n == 0 else replace(completion, cached=True, usage=Usage())
            if refused is not None:
                raise BudgetExceeded(refused.error or "budget exceeded")
        return [r for r in results if r is not None]

    # -- grading -----------------------------------------------------------------------------------------
    def _params(self, max_tokens: int, final_words: tuple[str, ...] = ()) -> SamplingParams:
        return SamplingParams(
            temperature=0.0,
            max_tokens=max_tokens,
            logprobs=self.config.logprobs,
            top_logprobs=self.config.top_logprobs if self.config.logprobs else 0,
            final_words=final_words,
        )

    def _grade_requests(self, item: GradeItem) -> list[tuple[list[int], Request]]:
        prompt = item.prompt if self.config.include_prompt else None
        criteria = list(item.criteria)
        if self.config.grading_mode == "single":
            # a verdict that is already YES or NO ends there: verdict_max_tokens leaves room for a leading quote
            params = self._params(self.config.verdict_max_tokens, final_words=templates.VERDICT_WORDS)
            return [
                ([i], Request(templates.grade_single(c, item.response, prompt), params, templates.SINGLE_VERSION))
                for i, c in enumerate(criteria)
            ]
        k = max(1, self.config.batch_size)
        out = []
        for start in range(0, len(criteria), k):
            chunk = criteria[start : start + k]
            params = self._params(8 * len(chunk) + 16)
            msgs = templates.grade_batch(chunk, item.response, prompt)
            out.append((list(range(start, start + len(chunk))), Request(msgs, params, templates.TEMPLATE_VERSION)))
        return out

    def _verdicts(self, criteria: Sequence[str], idx: list[int], completion: Completion) -> list[Verdict]:
        usage = completion.usage
        if not completion.ok:
            return [
                Verdict(criteria[i], None, raw="", reason=failure_reason(completion), usage=usage,
                        error=completion.error, retryable=completion.retryable)
                for i in idx
            ]
        text = completion.text
        if self.config.grading_mode == "single":
            met = parse_yes_no(text)
            p = first_verdict_p_yes(completion.logprobs) if completion.logprobs else None
            reason = None if met is not None else f"unparseable verdict: {text[:200]!r}"
            return [Verdict(criteria[idx[0]], met, p, text, reason, usage, completion.cached)]
        labels = parse_json_verdicts(text, len(idx))
        if labels is None:
            reason = f"expected a JSON list of {len(idx)} YES/NO strings, got {text[:200]!r}"
            return [Verdict(criteria[i], None, None, text, reason, usage, completion.cached) for i in idx]
        probs = batch_p_yes(completion.logprobs, len(idx)) if completion.logprobs else [None] * len(idx)
        share = Usage(  # split the call's usage across its criteria so per-criterion sums stay honest
            usage.prompt_tokens // len(idx), usage.completion_tokens // len(idx), usage.cost_usd / len(idx),
            usage.cached_tokens // len(idx),
        )
        return [
            Verdict(
                criteria[i],
                met,
                probs[j] if met is not None else None,
                text,
                None if met is not None else f"entry {j + 1} is not YES/NO",
                share,
                completion.cached,
            )
            for j, (i, met) in enumerate(zip(idx, labels))
        ]

    def call_shares(self, n_criteria: int) -> list[float]:
        """Fraction of one call each of n criteria of a GradeItem costs (1 in single mode, 1/chunk in batch), so
        per-rubric and per-pair call counts add up to the real number of calls."""
        if self.config.grading_mode == "single":
            return [1.0] * n_criteria
        k = max(1, self.config.batch_size)
        return [1.0 / min(k, n_criteria - start) for start in range(0, n_criteria, k) for _ in
                range(min(k, n_criteria - start))]

    def fresh_calls(self, verdicts: Sequence[Verdict]) -> float:
        """Calls actually sent for one item's verdicts (cache hits cost none)."""
        return sum(s for v, s in zip(verdicts, self.call_shares(len(verdicts))) if not v.cached)

    def _readable(self, n_criteria: int, completion: Completion) -> bool:
        """Whether a successful grading answer can be read at all (single: YES/NO; batch: a list of the right
        length); unreadable entries inside a readable list are unscored on their own and not re-asked."""
        if self.config.grading_mode == "single":
            return parse_yes_no(completion.text) is not None
        return parse_json_verdicts(completion.text, n_criteria) is not None

    async def grade_many(self, items: Sequence[GradeItem]) -> list[list[Verdict]]:
        """Grade every item's criteria in one batch of calls (concurrent for APIs, prefix-batched locally).
        Answers that cannot be read are re-asked up to `reask_unreadable` times, and counted in the accounting
        when they stay unreadable."""
        assert self.accounting is not None
        plan: list[tuple[int, list[int], Request]] = []
        for n, item in enumerate(items):
            plan.extend((n, idx, req) for idx, req in self._grade_requests(item))
        asked = [req for _, _, req in plan]
        completions = await self.run(asked, storable=lambda k, c: self._readable(len(plan[k][1]), c))
        for _ in range(self.config.reask_unreadable):
            redo = [k for k, c in enumerate(completions) if c.ok and not self._readable(len(plan[k][1]), c)]
            if not redo:
                break
            asks = [Request(templates.reask(asked[k].messages, completions[k].text, self.config.grading_mode,
                                            len(plan[k][1])), asked[k].params, templates.REASK_VERSION)
                    for k in redo]
            readable = lambda j, c, redo=redo: self._readable(len(plan[redo[j]][1]), c)  # noqa: E731
            for k, ask, c in zip(redo, asks, await self.run(asks, storable=readable)):
                if c.ok:  # a failed re-ask keeps the unreadable answer: it says more than the error
                    asked[k], completions[k] = ask, c
        out: list[list[Verdict | None]] = [[None] * len(item.criteria) for item in items]
        for (n, idx, _), completion in zip(plan, completions):
            for i, verdict in zip(idx, self._verdicts(list(items[n].criteria), idx, completion)):
                out[n][i] = verdict
        self.accounting.record_unreadable(sum(
            v is not None and v.unreadable for row in out for v in row))
        return [[v for v in row if v is not None] for row in out]

    async def grade(self, criteria: Sequence[str], response: str, prompt: str | None = None) -> list[Verdict]:
        """One verdict per criterion, in order. Unscored verdicts have met=None and a reason."""
        return (await self.grade_many([GradeItem(criteria, response, prompt)]))[0]

    # -- pairwise and generation ----------------------------------------------------------------------------
    async def pairwise_many(self, pairs: Sequence[tuple[str, str, str]]) -> list[PairVerdict]:
        """Direct A-vs-B judgements for (prompt, response_a, response_b) triples; one game each."""
        params = SamplingParams(temperature=0.0, max_tokens=self.config.pairwise_max_tokens,
                                logprobs=self.config.logprobs,
                                top_logprobs=self.config.top_logprobs if self.config.logprobs else 0)
        reqs = [Request(templates.pairwise(p, a, b), params, templates.TEMPLATE_VERSION) for p, a, b in pairs]
        out = []
        for c in await self.run(reqs, storable=lambda i, c: parse_pairwise(c.text) is not None):
            if not c.ok:
                out.append(PairVerdict(None, "", failure_reason(c), c.usage, c.cached, error=c.error,
                                       retryable=c.retryable))
                continue
            winner = parse_pairwise(c.text)
            reason = None if winner else f"no [[A]]/[[B]]/[[C]] verdict in {c.text[-200:]!r}"
            if winner is None:
                self.accounting.record_unreadable()  # type: ignore[union-attr]
            p_a = pairwise_p_a(c.logprobs) if winner and c.logprobs else None
            out.append(PairVerdict(winner, c.text, reason, c.usage, c.cached, p_a=p_a))  # type: ignore[arg-type]
        return out

    async def pairwise(self, prompt: str, response_a: str, response_b: str) -> PairVerdict:
        return (await self.pairwise_many([(prompt, response_a, response_b)]))[0]

    async def generate_many(self, calls: Sequence[tuple[list[Message], SamplingParams]]) -> list[Completion]:
        """Free text (rubric proposals, response sampling). Failures come back with `error` set."""
        return await self.run([Request(m, p, "generate-v1") for m, p in calls])

    async def generate(self, messages: list[Message], params: SamplingParams | None = None) -> Completion:
        return (await self.generate_many([(messages, params or SamplingParams())]))[0]

    async def aclose(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()
