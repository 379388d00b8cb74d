"""Rubric scores as reward functions: TRL GRPOTrainer (async, keyword arguments) and a plain sync callable.

Contract (docs/protocols.md, "TRL GRPOTrainer reward functions"): the function is called once per generation
step on each process with keyword arguments only -- prompts, completions, completion_ids, every dataset column
except "prompt" (aligned with completions), trainer_state, log_extra, log_metric -- and returns one float or
None per completion. None means "no reward from this function for this sample" and is what a judge failure
gives, never a made-up 0.

Design:
* Grading: every (completion x rubric) of one call is graded in ONE `judge.grade_many` call, so the Judge
  dedups repeated completions of a group and serves its on-disk cache; the backend bounds concurrency.
  The judge sees only the response and the rubric unless its JudgeConfig.include_prompt is set.
* Score: s = sum_k w_k g_k / sum over scored k of w_k (rrd.scoring). g_k is the hard verdict ("hard") or
  P(yes) ("soft", falling back to the hard verdict when the judge gave no P(yes)). Unscored verdicts
  (met=None) are dropped and the weights renormalised; a completion with no scored rubric gets None.
* Weights: "stored" (the RubricSet's), "uniform", or "online_wu": whitened-uniform weights recomputed from the
  verdict matrix of the current rollout group. A group is every completion in this call that shares a prompt
  and rubric set (TRL puts a group's num_generations completions consecutively). When torch.distributed is
  initialised the groups' verdict rows are gathered from all processes first (a group may straddle
  processes); otherwise only the local rows are used. With fewer than `wu_min_rows` (3) rows, or when WU
  itself is degenerate (e.g. every rubric constant over the group), the stored weights are used.
* Rubric sets, looked up per completion in this order: a dataset column (`rubric_column`, default "rubrics":
  a RubricSet dict, the short form {"rubrics": [...], "weights": [...]}, a list of rubric strings, or any of
  these as a JSON string); the `sets` mapping by the `prompt_id_column` value; the `sets` mapping by
  rrd.rubric_files.prompt_key(prompt text); finally, with refine_missing=True and a proposer Judge, RRD
  refinement of the prompt on the fly (once per prompt; the result is kept in `self.sets`). A completion
  whose prompt has no usable rubric set (none found, refinement disabled, or refinement failed/empty) gets
  None. The prompt text is the last user turn of a conversational prompt (or `prompt_column`'s value).
* Errors: judge call failures and unparseable answers are unscored verdicts (-> None where nothing was
  scored). BudgetExceeded propagates: a spent budget must stop training, not silently zero its reward.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence


from judges.judge import GradeItem, Judge
from judges.loops import PerLoop
from judges.types import Verdict, verdict_value
from rrd.rubric_files import load_rubric_sets, prompt_key
from rrd.records import RubricSet
from rrd.scoring import score_response
from rrd.weights import WhiteningConfig, impute_unscored, whitened_uniform_weights

ScoreMode = Literal["hard", "soft"]
WeightMode = Literal["stored", "uniform", "online_wu"]
Reward = float | None
LogExtra = Callable[[str, list], None]
LogMetric = Callable[[str, float], None]

ACCOUNTING_METRICS = {
    "calls": "rubric/judge_calls",
    "cache_hits": "rubric/judge_cache_hits",
    "failures": "rubric/judge_failures",
    "cost_usd": "rubric/judge_cost_usd",
    "latency_s": "rubric/judge_latency_s",
}


@dataclass
class RubricRewardConfig:
    """How rubric verdicts become a reward. Every field has a sensible default for GRPO."""

    #: "hard": 0/1 verdicts (the paper); "soft": P(yes), falling back to the hard verdict when there is none
    score: ScoreMode = "hard"
    #: "stored": the RubricSet's weights; "uniform"; "online_wu": whitened-uniform over the rollout group
    weights: WeightMode = "stored"
    #: online_wu needs at least this many rows (completions of the prompt) or it falls back to stored weights
    wu_min_rows: int = 3
    whitening: WhiteningConfig = field(default_factory=WhiteningConfig)
    #: gather online-WU verdict rows across processes when torch.distributed is initialised
    distributed_gather: bool = True
    #: refine a prompt with RRD when it has no rubric set (needs a proposer Judge)
    refine_missing: bool = False
    #: rrd.config.RefineConfig for on-the-fly refinement (None: the paper's defaults)
    refine_config: Any = None
    #: bound on concurrent grade_many calls issued by this object (None: unbounded; the backend bounds calls)
    max_concurrency: int | None = None
    #: dataset column holding the rubric set per row (None: never read a column)
    rubric_column: str | None = "rubrics"
    #: dataset column holding the prompt id used to look up `sets` (falls back to prompt_key(prompt text))
    prompt_id_column: str | None = "prompt_id"
    #: dataset column whose text replaces the prompt text for lookup, refinement and include_prompt
    prompt_column: str | None = None
    #: name TRL logs the reward under (rewards/<name>/mean)
    name: str = "rubric_reward"
    #: per-criterion functions: how many (rubric_0 .. rubric_{K-1}); prompts with fewer rubrics get None
    max_criteria: int = 16
    #: log per-criterion-index pass rates as metrics rubric/pass_rate_c{k} for k < this (0: none)
    log_criteria: int = 8

    def __post_init__(self) -> None:
        if self.score not in ("hard", "soft"):
            raise ValueError(f"score must be 'hard' or 'soft', got {self.score!r}")
        if self.weights not in ("stored", "uniform", "online_wu"):
            raise ValueError(f"weights must be 'stored', 'uniform' or 'online_wu', got {self.weights!r}")
        if self.wu_min_rows < 2:
            raise ValueError(f"wu_min_rows must be >= 2, got {self.wu_min_rows}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {self.max_concurrency}")


@dataclass
class StepGrading:
    """One call's grading, shared by the aggregate reward and the per-criterion functions."""

    sets: list[RubricSet | None]  # per completion
    verdicts: list[list[Verdict]]  # per completion, aligned with sets[i].texts ([] where no set)
    values: list[list[float | None]]  # g_k per completion (hard or soft), None = unscored
    weights: list[list[float] | None]  # the weights actually used, per completion
    scores: list[Reward]
    wu_used: int = 0  # groups scored with online WU weights
    wu_fallback: int = 0  # groups that asked for online WU but used stored weights


