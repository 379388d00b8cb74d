"""The method's two jobs over many items, resumable and append-only: refine prompts into RubricSets, and judge
preference pairs against them. Library code: configs in, records out; the CLI (rrd.cli.commands) parses and
prints around it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from judges import Accounting, BudgetExceeded, JudgeConfig
from judges.settings import POSITIVE, number, setting, validate
from judges.types import ScoreMode

from .config import RefineConfig
from .grading import NO_COMMON_RUBRIC, add_usage, grade, no_rubrics_reason, pair_verdict_of, usage
from .inputs import Pair, PromptTask
from .io import JsonlAppender, UsageError, latest_by, read_jsonl
from .on_demand import RefineOnce
from .pool import Models, run_budget
from .progress import RefineView
from .records import RubricSet
from .resume import Resume, RetryRule, Stop, judged_redo_reason, refined_redo_reason
from .resume import pending as resume_pending
from .scoring import TieRule, pair_credit, undecided


class MissingRubricSets(UsageError):
    """Pairs whose prompts have no rubric set, with refinement of missing ones switched off."""


@dataclass
class BatchConfig:
    """How a command runs many items: what a re-run redoes, and how many prompts are refined at once."""

    retry: RetryRule = setting("failed", help="on a re-run, redo items whose calls failed (failed), also items with "
                                              "unreadable answers or undecided pairs (unscored; unreadable answers "
                                              "are re-asked), or neither (none)")
    prompt_concurrency: int = setting(4, type=POSITIVE, help="prompts refined at once")

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class JudgeRunConfig(BatchConfig):
    """How `rrd judge` turns two responses' verdicts into a pair verdict, and how it runs."""

    tie_rule: Literal["half", "pairwise", "tie"] = setting(
        "half", help="half: a tie scores 0.5; pairwise: break it with a direct pairwise call; tie: counts wrong. "
                     "A pair with no rubric scored for both responses is undecided and counts wrong")
    tie_margin: float = setting(0.0, type=number(float), help="score difference below which a pair is a tie")
    score: ScoreMode = setting("soft", shortcuts={"--soft": "soft", "--hard": "hard"},
                               help="soft: P(YES) where the judge gives it (an unreadable verdict stays unscored "
                                    "whatever its logprobs, the default); hard: 0/1 verdicts (the paper; the default under "
                                    "an explicit --profile paper). Records keep both")
    pair_concurrency: int = setting(8, type=POSITIVE, help="pairs judged at once")
    refine_missing: bool = setting(True, flag="--no-refine-missing", negate=True,
                                   help="fail on pairs whose prompt has no rubric set instead of refining it")


def pending_tasks(tasks: Iterable[PromptTask], out: JsonlAppender, retry: str, resume: Resume) -> list[PromptTask]:
    """The tasks `out` has no current RubricSet for (rrd.resume says what is redone); counts the rest in
    `resume`."""
    return resume_pending(list(tasks), lambda t: t.prompt_id, latest_by(out.existing, "prompt_id"),
                          lambda t, r: refined_redo_reason(r, t.prompt, t.responses, retry), resume)


async def refine_task(task: PromptTask, models: Models, config: RefineConfig, progress: Any = None) -> RubricSet:
    """RRD on one task with the run's models: the one refinement `rrd refine` runs per prompt, in this process
    or on a Ray worker (RefineJob)."""
    from .refine import refine_prompt

    return await refine_prompt(task.prompt, models.judge, models.proposer, config, prompt_id=task.prompt_id,
                               responses=task.responses, samplers=models.samplers, progress=progress)


