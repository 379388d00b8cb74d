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
* Score: s = sum_k w_k g_k / sum over scored k of w_k (rrd.scoring). g_k is judges.verdict_value, the rule
  `rrd judge` and `rrd eval` use too: the hard verdict ("hard") or P(yes) ("soft", falling back to the hard
  verdict when the judge gave no P(yes)). Unscored verdicts (a failed call or an unreadable answer, whatever
  its logprobs) are dropped and the weights renormalised; a completion with no scored rubric gets None.
* Weights: "stored" (the RubricSet's), "uniform", or "online_wu": whitened-uniform weights recomputed from the
  verdict matrix of the current rollout group, pooled across processes (rewards.online_wu).
* Rubric sets: a dataset column, the `sets` mapping by prompt id or prompt text, or refinement on the fly
  (rewards.sources). The prompt text is the last user turn of a conversational prompt (rewards.text), or
  `prompt_column`'s value.
* Errors: judge call failures and unparseable answers are unscored verdicts (-> None where nothing was
  scored). BudgetExceeded propagates: a spent budget must stop training, not silently zero its reward.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any, Callable, Mapping, Sequence

from judges.judge import GradeItem, Judge
from judges.loops import PerLoop
from judges.types import Verdict, verdict_value
from rrd.records import RubricSet, load_rubric_sets
from rrd.scoring import score_response

from .config import LogExtra, LogMetric, Reward, RubricRewardConfig, ScoreMode, StepGrading
from .online_wu import RowGather, step_weights
from .sources import RubricSets, column_value
from .step_log import accounting_snapshot, log_step
from .sync_bridge import SyncBridge
from .text import completion_text, prompt_text

__all__ = ["RubricReward", "RubricRewardConfig", "StepGrading", "completion_text", "per_criterion_reward_funcs",
           "prompt_text", "rubric_reward_func", "sync_reward"]


def _verdict_value(v: Verdict, mode: ScoreMode) -> float | None:
    """judges.verdict_value (the one rule) as a float reward term."""
    value = verdict_value(v, soft=mode == "soft")
    return None if value is None else float(value)


# ------------------------------------------------------------------------------------------------ the reward
class RubricReward:
    """Rubric-satisfaction rewards from a Judge and a source of RubricSets.

    sets: a mapping prompt_id -> RubricSet, a rubrics.jsonl path (rrd.records.load_rubric_sets), or None
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
        self.sources = RubricSets(self.sets, self.config, judge, proposer)
        self.gather = RowGather(self.config.distributed_gather)  # online-WU rows across processes
        self._bridge = SyncBridge()
        self._semaphores: PerLoop[asyncio.Semaphore] | None = (
            PerLoop(lambda: asyncio.Semaphore(self.config.max_concurrency)) if self.config.max_concurrency else None)
        # step sharing: key -> (task, consumers that already used it); see _shared_grading
        self._shared: dict[str, tuple[asyncio.Future, set[str]]] = {}
        self._shared_lock = threading.Lock()
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
        return self._bridge.run(self.reward_func(prompts=prompts, completions=completions,
                                                 completion_ids=completion_ids, **kwargs))

    def close(self) -> None:
        """Stop the background loop used by sync_reward (the judges are the caller's to close)."""
        self._bridge.close()

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

    # -- grading and scoring ------------------------------------------------------------------------------------
    def _semaphore(self) -> asyncio.Semaphore | None:
        return self._semaphores.get() if self._semaphores is not None else None

    async def _grade(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        log_extra: LogExtra | None,
        log_metric: LogMetric | None,
        kwargs: dict,
    ) -> StepGrading:
        before = accounting_snapshot((self.judge, self.proposer))
        texts = [prompt_text(p) for p in prompts]
        if self.config.prompt_column and self.config.prompt_column in kwargs:
            texts = [
                prompt_text(v) if v is not None else t
                for t, v in zip(texts, (column_value(kwargs, self.config.prompt_column, i) for i in range(len(texts))))
            ]
        responses = [completion_text(c) for c in completions]
        sets = await self.sources.resolve(texts, kwargs)

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

        weights, wu_used, wu_fallback = await step_weights(texts, sets, values, self.config, self.gather)
        scores: list[Reward] = [
            score_response(w, vals) if rs is not None and w is not None else None
            for rs, w, vals in zip(sets, weights, values)
        ]
        grading = StepGrading(sets, verdicts, values, weights, scores, wu_used, wu_fallback)
        if log_metric is not None or log_extra is not None:
            after = accounting_snapshot((self.judge, self.proposer))
            log_step(grading, self.config, before, after, log_extra, log_metric)
        return grading


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
