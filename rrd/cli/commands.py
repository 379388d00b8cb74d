"""`rrd refine` and `rrd judge`: parse the flags, call the library (rrd.jobs), print the summary.

Every setting's flag comes from its config field (judges.settings): JudgeConfig for the models, RefineConfig for
the loop, JudgeRunConfig for pair scoring. What stays here is what only a command line has: the input and
output files, the profile, and the progress bar."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Awaitable, Callable

from judges.settings import add_config_args, config_values

from .. import interrupt
from .flags import (add_cluster_args, add_refine_args, add_score_args, cluster_from_args, models_from_args,
                       profile_note, refine_config_from_args, score_mode, worker_model_configs)
from ..inputs import PromptSource, read_pairs, read_prompt_tasks
from ..config import RefineConfig
from ..io import JsonlAppender, latest_by, read_jsonl
from ..jobs import (BatchConfig, JudgeJob, JudgeRunConfig, RefineJob, judge_on_cluster, judge_pairs, refine_all,
                   refine_on_cluster)
from ..pool import Models
from ..progress import progress_bar
from ..records import RubricSet, load_rubric_sets
from ..resume import BUDGET_EXIT, FAILED_CALLS_EXIT, Resume, Stop, failed_calls_message
from ..summaries import judge_summary, refine_summary


def _bar(total: int, desc: str):
    return progress_bar(total, desc, "prompt" if desc == "refine" else "pair")


def _finish(stop: Stop, unit: str, failures: int) -> int:
    """Say why the run stopped early or left work undone, if it did; the exit status (README, How it behaves)."""
    if stop.budget is not None:
        print(stop.message(unit), file=sys.stderr)
        return BUDGET_EXIT
    if failures:
        print(failed_calls_message(failures), file=sys.stderr)
        return FAILED_CALLS_EXIT
    return 0


def _summarize(resume: Resume, unit: str, path: str, ids: list[str],
               summary: Callable[[list[dict[str, Any]], Any], str], accounting: Any) -> dict[str, dict[str, Any]]:
    """Print what a re-run skipped and the summary of this input's items (the last record of each, from the
    output file: a resumed run counts what earlier runs wrote too); returns those records by id."""
    if resume.message(unit):
        print(resume.message(unit), file=sys.stderr)
    latest = latest_by(read_jsonl(path), f"{unit}_id")
    print(summary([latest[i] for i in ids if i in latest], accounting))
    return latest


def _source(args: argparse.Namespace, path: str) -> PromptSource:
    return PromptSource(path, **config_values(PromptSource, args))


def _io_groups(p: argparse.ArgumentParser, out_help: str, *,
               pairs: bool) -> tuple[argparse._ArgumentGroup, argparse._ArgumentGroup]:
    """The input group (where the rows are read from), the output group and the run group every command has;
    returns the first two for the command's own input and output flags."""
    inp = p.add_argument_group("input")
    add_config_args(inp, PromptSource, skip=("responses_field",) if pairs else ())
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help=out_help)
    add_config_args(p.add_argument_group("run (resume, concurrency)"), BatchConfig)
    return inp, out


def _run_here(args: argparse.Namespace, refine: RefineConfig, job: Callable[[Models], Awaitable[object]]) -> Any:
    """`job` with the run's models, in this process (Ctrl-C stops it cleanly); the models' accounting."""
    models = models_from_args(args, refine)

    async def go() -> None:
        try:
            await job(models)
        finally:
            await models.aclose()

    interrupt.run(go())
    return models.accounting


# ---------------------------------------------------------------------------------------------------- refine
def _run_refine(args: argparse.Namespace) -> int:
    tasks = read_prompt_tasks(_source(args, args.input))
    config = refine_config_from_args(args)
    print(profile_note(args), file=sys.stderr)
    batch = BatchConfig(**config_values(BatchConfig, args))
    cluster = cluster_from_args(args, batch.prompt_concurrency)
    resume, stop = Resume(), Stop()
    with JsonlAppender(args.out) as out:  # opened first: a bad or busy --out fails before any model loads
        bar = _bar(len(tasks), "refine")
        try:
            if cluster is not None:
                accounting = refine_on_cluster(tasks, RefineJob(*worker_model_configs(args), config), out, cluster,
                                               retry=batch.retry, bar=bar, stop=stop, resume=resume)
            else:
                accounting = _run_here(args, config, lambda models: refine_all(
                    tasks, models, config, out, batch.prompt_concurrency, bar, retry=batch.retry, stop=stop,
                    resume=resume))
        finally:
            bar.close()
    latest = _summarize(resume, "prompt", args.out, [t.prompt_id for t in tasks], refine_summary, accounting)
    if not args.no_view and latest:
        from ..view import rubrics_page, write_page

        page = write_page(Path(args.out).with_suffix(".html"),
                          rubrics_page([RubricSet.from_dict(d) for d in latest.values()], f"rubrics: {args.out}"))
        print(f"view: {page}", file=sys.stderr)
    return _finish(stop, "prompt", accounting.failures)