async def refine_all(tasks: Iterable[PromptTask], models: Models, config: RefineConfig, out: JsonlAppender,
                     prompt_concurrency: int = BatchConfig.prompt_concurrency, bar: Any = None, *,
                     retry: RetryRule = BatchConfig.retry,
                     stop: Stop | None = None, resume: Resume | None = None) -> list[RubricSet]:
    """Refine every task not already done in `out` (see rrd.resume for what is redone); each RubricSet is
    appended the moment it is done. A prompt whose calls hit the budget is not written, and no new one starts
    (`stop` says so)."""
    tasks = list(tasks)
    resume = resume if resume is not None else Resume()
    stop = stop if stop is not None else Stop()
    pending = pending_tasks(tasks, out, retry, resume)
    if bar is not None:
        bar.update(len(tasks) - len(pending))
    sem = asyncio.Semaphore(max(1, prompt_concurrency))
    results: list[RubricSet] = []
    view = RefineView(bar, models.judge.accounting) if bar is not None else None

    async def one(task: PromptTask) -> None:
        async with sem:
            if stop.budget is not None:
                stop.not_done += 1
                return
            try:
                rs = await refine_task(task, models, config, view)
            except BudgetExceeded as exc:  # what was paid for is in the cache: the next run gets it free
                stop.budget = str(exc)
                stop.not_done += 1
                return
        out.append(rs.to_dict())
        results.append(rs)
        if bar is not None:
            bar.update(1)

    ticker = asyncio.ensure_future(view.tick()) if view is not None else None
    try:
        await asyncio.gather(*(one(t) for t in pending))
    finally:
        if ticker is not None:
            ticker.cancel()
    return results


async def judge_pair(pair: Pair, rs: RubricSet, judge: Any, config: JudgeRunConfig) -> dict[str, Any]:
    """The verdict record of one pair: rrd.grading's record of both responses against `rs` (every unscored
    verdict's reason kept, so a re-run knows what to retry and a reader knows why), the tie broken under PAIRWISE,
    and the pair's label, credit and undecided reason."""
    tie_rule = TieRule(config.tie_rule)
    graded = await grade(judge, rs, pair.prompt, [pair.a, pair.b], score=config.score, tie_margin=config.tie_margin)
    record = graded.record()
    verdict = pair_verdict_of(record)
    kinds = graded.kinds()
    tie_break = tie_break_reason = None
    if verdict in ("tie", None) and tie_rule is TieRule.PAIRWISE:
        pv = await judge.pairwise(pair.prompt, pair.a, pair.b)
        tie_break, tie_break_reason = pv.winner, pv.reason
        record["usage"] = add_usage(record["usage"], usage([pv], not pv.cached))
        if pv.kind:
            kinds[pv.kind] += 1
    is_undecided = undecided(verdict, tie_rule, tie_break)
    why_undecided = None
    if is_undecided:
        why_undecided = (no_rubrics_reason(rs) if not rs.rubrics else NO_COMMON_RUBRIC if verdict is None
                         else "tie")
        if tie_break_reason:
            why_undecided += f"; tie-break unreadable: {tie_break_reason[:200]}"
    return {
        "pair_id": pair.pair_id, "prompt_id": pair.prompt_id, "item_hash": pair.content_hash, **record,
        "tie_break": tie_break, "tie_break_reason": tie_break_reason, "label": pair.label,
        "credit": (pair_credit(verdict, pair.label, tie_rule, tie_break)
                   if pair.label in ("A", "B") else None),
        "undecided": is_undecided, "undecided_reason": why_undecided,
        "failed": kinds["call failed"], "unreadable": kinds["unreadable"], "unscored_kinds": dict(kinds),
        "judge": judge.model,
    }


def missing_tasks(pairs: list[Pair], sets: dict[str, RubricSet], config: JudgeRunConfig,
                  rubrics_path: str | None) -> list[PromptTask]:
    """The prompts with no rubric set, to be refined first (appended to `rubrics_path` for the next run), or
    MissingRubricSets when config.refine_missing is off."""
    missing = {p.prompt_id: p for p in pairs if p.prompt_id not in sets}
    if missing and (not config.refine_missing or rubrics_path is None):
        raise MissingRubricSets(f"{len(missing)} prompts have no rubric set in {rubrics_path} "
                                f"(first: {next(iter(missing))}); run `rrd refine` or drop --no-refine-missing")
    return [PromptTask(pid, p.prompt, None) for pid, p in missing.items()]


