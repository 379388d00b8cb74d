"""`rrd eval`: run one benchmark with one or more methods, appending one record per (method, item) as it is done.

Resuming is by key: a (method, item_id) already in results.jsonl is never judged again, and everything the
judge already answered is in the on-disk cache, so an interrupted run continues where it stopped. An item whose
judging raised is not written (it is retried on the next run) and the error is reported; a judge answer that
could not be read IS a result (unscored, with its reason), as the protocols require.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from judges.settings import POSITIVE, number, setting, validate
from judges.types import ScoreMode
from rrd.config import RefineConfig
from rrd.io import JsonlAppender
from rrd.pool import Models

from .benchmarks import BENCHMARKS, BenchmarkSpec
from .judging import ItemResponses, MethodJudge, RubricSamples
from .loaders import ChosenRejectedItem, JudgeBenchPair, PPEBestOfK, PPEPair
from .methods import Method, resolve_methods
from .policy import PolicyConfig, PolicyEvaluator
from .policy_loaders import BiGGenInstance, HealthExample
from .preference import PreferencePair
from .rewardbench2 import RewardBench2Item
from .rm_bench import RMBenchItem

RESULTS = "results.jsonl"


@dataclass
class EvalConfig:
    """One `rrd eval` invocation. `data` is a file or Hub id (default: the benchmark's Hub dataset)."""

    bench: str
    out_dir: Path
    methods: str = setting("direct", flag="--method",
                           help="comma-separated methods or groups: direct, prompt-only, conditioned, rrd-uniform, "
                                "rrd-llm, rrd-wu, rrd-no-{decompose,misalignment,overlap,conflict}; groups all, "
                                "baselines, rrd, ablations (pair benchmarks only)")
    data: str | None = setting(None, help="local file or Hub id (default: the benchmark's Hub dataset)")
    split: str | None = setting(None, help="dataset split (default: the benchmark's, e.g. gpt for JudgeBench)")
    limit: int | None = setting(None, type=POSITIVE, help="evaluate the first N items (after --shuffle-seed)")
    #: shuffle the items with this seed before --limit (a random subset instead of the file's first N)
    shuffle_seed: int | None = setting(None, type=int, help="shuffle items with this seed before --limit")
    rubric_samples: RubricSamples = setting(
        "sampled", help="responses rubrics are conditioned on: sampled (the paper: N samples per prompt) or the "
                        "item's own responses (no sampling calls; labels are never shown)")
    score: ScoreMode = setting("soft", shortcuts={"--soft": "soft", "--hard": "hard"},
                               help="soft: rubric verdicts as P(YES) and the direct judge's tied games broken by "
                                    "its verdict token's P(A) vs P(B); hard: 0/1 verdicts and the two-game counter "
                                    "(the paper; the default under an explicit --profile paper). Records and the "
                                    "report keep both")
    tie_margin: float = setting(0.0, type=number(float), help="score difference below which a pair is a tie")
    item_concurrency: int = setting(4, type=POSITIVE, help="items judged at once")
    #: BiGGen's 18 `llm_judge` items (the instruction is itself a grading task). "official": as
    #: BiGGen-Bench/run_response_eval.py runs them: skipped when the grader is a Prometheus model, graded with the
    #: usual prompt otherwise; "grade" or "skip": always
    biggen_llm_judge: Literal["official", "grade", "skip"] = setting(
        "official", help="BiGGen's 18 llm_judge items: official = skipped for Prometheus graders (as "
                         "run_response_eval.py), graded otherwise")
    #: `rrd eval pairs`: where the fields are and how labels read (eval.preference.PairFields)
    pair_fields: Any = None
    refine: RefineConfig = field(default_factory=RefineConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def spec(self) -> BenchmarkSpec:
        if self.bench not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {self.bench!r}; known: {', '.join(BENCHMARKS)}")
        return BENCHMARKS[self.bench]

    def method_list(self) -> list[Method]:
        if self.spec.evaluates_policy:
            return []  # policy benchmarks have one grader, not judge methods
        methods = resolve_methods(self.methods)
        if self.spec.kind == "bok":  # RM-Bench and RewardBench 2 items name the pairs a pairwise judge plays
            pairwise = [m.name for m in methods if m.kind == "pairwise"]
            if pairwise:
                raise ValueError(f"{self.bench} scores each of K responses; pairwise methods {pairwise} cannot")
        return methods


def load_items(config: EvalConfig) -> list[Any]:
    spec = config.spec
    source = config.data or spec.default_source
    split = config.split or spec.default_split
    shuffled = config.shuffle_seed is not None
    if not source:
        raise ValueError(f"{spec.name}: {spec.note}")
    extra = {"fields": config.pair_fields} if spec.name == "pairs" else {}
    items = spec.loader(source, split=split, limit=None if shuffled else config.limit, **extra)
    if shuffled:
        items = list(items)
        random.Random(config.shuffle_seed).shuffle(items)
        items = items[: config.limit] if config.limit is not None else items
    return list(items)


#: the graders for which BiGGen-Bench/run_response_eval.py (prometheus-eval at dcfb442) skips `llm_judge` items
PROMETHEUS_GRADERS = ("prometheus-7b-v2.0", "prometheus-8x7b-v2.0", "prometheus-bgb-8x7b-v2.0")


def biggen_skip_reason(item: Any, grader: str, rule: str) -> str | None:
    """Why a BiGGen item is not graded under `rule` (see EvalConfig.biggen_llm_judge), or None to grade it."""
    if "llm_judge" not in str(item.id) or rule == "grade":
        return None
    if rule == "skip":
        return "llm_judge item (--biggen-llm-judge skip)"
    if any(name in grader.lower() for name in PROMETHEUS_GRADERS):
        return "llm_judge item: the official run_response_eval.py skips these for Prometheus graders"
    return None


def item_id(item: Any) -> str:
    if isinstance(item, JudgeBenchPair):
        return item.pair_id
    if isinstance(item, HealthExample):
        return item.prompt_id
    return str(item.id)


def as_responses(item: Any) -> ItemResponses:
    """The method-facing view of a pair or best-of-K item."""
    if isinstance(item, JudgeBenchPair):
        return ItemResponses(item.pair_id, item.question, [item.response_a, item.response_b])
    if isinstance(item, PPEPair):  # PPE human preference, and `rrd eval pairs`
        return ItemResponses(str(item.id), item.prompt, [item.response_1, item.response_2])
    if isinstance(item, (PPEBestOfK, ChosenRejectedItem)):  # the latter (RM-Bench, RewardBench 2) name the
        # (chosen, rejected) pairs a pairwise judge plays
        return ItemResponses(str(item.id), item.prompt, list(item.responses), getattr(item, "comparisons", None))
    raise TypeError(f"{type(item).__name__} is not judged by response (a policy benchmark's item)")


def item_fields(item: Any) -> dict[str, Any]:
    """Labels and slices the metrics need, copied into every record so the report reads only results.jsonl."""
    if isinstance(item, JudgeBenchPair):
        return {"label": item.label, "family": item.family, "source": item.source}
    if isinstance(item, PPEPair):
        swapped = {"swapped": item.swapped} if isinstance(item, PreferencePair) else {}
        return {"label": item.winner, "categories": list(item.categories), "language": item.language, **swapped}
    if isinstance(item, RMBenchItem):
        return {"domain": item.domain, "subset": item.subset}
    if isinstance(item, RewardBench2Item):
        return {"subset": item.subset, "n_chosen": len(item.chosen)}
    if isinstance(item, PPEBestOfK):
        return {"correct": list(item.correct), "benchmark": item.benchmark}
    if isinstance(item, BiGGenInstance):
        return {"capability": item.capability, "task": item.task}
    if isinstance(item, HealthExample):
        return {"example_tags": list(item.example_tags), "points": [r.points for r in item.rubrics],
                "tags": [list(r.tags) for r in item.rubrics]}
    raise TypeError(f"no record fields for a {type(item).__name__}")


@dataclass
class RunSummary:
    written: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class EvalRun:
    """Drives the items through the methods (pair benchmarks) or the policy and grader (policy benchmarks)."""

    def __init__(self, config: EvalConfig, models: Models | None, policy: Any = None,
                 progress: Callable[[int], None] | None = None, refine_progress: Callable[[Any], None] | None = None,
                 *, judge_model: str | None = None):
        """models None: a driver that sends the judging to Ray workers (eval.on_cluster); judge_model names
        the judge in its records."""
        self.config = config
        self.models = models
        self.judge_model = judge_model if models is None else models.judge.model
        self.policy = policy
        self.progress = progress or (lambda n: None)
        self.refine_progress = refine_progress  # rrd.refine.Progress of the refinements, as they go
        self.summary = RunSummary()

    def pending(self, items: list[Any], done: set[tuple[str, str]]) -> list[tuple[Any, list[str]]]:
        """(item, names of the methods still to run on it), skipping what results.jsonl already has."""
        names = [m.name for m in self.config.method_list()] or [self.grader_method]
        out = []
        for item in items:
            todo = [n for n in names if (n, item_id(item)) not in done]
            self.summary.skipped += len(names) - len(todo)
            if todo:
                out.append((item, todo))
        return out

    @property
    def grader_method(self) -> str:
        return "healthbench-grader" if self.config.spec.kind == "healthbench" else "prometheus-absolute"

    def judge_work(self, items: list[Any], results: JsonlAppender) -> list[tuple[Any, list[str]]]:
        """A judge benchmark's (item, methods) still to run; the items the protocol drops are recorded."""
        work = self.pending(items, {(r.get("method"), r.get("item_id")) for r in results.existing})
        self.progress(self.summary.skipped)
        if self.config.spec.kind == "pairs":  # human ties are dropped by the protocol: judging them buys nothing
            work = self._skip(work, results, _human_tie, {"games": []})
        return work

    def method_judge(self, models: Models, out_dir: Path | None,
                     known_sets: dict[str, dict[str, Any]] | None = None) -> MethodJudge:
        return MethodJudge(models, self.config.refine, out_dir, rubric_samples=self.config.rubric_samples,
                           score=self.config.score, tie_margin=self.config.tie_margin,
                           refine_progress=self.refine_progress, known_sets=known_sets)

    async def run(self, items: list[Any], results: JsonlAppender) -> RunSummary:
        assert self.models is not None, "a driver without models runs through eval.on_cluster"
        if not self.config.spec.evaluates_policy:
            return await self._run_judge(self.judge_work(items, results), results)
        work = self.pending(items, {(r.get("method"), r.get("item_id")) for r in results.existing})
        self.progress(self.summary.skipped)
        sem = asyncio.Semaphore(max(1, self.config.item_concurrency))
        if self.policy is None:
            raise ValueError(f"{self.config.bench} evaluates a policy: give --policy MODEL")
        if self.config.spec.kind == "biggen":
            model, mode = self.judge_model, self.config.biggen_llm_judge
            work = self._skip(work, results, lambda it: biggen_skip_reason(it, model, mode), {"score": None})
        with JsonlAppender(self.config.out_dir / "responses.jsonl") as responses:
            evaluator = PolicyEvaluator(self.policy, self.models.judge, responses, self.config.policy)
            await asyncio.gather(*(self._policy_guarded(sem, results, item, name, evaluator)
                                   for item, names in work for name in names))
        return self.summary

    async def _run_judge(self, work: list[tuple[Any, list[str]]], results: JsonlAppender) -> RunSummary:
        assert self.models is not None
        sem = asyncio.Semaphore(max(1, self.config.item_concurrency))
        judge = self.method_judge(self.models, self.config.out_dir)
        try:
            await asyncio.gather(*(self._item_methods(sem, results, judge, item, names) for item, names in work))
        finally:
            judge.close()
        return self.summary

    async def judge_item(self, judge: MethodJudge, item: Any, names: list[str]) -> list[tuple[str, Any]]:
        """All methods of one item in a row: ("record", full record) or ("error", message) per method."""
        methods = {m.name: m for m in self.config.method_list()}
        out = []
        for name in names:
            out.append(await self._result(item, name, judge.run(methods[name], as_responses(item))))
        return out

    def _skip(self, work: list[tuple[Any, list[str]]], results: JsonlAppender,
              reason_of: Callable[[Any], str | None], blank: dict[str, Any]) -> list[tuple[Any, list[str]]]:
        """Record the items the protocol does not score, with no calls (the report counts them), and return the
        others."""
        kept = []
        for item, names in work:
            reason = reason_of(item)
            if reason is None:
                kept.append((item, names))
                continue
            for name in names:
                results.append({"bench": self.config.bench, "method": name, "item_id": item_id(item),
                                **item_fields(item), **blank, "skipped": reason,
                                "judge": self.judge_model})
                self.summary.written += 1
            self.progress(len(names))
        return kept

    async def _item_methods(self, sem: asyncio.Semaphore, results: JsonlAppender, judge: MethodJudge, item: Any,
                            names: list[str]) -> None:
        """All methods of one item in a row under one slot, so a partial run compares methods on the same items."""
        async with sem:
            for kind, value in await self.judge_item(judge, item, names):
                self.write(results, kind, value)

    async def _policy_guarded(self, sem: asyncio.Semaphore, results: JsonlAppender, item: Any, method: str,
                              evaluator: PolicyEvaluator) -> None:
        async with sem:
            await self._guarded(results, item, method, self._policy_item(evaluator, item))

    async def _guarded(self, results: JsonlAppender, item: Any, method: str, work: Any) -> None:
        self.write(results, *await self._result(item, method, work))

    async def _result(self, item: Any, method: str, work: Any) -> tuple[str, Any]:
        from judges.accounting import BudgetExceeded

        try:
            record = await work
        except (BudgetExceeded, KeyboardInterrupt, asyncio.CancelledError):
            raise
        except Exception as exc:  # one bad item must not stop a long paid run; it is retried next time
            return "error", f"{method} / {item_id(item)}: {type(exc).__name__}: {exc}"
        return "record", {"bench": self.config.bench, "method": method, "item_id": item_id(item),
                          **item_fields(item), **record, "judge": self.judge_model}

    def write(self, results: JsonlAppender, kind: str, value: Any) -> None:
        """Append a record, or report an error (nothing written: a re-run retries it)."""
        if kind == "error":
            self.summary.errors.append(value)
            print(f"error: {value} (not written; a re-run retries it)", file=sys.stderr)
            return
        results.append(value)
        self.summary.written += 1
        self.progress(1)

    async def _policy_item(self, evaluator: PolicyEvaluator, item: Any) -> dict[str, Any]:
        t0 = time.monotonic()
        if self.config.spec.kind == "healthbench":
            conversation = list(item.conversation)
            reply, gen_usage = await evaluator.respond(item.prompt_id, conversation)
            if reply is None:
                raise RuntimeError("the policy failed to respond (see responses.jsonl)")
            graded = await evaluator.healthbench(conversation, reply, item.rubrics)
        else:
            messages = ([{"role": "system", "content": item.system_prompt}] if item.system_prompt else [])
            messages.append({"role": "user", "content": item.input})
            reply, gen_usage = await evaluator.respond(item.id, messages)
            if reply is None:
                raise RuntimeError("the policy failed to respond (see responses.jsonl)")
            instruction = f"{item.system_prompt}\n\n{item.input}" if item.system_prompt else item.input
            graded = await evaluator.biggen(instruction, reply, item.reference_answer, item.score_rubric)
        graded["policy"] = self.policy.model
        graded["policy_usage"] = gen_usage
        graded["elapsed_s"] = round(time.monotonic() - t0, 3)
        return graded


def _human_tie(item: Any) -> str | None:
    return "human tie: dropped by the protocol, not judged" if getattr(item, "winner", None) == "tie" else None