def refine_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="refine rubrics for each prompt (RRD) into a rubrics JSONL",
                       description="Writes one RubricSet per prompt as it finishes; re-running resumes.")
    p.add_argument("input", help="prompts: .jsonl, .json, .csv, or a Hugging Face dataset id")
    _, out = _io_groups(p, "rubrics.jsonl (appended; prompts done are skipped)", pairs=False)
    out.add_argument("--no-view", action="store_true", help="do not write the HTML view beside --out (OUT.html)")
    add_cluster_args(p)
    add_refine_args(p)
    p.set_defaults(func=_run_refine)


# ----------------------------------------------------------------------------------------------------- judge
def judge_run_config_from_args(args: argparse.Namespace) -> JudgeRunConfig:
    score_mode(args)
    return JudgeRunConfig(**config_values(JudgeRunConfig, args))


def _run_judge(args: argparse.Namespace) -> int:
    pairs = read_pairs(_source(args, args.pairs))
    sets = load_rubric_sets(args.rubrics)
    config, refine = judge_run_config_from_args(args), refine_config_from_args(args)
    if config.refine_missing:
        print(profile_note(args), file=sys.stderr)
    if config.refine_missing and not Path(args.rubrics).exists():  # a typo here would buy a refine per prompt
        n = len({p.prompt_id for p in pairs})
        print(f"note: --rubrics {args.rubrics} does not exist: the rubric sets of all {n} prompts will be refined "
              "first and written there. If the path is mistyped, stop now (Ctrl-C); --no-refine-missing makes a "
              "missing set an error instead", file=sys.stderr)
    cluster = cluster_from_args(args, config.pair_concurrency)
    resume, stop = Resume(), Stop()
    with JsonlAppender(args.out) as out:  # opened first: a bad or busy --out fails before any model loads
        if config.retry == "unscored" and args.reask_unreadable == 0:
            args.reask_unreadable = 1  # re-judging an unreadable answer is only worth it with a changed question
        bar = _bar(len(pairs), "judge")
        try:
            if cluster is not None:
                accounting = judge_on_cluster(
                    pairs, sets, JudgeJob(*worker_model_configs(args), refine, config), out, cluster,
                    rubrics_path=args.rubrics, bar=bar, stop=stop, resume=resume)
            else:
                accounting = _run_here(args, refine, lambda models: judge_pairs(
                    pairs, sets, models, config, refine, out, rubrics_path=args.rubrics, bar=bar, stop=stop,
                    resume=resume))
        finally:
            bar.close()
    _summarize(resume, "pair", args.out, [p.pair_id for p in pairs], judge_summary, accounting)
    return _finish(stop, "pair", accounting.failures)


def judge_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("judge", help="score preference pairs against refined rubrics; prints accuracy",
                       description="Pointwise rubric scoring of both responses; the higher weighted score wins. "
                                   "Verdicts are appended as they arrive; re-running resumes.")
    p.add_argument("pairs", help="pairs: .jsonl/.json/.csv or Hub id with prompt, response_A, response_B[, label]")
    inp, _ = _io_groups(p, "verdicts.jsonl (appended; judged pairs are skipped)", pairs=True)
    inp.add_argument("--rubrics", required=True, help="rubrics.jsonl from `rrd refine` (missing prompts are "
                     "refined and appended to it)")
    add_config_args(p.add_argument_group("pair scoring"), JudgeRunConfig, skip=[f.name for f in fields(BatchConfig)])
    add_score_args(p)
    add_cluster_args(p)
    add_refine_args(p)
    p.set_defaults(func=_run_judge)