def pending_pairs(pairs: list[Pair], sets: dict[str, RubricSet], out: JsonlAppender, config: JudgeRunConfig,
                  resume: Resume) -> list[Pair]:
    """The pairs `out` has no current verdict for (rrd.resume says what is redone); counts the rest in `resume`."""
    def redo(p: Pair, record: dict[str, Any]) -> str | None:
        rs = sets.get(p.prompt_id)
        return judged_redo_reason(record, p.content_hash, rs.content_hash if rs is not None else None, config.retry)

    return resume_pending(pairs, lambda p: p.pair_id, latest_by(out.existing, "pair_id"), redo, resume)


async def judge_pairs(pairs: list[Pair], sets: dict[str, RubricSet], models: Models, config: JudgeRunConfig,
                      refine: RefineConfig, out: JsonlAppender, *, rubrics_path: str | None = None, bar: Any = None,
                      stop: Stop | None = None, resume: Resume | None = None) -> None:
    """Score each pending pair against its prompt's RubricSet and append the verdict record as soon as it is
    known. A prompt with no set is refined when its first pair needs it (once, rrd.on_demand; with `refine`,
    appended to `rubrics_path` for the next run) when config.refine_missing, else MissingRubricSets. Once the
    budget refuses a call no new pair starts; pairs in flight finish (their calls that fit are sent) and the
    refused one is left for the next run."""
    stop = stop if stop is not None else Stop()
    resume = resume if resume is not None else Resume()
    missing = missing_tasks(pairs, sets, config, rubrics_path)
    pending = pending_pairs(pairs, sets, out, config, resume)
    if bar is not None:
        bar.update(len(pairs) - len(pending))
    sem = asyncio.Semaphore(max(1, config.pair_concurrency))
    refining = asyncio.Semaphore(max(1, config.prompt_concurrency))
    rubrics_out = JsonlAppender(rubrics_path) if missing and rubrics_path is not None else None
    once = RefineOnce(sets, on_new=None if rubrics_out is None else lambda key, rs: rubrics_out.append(rs.to_dict()))

    async def refined(pair: Pair) -> RubricSet:
        async with refining:
            return await refine_task(PromptTask(pair.prompt_id, pair.prompt, None), models, refine)

    async def one(pair: Pair) -> None:
        async with sem:
            if stop.budget is not None:
                stop.not_done += 1
                return
            try:
                rs, _ = await once.get(pair.prompt_id, lambda: refined(pair))
                record = await judge_pair(pair, rs, models.judge, config)
            except BudgetExceeded as exc:  # the calls that fit were sent and cached; the pair waits for a re-run
                stop.budget = str(exc)
                stop.not_done += 1
                return
        out.append(record)
        if bar is not None:
            bar.set_postfix_str(models.judge.accounting.postfix())
            bar.update(1)

    try:
        await asyncio.gather(*(one(p) for p in pending))
    finally:
        if rubrics_out is not None:
            rubrics_out.close()


# ------------------------------------------------------------------------------------------- on a Ray cluster
@dataclass
class RefineJob:
    """rrd refine's work on a Ray worker (rrd.cluster): the run's models, built there, and refine_task."""

    judge: JudgeConfig
    proposer: JudgeConfig
    config: RefineConfig

    def setup(self, accounting: Accounting, cache: Any) -> None:
        self._models = Models.build(self.judge, self.proposer, self.config, accounting=accounting, cache=cache)

    async def run(self, task: PromptTask) -> dict[str, Any]:
        return (await refine_task(task, self._models, self.config)).to_dict()

    async def close(self) -> None:
        await self._models.aclose()


@dataclass
class JudgeJob(RefineJob):
    """rrd judge's work on a Ray worker: judge_pair against the prompt's set (all sets travel with the job)."""

    run_config: JudgeRunConfig = field(default_factory=JudgeRunConfig)
    sets: dict[str, RubricSet] = field(default_factory=dict)

    async def run(self, pair: Pair) -> dict[str, Any]:  # type: ignore[override]
        return await judge_pair(pair, self.sets[pair.prompt_id], self._models.judge, self.run_config)