# ---------------------------------------------------------------------------------------------- text helpers
def _content_text(content: Any) -> str:
    """A message's content as text: plain strings, or the text parts of a multimodal content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict) and p.get("type", "text") == "text":
                parts.append(str(p.get("text", "")))
        return "".join(parts)
    return str(content)


def prompt_text(prompt: Any) -> str:
    """The text rubrics are keyed on: a string prompt as is, else the last user turn of the conversation."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            return _content_text(users[-1].get("content"))
        return _content_text(prompt[-1].get("content")) if prompt and isinstance(prompt[-1], dict) else ""
    return str(prompt)


def completion_text(completion: Any) -> str:
    """The response graded: a string completion as is, else its assistant messages' content joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        msgs = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in msgs if m.get("role", "assistant") == "assistant"]
        return "\n\n".join(_content_text(m.get("content")) for m in (assistant or msgs)).strip("\n")
    if isinstance(completion, dict):
        return _content_text(completion.get("content"))
    return str(completion)


def _rubric_set_from_value(value: Any, prompt: str) -> RubricSet | None:
    """A dataset-column value as a RubricSet, or None when the row has none."""
    if value is None:
        return None
    if isinstance(value, RubricSet):
        return value
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        value = json.loads(value)
    if isinstance(value, dict):
        if "tree" in value:
            return RubricSet.from_dict(value)
        texts = list(value.get("rubrics") or value.get("texts") or [])
        return RubricSet.provided(value.get("prompt", prompt), texts, value.get("weights"), value.get("prompt_id"))
    if isinstance(value, (list, tuple)):
        return RubricSet.provided(prompt, [str(t) for t in value])
    raise TypeError(f"cannot read a rubric set from a {type(value).__name__}")


def _verdict_value(v: Verdict, mode: ScoreMode) -> float | None:
    """judges.verdict_value (the one rule) as a float reward term."""
    value = verdict_value(v, soft=mode == "soft")
    return None if value is None else float(value)


def _distributed_world() -> int:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency of the rft extra only
        return 1
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


# ------------------------------------------------------------------------------------------------ the reward
class RubricReward:
    """Rubric-satisfaction rewards from a Judge and a source of RubricSets.

    sets: a mapping prompt_id -> RubricSet, a rubrics.jsonl path (rrd.rubric_files.load_rubric_sets), or None
    (rubric sets then come from the dataset column, or from refinement with `proposer`).

    Use `reward.reward_func` (an async bound method named `config.name`, detected as async by TRL) as a GRPO
    reward function, `reward.per_criterion_reward_funcs()` for normalize_then_sum, or `reward.sync_reward`
    for other trainers.
    """

    def __init__(
        self,
        judge: Judge,
        sets: Mapping[str, RubricSet] | str | None = None,
        config: RubricRewardConfig | None = None,
        *,
        proposer: Judge | None = None,
    ):
        self.judge = judge
        self.proposer = proposer
        self.config = config or RubricRewardConfig()
        if isinstance(sets, str):
            sets = load_rubric_sets(sets)
        self.sets: dict[str, RubricSet] = dict(sets or {})
        self._refining: dict[str, asyncio.Future] = {}
        self._loop_lock = threading.Lock()
        self._semaphores: PerLoop[asyncio.Semaphore] | None = (
            PerLoop(lambda: asyncio.Semaphore(self.config.max_concurrency)) if self.config.max_concurrency else None)
        # step sharing: key -> (task, consumers that already used it); see _shared_grading
        self._shared: dict[str, tuple[asyncio.Future, set[str]]] = {}
        self._shared_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._gather_group: Any = None
        self.reward_func = self._make_func(self.config.name, None)

    # -- public callables -----------------------------------------------------------------------------------
    def _make_func(self, name: str, criterion: int | None):
        owner = self

        async def reward_func(
            prompts: Sequence[Any],
            completions: Sequence[Any],
            completion_ids: Any = None,
            trainer_state: Any = None,
            log_extra: LogExtra | None = None,
            log_metric: LogMetric | None = None,
            **kwargs: Any,
        ) -> list[Reward]:
            grading = await owner._shared_grading(
                name, prompts, completions, trainer_state, log_extra, log_metric, kwargs
            )
            if criterion is None:
                return list(grading.scores)
            return [row[criterion] if criterion < len(row) else None for row in grading.values]

        reward_func.__name__ = name
        reward_func.__qualname__ = f"RubricReward.{name}"
        reward_func.__doc__ = (
            f"Rubric reward {name!r} (criterion {criterion})" if criterion is not None else "Weighted rubric score"
        )
        return reward_func

    def as_reward_func(self):
        """The async GRPO reward function (same object as `self.reward_func`)."""
        return self.reward_func

    def per_criterion_reward_funcs(self, k: int | None = None) -> list[Callable[..., Any]]:
        """K async reward functions rubric_0 .. rubric_{K-1}, one per criterion index, for
        multi_objective_aggregation="normalize_then_sum".

        Function k returns g_k (0/1, or P(yes) in soft mode) of the k-th accepted rubric of the completion's
        prompt, and None where that prompt has fewer than k+1 rubrics or the verdict is unscored (None drops
        the function from that sample's sum, and normalize_then_sum ignores NaNs). K defaults to
        config.max_criteria; choose it as the largest rubric count in your data (extra rubrics beyond K are
        not rewarded individually). The RubricSet's weights are not applied: normalize_then_sum standardises
        each function within its group, which would cancel any per-prompt scale; use reward_weights for a
        global per-index weighting, or the aggregate `reward_func` to apply the set's (or online WU) weights.
        All K functions (and `reward_func`) share one grading per step.
        """
        k = self.config.max_criteria if k is None else k
        return [self._make_func(f"rubric_{i}", i) for i in range(k)]

    def sync_reward(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[Reward]:
        """A plain synchronous reward callable for trainers other than TRL.

        Runs the async reward on a background event-loop thread owned by this object (one loop for its
        lifetime, so loop-bound backend clients stay valid), so it also works when called from inside a
        running event loop (the calling thread blocks until the rewards are ready).
        """
        coro = self.reward_func(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        return asyncio.run_coroutine_threadsafe(coro, self._background_loop()).result()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None or not self._loop.is_running():
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                t = threading.Thread(target=run, name="rubric-reward-loop", daemon=True)
                t.start()
                started.wait()
                self._loop, self._loop_thread = loop, t
            return self._loop

    def close(self) -> None:
        """Stop the background loop used by sync_reward (the judges are the caller's to close)."""
        loop, thread = self._loop, self._loop_thread
        self._loop = self._loop_thread = None
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(5)
        if loop is not None and not loop.is_running():
            loop.close()

    # -- step sharing -------------------------------------------------------------------------------------------
    @staticmethod
    def _step_key(prompts: Sequence[Any], completions: Sequence[Any], trainer_state: Any, kwargs: dict) -> str:
        h = hashlib.sha256()
        step = getattr(trainer_state, "global_step", None)
        h.update(repr(step).encode())
        for p, c in zip(prompts, completions):
            h.update(json.dumps([p, c], sort_keys=True, default=str, ensure_ascii=False).encode())
            h.update(b"\x1e")
        for col in sorted(kwargs):
            if col in ("environments",):
                continue
            h.update(col.encode())
            h.update(json.dumps(kwargs[col], sort_keys=True, default=str, ensure_ascii=False).encode())
        return h.hexdigest()

    async def _shared_grading(
        self,
        consumer: str,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        trainer_state: Any,
        log_extra: LogExtra | None,
        log_metric: LogMetric | None,
        kwargs: dict,
    ) -> StepGrading:
        """One grading per (step, batch), shared by every function built from this object.

        The first function to ask starts the grading (and logs); the others await the same task. A function
        asking again for a batch it already consumed is a new call, so it starts (and logs) a new grading.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions")
        key = self._step_key(prompts, completions, trainer_state, kwargs)
        loop = asyncio.get_running_loop()
        with self._shared_lock:
            entry = self._shared.get(key)
            if entry is not None and consumer not in entry[1] and entry[0].get_loop() is loop:
                entry[1].add(consumer)
                task = entry[0]
            else:
                task = loop.create_task(self._grade(prompts, completions, log_extra, log_metric, kwargs))
                self._shared[key] = (task, {consumer})
                while len(self._shared) > 8:  # keep the latest few batches only
                    self._shared.pop(next(iter(self._shared)))
        return await asyncio.shield(task)

    # -- rubric sets ----------------------------------------------------------------------------------------------
    def _column(self, kwargs: dict, name: str | None, i: int) -> Any:
        if not name or name not in kwargs:
            return None
        col = kwargs[name]
        try:
            return col[i]
        except (IndexError, KeyError, TypeError):
            return None

    async def _resolve_sets(self, texts: list[str], kwargs: dict) -> list[RubricSet | None]:
        out: list[RubricSet | None] = []
        missing: dict[str, str] = {}  # lookup key -> prompt text
        keys: list[str | None] = []
        for i, text in enumerate(texts):
            rs = _rubric_set_from_value(self._column(kwargs, self.config.rubric_column, i), text)
            key = None
            if rs is None:
                pid = self._column(kwargs, self.config.prompt_id_column, i)
                if pid is not None and str(pid) in self.sets:
                    rs = self.sets[str(pid)]
                else:
                    key = prompt_key(text)
                    rs = self.sets.get(key)
                    if rs is None:
                        key = str(pid) if pid is not None else key
                        missing.setdefault(key, text)
            out.append(rs)
            keys.append(key if rs is None else None)
        if missing and self.config.refine_missing and self.proposer is not None:
            refined = await asyncio.gather(*(self._refine(k, t) for k, t in missing.items()))
            found = dict(zip(missing, refined))
            out = [rs if rs is not None else found.get(k) for rs, k in zip(out, keys)]  # type: ignore[arg-type]
        return [rs if rs is not None and rs.texts else None for rs in out]

    async def _refine(self, key: str, text: str) -> RubricSet | None:
        """RRD on one prompt, once: concurrent callers for the same prompt await the same refinement."""
        if key in self.sets:
            return self.sets[key]
        fut = self._refining.get(key)
        if fut is None or fut.get_loop() is not asyncio.get_running_loop():
            from rrd.refine import refine_prompt  # the loop's machinery loads only when refinement is used

            assert self.proposer is not None
            fut = asyncio.ensure_future(
                refine_prompt(text, self.judge, self.proposer, self.config.refine_config, prompt_id=key)
            )
            self._refining[key] = fut
        try:
            rs = await asyncio.shield(fut)
        finally:
            if fut.done():
                self._refining.pop(key, None)
        if rs.stopped == "failed" or not rs.texts:
            return None  # not cached: a later step may try again
        self.sets[key] = rs
        return rs

    # -- grading and scoring ------------------------------------------------------------------------------------
    def _semaphore(self) -> asyncio.Semaphore | None:
        return self._semaphores.get() if self._semaphores is not None else None

    def _accounting_snapshot(self) -> dict[str, float]:
        total: dict[str, float] = {k: 0.0 for k in ACCOUNTING_METRICS}
        seen = set()
        for j in (self.judge, self.proposer):
            if j is None or j.accounting is None or id(j.accounting) in seen:
                continue
            seen.add(id(j.accounting))
            snap = j.accounting.snapshot()
            for k in total:
                total[k] += float(snap.get(k) or 0.0)
        return total

    async def _grade(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        log_extra: LogExtra | None,
        log_metric: LogMetric | None,
        kwargs: dict,
    ) -> StepGrading:
        before = self._accounting_snapshot()
        texts = [prompt_text(p) for p in prompts]
        if self.config.prompt_column and self.config.prompt_column in kwargs:
            texts = [
                prompt_text(v) if v is not None else t
                for t, v in zip(texts, (self._column(kwargs, self.config.prompt_column, i) for i in range(len(texts))))
            ]
        responses = [completion_text(c) for c in completions]
        sets = await self._resolve_sets(texts, kwargs)

        graded = [i for i, rs in enumerate(sets) if rs is not None]
        items = [GradeItem(sets[i].texts, responses[i], texts[i]) for i in graded]  # type: ignore[union-attr]
        results: list[list[Verdict]] = []
        if items:
            sem = self._semaphore()
            if sem is None:
                results = await self.judge.grade_many(items)
            else:
                async with sem:
                    results = await self.judge.grade_many(items)
        verdicts: list[list[Verdict]] = [[] for _ in responses]
        for i, row in zip(graded, results):
            verdicts[i] = row
        values = [[_verdict_value(v, self.config.score) for v in row] for row in verdicts]

        weights, wu_used, wu_fallback = await self._weights(texts, sets, values)
        scores: list[Reward] = [
            score_response(w, vals) if rs is not None and w is not None else None
            for rs, w, vals in zip(sets, weights, values)
        ]
        grading = StepGrading(sets, verdicts, values, weights, scores, wu_used, wu_fallback)
        self._log(grading, before, log_extra, log_metric)
        return grading

    def _group_keys(self, texts: list[str], sets: list[RubricSet | None]) -> list[str | None]:
        return [
            None if rs is None else hashlib.sha256(
                json.dumps([t, rs.texts], ensure_ascii=False).encode()
            ).hexdigest()[:24]
            for t, rs in zip(texts, sets)
        ]

    async def _weights(
        self, texts: list[str], sets: list[RubricSet | None], values: list[list[float | None]]
    ) -> tuple[list[list[float] | None], int, int]:
        mode = self.config.weights
        out: list[list[float] | None] = []
        for rs in sets:
            if rs is None:
                out.append(None)
            elif mode == "uniform":
                out.append([1.0 / len(rs.texts)] * len(rs.texts))
            else:
                out.append(list(rs.weights) if len(rs.weights) == len(rs.texts) else [1.0 / len(rs.texts)] * len(
                    rs.texts))
        if mode != "online_wu":
            return out, 0, 0
        keys = self._group_keys(texts, sets)
        groups: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if k is not None:
                groups.setdefault(k, []).append(i)
        rows = {k: [values[i] for i in idx] for k, idx in groups.items()}
        rows = await self._gather_rows(rows)
        used = fell_back = 0
        for k, idx in groups.items():
            X_rows = rows.get(k, [])
            m = len(values[idx[0]])
            if len(X_rows) < self.config.wu_min_rows or m == 0 or any(len(r) != m for r in X_rows):
                fell_back += 1
                continue
            result = whitened_uniform_weights(impute_unscored(X_rows, 0.5)[0], self.config.whitening)
            if result.fell_back:
                fell_back += 1
                continue
            used += 1
            w = [float(x) for x in result.weights]
            for i in idx:
                out[i] = w
        return out, used, fell_back

    async def _gather_rows(self, rows: dict[str, list[list[float | None]]]) -> dict[str, list[list[float | None]]]:
        """Pool each group's verdict rows from every process (rank order) when torch.distributed is up.

        Every rank calls the reward function once per step, so every rank reaches this collective in step.
        The gather runs over a CPU (gloo) group created on first use, so it never touches a CUDA device from
        TRL's reward-loop thread; it runs in a worker thread so the event loop keeps serving other rewards.
        """
        if not self.config.distributed_gather or _distributed_world() <= 1:
            return rows
        import torch.distributed as dist

        def gather() -> list[dict[str, list[list[float | None]]]]:
            if self._gather_group is None:
                self._gather_group = (
                    dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
                )
            out: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(out, rows, group=self._gather_group)
            return out

        parts = await asyncio.to_thread(gather)
        pooled: dict[str, list[list[float | None]]] = {}
        for part in parts:
            for k, r in (part or {}).items():
                pooled.setdefault(k, []).extend(r)
        return pooled

    # -- logging ------------------------------------------------------------------------------------------------
    def _log(
        self, g: StepGrading, before: dict[str, float], log_extra: LogExtra | None, log_metric: LogMetric | None
    ) -> None:
        n = len(g.scores)
        if log_extra is not None:
            pass_rate: list[float | None] = []
            marks: list[str | None] = []
            for rs, vals in zip(g.sets, g.values):
                scored = [v for v in vals if v is not None]
                pass_rate.append(sum(scored) / len(scored) if scored else None)
                marks.append(
                    None if rs is None else "".join("?" if v is None else "Y" if v >= 0.5 else "N" for v in vals)
                )
            log_extra("rubric_pass_rate", pass_rate)
            log_extra("rubric_verdicts", marks)
            log_extra("rubric_count", [len(rs.texts) if rs is not None else 0 for rs in g.sets])
        if log_metric is None:
            return
        after = self._accounting_snapshot()
        for k, name in ACCOUNTING_METRICS.items():
            log_metric(name, after[k] - before[k])
        all_vals = [v for row in g.values for v in row]
        scored = [v for v in all_vals if v is not None]
        if all_vals:
            log_metric("rubric/unscored_frac", 1.0 - len(scored) / len(all_vals))
        if scored:
            log_metric("rubric/pass_rate", float(sum(scored) / len(scored)))
        if n:
            log_metric("rubric/no_reward_frac", sum(s is None for s in g.scores) / n)
            log_metric("rubric/no_rubric_set_frac", sum(rs is None for rs in g.sets) / n)
        if self.config.weights == "online_wu" and (g.wu_used or g.wu_fallback):
            log_metric("rubric/wu_fallback_frac", g.wu_fallback / (g.wu_used + g.wu_fallback))
        for k in range(self.config.log_criteria):
            col = [row[k] for row in g.values if k < len(row) and row[k] is not None]
            if col:
                log_metric(f"rubric/pass_rate_c{k}", float(sum(col) / len(col)))


# -------------------------------------------------------------------------------------------- module-level API
def rubric_reward_func(judge: Judge, sets: Mapping[str, RubricSet] | str | None = None,
                       config: RubricRewardConfig | None = None, *, proposer: Judge | None = None):
    """The async GRPO reward function (named config.name, default "rubric_reward") for a Judge and rubric sets."""
    return RubricReward(judge, sets, config, proposer=proposer).reward_func


def per_criterion_reward_funcs(judge: Judge, sets: Mapping[str, RubricSet] | str | None = None,
                               config: RubricRewardConfig | None = None, *, k: int | None = None,
                               proposer: Judge | None = None) -> list[Callable[..., Any]]:
    """rubric_0 .. rubric_{K-1} sharing one grading per step (see RubricReward.per_criterion_reward_funcs)."""
    return RubricReward(judge, sets, config, proposer=proposer).per_criterion_reward_funcs(k)


def sync_reward(judge: Judge, sets: Mapping[str, RubricSet] | str | None = None,
                config: RubricRewardConfig | None = None, *, proposer: Judge | None = None):
    """A plain synchronous reward callable (see RubricReward.sync_reward)."""
    return RubricReward(judge, sets, config, proposer=proposer).sync_reward
