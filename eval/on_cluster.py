"""`rrd eval --ray`: a judge benchmark's items judged on Ray workers (rrd.cluster), written by this process.

The unit of work is the items that share a rubric set (one prompt with --rubric-samples sampled, one item with
--rubric-samples item), with the methods each still needs: so a set is refined once, on one worker, and comes
back with the unit's records. The driver appends the new sets to OUT/rubrics/<method>.jsonl and then the records
to results.jsonl, so the files, the resume rules (a (method, item) in results.jsonl is never judged again) and
the report are those of a run in one process. A unit whose worker died is redone from the start on another
worker; its calls that had returned are in the cluster's cache. Policy benchmarks (HealthBench, BiGGen) run in
one process: their cost is the policy's generations, which a cluster of judge workers would not share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from judges import Accounting, JudgeConfig
from rrd.io import JsonlAppender
from rrd.jobs import shared_cache_and_budget
from rrd.pool import Models
from rrd.records import RubricSet
from rrd.resume import Stop

from .judging import MethodJudge, set_key
from .report_figures import sets_path, stored_sets
from .runner import EvalConfig, EvalRun, as_responses

Unit = list[tuple[Any, list[str]]]  # (item, names of the methods still to run on it)


@dataclass
class EvalJob:
    """What a worker runs: the run's models and one MethodJudge, which keeps the sets it refines in memory."""

    config: EvalConfig
    judge: JudgeConfig
    proposer: JudgeConfig
    sets: dict[str, dict[str, RubricSet]] = field(default_factory=dict)  # method -> key -> stored set

    def setup(self, accounting: Accounting, cache: Any) -> None:
        self._models = Models.build(self.judge, self.proposer, self.config.refine, accounting=accounting, cache=cache)
        self._run = EvalRun(self.config, self._models)
        self._judge: MethodJudge = self._run.method_judge(self._models, None, self.sets)

    async def run(self, unit: Unit) -> dict[str, Any]:
        results = [r for item, names in unit for r in await self._run.judge_item(self._judge, item, names)]
        keys = {self._judge.set_key(as_responses(item)) for item, _ in unit}
        new = [(slot[0], self._judge.new_sets.pop(slot).to_dict()) for slot in list(self._judge.new_sets)
               if slot[1] in keys]
        return {"results": results, "sets": new}

    async def close(self) -> None:
        await self._models.aclose()


def units(run: EvalRun, work: Unit) -> list[Unit]:
    """The work grouped by rubric-set key, in first-seen order."""
    grouped: dict[str, Unit] = {}
    for item, names in work:
        grouped.setdefault(set_key(as_responses(item), run.config.rubric_samples), []).append((item, names))
    return list(grouped.values())


def eval_on_cluster(run: EvalRun, items: list[Any], results: JsonlAppender, cluster: Any, judge: JudgeConfig,
                    proposer: JudgeConfig, stop: Stop, bar: Any = None) -> Accounting:
    """EvalRun.run over Ray workers; returns the workers' accounting, summed. A budget that runs out stops new
    units (stop.budget says so) and leaves the rest for the next run."""
    from rrd.cluster import run_on_cluster

    config = run.config
    work = run.judge_work(items, results)
    rubric_methods = [m.name for m in config.method_list() if m.kind != "pairwise"]
    sets = {name: {rs.prompt_id: rs for rs in stored_sets(config.out_dir, name)} for name in rubric_methods}
    stores: dict[str, JsonlAppender] = {}

    def record(unit: Unit, out: dict[str, Any]) -> None:
        for method, rs in out["sets"]:  # stored before the records that use them
            if method not in stores:
                stores[method] = JsonlAppender(sets_path(config.out_dir, method))
            stores[method].append(rs)
        for kind, value in out["results"]:
            run.write(results, kind, value)

    job = EvalJob(config, judge, proposer, sets)
    cache, budget = shared_cache_and_budget(judge, proposer)
    try:
        done = run_on_cluster(job, units(run, work), record, cluster, cache_path=cache, budget_usd=budget,
                              bar=bar)
    finally:
        for store in stores.values():
            store.close()
    stop.budget = stop.budget or done.budget
    stop.not_done += done.not_done
    return done.accounting