def shared_cache_and_budget(judge: JudgeConfig, proposer: JudgeConfig) -> tuple[str | None, float | None]:
    """A cluster run's cache file and budget: the judge's cache (None with --no-cache: the workers then use
    none) and the tighter of the two budgets (Models.build's rule)."""
    from judges.cache import default_cache_path

    cache = str(judge.cache_path or default_cache_path()) if judge.cache else None
    return cache, run_budget(judge, proposer)


def _appender(out: JsonlAppender, bar: Any) -> Any:
    """on_record of a cluster run: append the record, advance the bar."""
    def record(item: Any, rec: dict[str, Any]) -> None:
        out.append(rec)
        if bar is not None:
            bar.update(1)

    return record


def refine_on_cluster(tasks: Iterable[PromptTask], job: RefineJob, out: JsonlAppender, cluster: Any, *,
                      retry: RetryRule = BatchConfig.retry, bar: Any = None, stop: Stop | None = None,
                      resume: Resume | None = None) -> Accounting:
    """refine_all over Ray workers (rrd.cluster): the same pending tasks, each RubricSet appended by this process
    as it arrives. Returns the workers' accounting, summed."""
    from .cluster import run_on_cluster

    tasks = list(tasks)
    stop = stop if stop is not None else Stop()
    pending = pending_tasks(tasks, out, retry, resume if resume is not None else Resume())
    if bar is not None:
        bar.update(len(tasks) - len(pending))

    cache, budget = shared_cache_and_budget(job.judge, job.proposer)
    run = run_on_cluster(job, pending, _appender(out, bar), cluster, cache_path=cache, budget_usd=budget,
                         bar=bar)
    stop.budget = stop.budget or run.budget
    stop.not_done += run.not_done
    return run.accounting


def judge_on_cluster(pairs: list[Pair], sets: dict[str, RubricSet], job: JudgeJob, out: JsonlAppender,
                     cluster: Any, *, rubrics_path: str | None = None, bar: Any = None, stop: Stop | None = None,
                     resume: Resume | None = None) -> Accounting:
    """judge_pairs over Ray workers: missing sets refined on the cluster first (appended to `rubrics_path`), then
    the pending pairs; each verdict appended by this process as it arrives. Returns the summed accounting."""
    from .cluster import run_on_cluster

    stop = stop if stop is not None else Stop()
    config = job.run_config
    spent = Accounting()
    tasks = missing_tasks(pairs, sets, config, rubrics_path)
    if tasks:
        assert rubrics_path is not None
        with JsonlAppender(rubrics_path) as rubrics_out:  # refined sets are kept for the next run
            spent = refine_on_cluster(tasks, RefineJob(job.judge, job.proposer, job.config), rubrics_out, cluster,
                                      retry=config.retry, stop=stop)
        refined = latest_by(read_jsonl(rubrics_path), "prompt_id")
        sets.update({t.prompt_id: RubricSet.from_dict(refined[t.prompt_id]) for t in tasks if t.prompt_id in refined})
    pending = pending_pairs(pairs, sets, out, config, resume if resume is not None else Resume())
    if bar is not None:
        bar.update(len(pairs) - len(pending))
    ready = [p for p in pending if p.prompt_id in sets]
    stop.not_done += len(pending) - len(ready)  # their refinement stopped at the budget

    cache, budget = shared_cache_and_budget(job.judge, job.proposer)
    if budget is not None:  # one cap for the whole command, as in one process: refining spent part of it
        budget -= spent.cost_usd
        if budget <= 0 and stop.budget is None:
            stop.budget = f"${spent.cost_usd:.4f} spent refining the missing rubric sets"
    job = JudgeJob(job.judge, job.proposer, job.config, config, {p.prompt_id: sets[p.prompt_id] for p in ready})
    run = None if stop.budget is not None else run_on_cluster(
        job, ready, _appender(out, bar), cluster, cache_path=cache, budget_usd=budget,
        bar=bar)
    if run is not None:
        stop.budget = stop.budget or run.budget
        stop.not_done += run.not_done
        spent.add(run.accounting)
    elif ready:
        stop.not_done += len(ready)
    return spent
