"""`rrd eval BENCH`: judge methods on JudgeBench / PPE, policies on HealthBench / BiGGen, then report.md + plots.

Registered through the "rrd.commands" entry point; heavy imports happen only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

def eval_command(sub: argparse._SubParsersAction) -> None:
    from judges.settings import add_config_args
    from rrd.cli.flags import add_cluster_args, add_refine_args, add_score_args

    from .benchmarks import BENCHMARKS  # the registry itself (the rrd package it needs is loaded already)
    from .policy import PolicyConfig
    from .preference import PairFields
    from .runner import EvalConfig

    p = sub.add_parser(
        "eval", help="evaluate judge methods (JudgeBench, PPE) or a policy (HealthBench, BiGGen)",
        description="Runs a benchmark with its official protocol. Per-item results are appended to "
                    "OUT/results.jsonl as they arrive; re-running the same command resumes (no item is judged "
                    "twice), then OUT/report.md and plots are (re)written.")
    p.add_argument("bench", choices=list(BENCHMARKS))
    out = p.add_argument_group("output")
    out.add_argument("--out", default=None, help="output folder (default runs/eval/BENCH)")
    biggen_only = ("biggen_llm_judge",)
    add_config_args(p.add_argument_group("benchmark and methods"), EvalConfig, skip=biggen_only)
    add_score_args(p)
    add_config_args(p.add_argument_group(
        "your own preference data (rrd eval pairs --data FILE_OR_HUB_ID); fields default to the first present of "
        "the usual names"), PairFields)
    g = p.add_argument_group("policy evaluation (HealthBench, BiGGen); --judge is the grader")
    g.add_argument("--policy", default=None, help="model string of the policy, e.g. local:/path/to/checkpoint; it "
                   "runs with the judge's connection and local-model flags (--timeout, --concurrency, --local-*), "
                   "its own --policy-api-base, and the sampling flags below")
    g.add_argument("--policy-api-base", default=None)
    add_config_args(g, PolicyConfig)
    add_config_args(g, EvalConfig, skip=[f.name for f in fields(EvalConfig) if f.name not in biggen_only])
    out.add_argument("--dry-run", action="store_true", help="estimate calls, tokens and dollars; spend nothing")
    out.add_argument("--report-only", action="store_true", help="rebuild report.md and plots from results.jsonl")
    out.add_argument("--no-view", action="store_true", help="do not write OUT/view.html (the HTML view of the run)")
    add_cluster_args(p)
    add_refine_args(p)
    p.set_defaults(func=run_eval_command)


def _config(args: argparse.Namespace) -> Any:
    from judges.settings import config_values
    from rrd.cli.flags import refine_config_from_args, score_mode

    from .policy import PolicyConfig
    from .preference import PairFields
    from .runner import EvalConfig

    score_mode(args)
    return EvalConfig(
        bench=args.bench,
        out_dir=Path(args.out or f"runs/eval/{args.bench}"),
        **config_values(EvalConfig, args),
        pair_fields=PairFields(**config_values(PairFields, args)),
        refine=refine_config_from_args(args),
        policy=PolicyConfig(**config_values(PolicyConfig, args)),
    )


def run_eval_command(args: argparse.Namespace) -> int:
    from rrd.io import InputError, JsonlAppender, UsageError, read_jsonl

    from .report import build_report
    from .runner import RESULTS, load_items

    try:
        config = _config(args)
        config.method_list()  # unknown or unsuitable methods fail here, before any loading
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    command = "rrd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else None
    if args.report_only:
        print(build_report(config.out_dir, config.bench, config.spec.kind, command))
        _write_view(config.out_dir, args)
        return 0
    if config.spec.evaluates_policy and not (args.policy or args.dry_run):
        raise UsageError(f"{config.bench} evaluates a policy: give --policy MODEL (and --judge GRADER)")
    if not config.spec.evaluates_policy:  # policy benchmarks grade the benchmark's own rubrics
        from rrd.cli.flags import profile_note

        print(profile_note(args), file=sys.stderr)
    if args.rubric_samples == "item" and config.spec.kind == "pairs" and config.refine.decompose \
            and config.refine.satisfy_threshold >= 2:
        print(f"warning: with --rubric-samples item each pair gives 2 responses, so --threshold "
              f"{config.refine.satisfy_threshold} can never trigger decomposition (it needs more than that many "
              "satisfying responses); --threshold 1 decomposes rubrics that both responses satisfy",
              file=sys.stderr)
    try:
        items = load_items(config)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise UsageError(str(exc)) from None
    if args.dry_run:
        print(_dry_run(config, args, items, read_jsonl(config.out_dir / RESULTS)))
        return 0
    from rrd.cli.flags import cluster_from_args
    from rrd.resume import BUDGET_EXIT, Stop

    cluster = cluster_from_args(args, config.item_concurrency)
    if cluster is not None and config.spec.evaluates_policy:
        raise UsageError(f"--ray runs judge benchmarks; {config.bench} evaluates a policy and runs in one process")
    stop = Stop()
    with JsonlAppender(config.out_dir / RESULTS) as results:
        summary, accounting = _run(config, args, items, results, cluster, stop)
    print(build_report(config.out_dir, config.bench, config.spec.kind, command))
    if not config.spec.evaluates_policy:  # judge benchmarks: the items are what was judged
        from .runner import as_responses
        from .view import write_items

        write_items(config.out_dir, [as_responses(it) for it in items])
    _write_view(config.out_dir, args)
    print(f"this run: {summary.written} results written, {summary.skipped} already done, "
          f"{len(summary.errors)} errors; {accounting.summary()}; report: {config.out_dir / 'report.md'}",
          file=sys.stderr)
    if stop.budget is not None:
        print(stop.message("item"), file=sys.stderr)
        return BUDGET_EXIT
    if summary.errors:
        return 1
    if accounting.failures:
        from rrd.resume import FAILED_CALLS_EXIT, failed_calls_message

        print(failed_calls_message(accounting.failures, redo=False), file=sys.stderr)
        return FAILED_CALLS_EXIT
    return 0


def _write_view(out_dir: Path, args: argparse.Namespace) -> None:
    """OUT/view.html beside the report; a run with no results yet has nothing to show."""
    from rrd.io import read_jsonl

    from .view import write_run_page

    if not args.no_view and read_jsonl(out_dir / "results.jsonl"):
        print(f"view: {write_run_page(out_dir)}", file=sys.stderr)


def _run(config: Any, args: argparse.Namespace, items: list[Any], results: Any, cluster: Any,
         stop: Any) -> tuple[Any, Any]:
    """Run the items here, or on Ray workers with `cluster`; a budget that runs out sets `stop.budget`."""
    from judges import BudgetExceeded
    from rrd import interrupt
    from rrd.cli.flags import models_from_args
    from rrd.progress import RefineView, progress_bar

    from .runner import EvalRun

    n_methods = max(1, len(config.method_list()))
    bar = progress_bar(len(items) * n_methods, f"eval {config.bench}", "result")
    if cluster is not None:
        from rrd.cli.flags import worker_model_configs

        from .on_cluster import eval_on_cluster

        judge, proposer = worker_model_configs(args)
        run = EvalRun(config, None, progress=bar.update, judge_model=judge.model)
        try:
            accounting = eval_on_cluster(run, items, results, cluster, judge, proposer, stop, bar)
        finally:
            bar.close()
        return run.summary, accounting
    models = models_from_args(args, config.refine, policy=args.policy, policy_api_base=args.policy_api_base)
    policy = models.policy

    view = RefineView(bar, models.judge.accounting)  # the stage and rubric counts of refinements in flight

    def progress(n: int) -> None:
        bar.update(n)
        view.show()

    run = EvalRun(config, models, policy, progress, refine_progress=view)

    async def go() -> Any:
        ticker = asyncio.ensure_future(view.tick())
        try:
            return await run.run(items, results)
        finally:
            ticker.cancel()
            await models.aclose()

    try:
        interrupt.run(go())
    except BudgetExceeded as exc:  # the items in flight when it ran out are not written: the next run does them
        stop.budget = str(exc)
        stop.not_done = len(items) * n_methods - run.summary.written - run.summary.skipped
    finally:
        bar.close()
    return run.summary, models.judge.accounting


def _dry_run(config: Any, args: argparse.Namespace, items: list[Any], done: list[dict[str, Any]]) -> str:
    from .estimate import Assumptions, Estimate, estimate_method, estimate_policy, price, refinement_key
    from .runner import as_responses, item_id

    assumptions = Assumptions()
    finished = {(r.get("method"), r.get("item_id")) for r in done}
    lines = [f"dry run: {config.bench}, {len(items)} items, judge {args.judge}"]
    if config.spec.evaluates_policy:
        policy = args.policy or "<--policy>"
        method = "healthbench-grader" if config.spec.kind == "healthbench" else "prometheus-absolute"
        pending = [it for it in items if (method, item_id(it)) not in finished]
        gen, grade = estimate_policy(config.spec.kind, pending, policy, args.judge, assumptions)
        for name, model, est in (("policy", policy, gen), ("grader", args.judge, grade)):
            lines.append(_estimate_line(name, len(pending), est, price(model, est)))
        return "\n".join(lines)
    proposer = args.proposer or args.judge
    first_with: dict[str | None, str] = {}
    total, costs = Estimate(), []
    for method in config.method_list():
        pending = [as_responses(it) for it in items if (method.name, item_id(it)) not in finished]
        key = refinement_key(method, config.refine)
        est, how = estimate_method(method, pending, args.judge, config.refine, done, assumptions,
                                   item_samples=config.rubric_samples == "item",
                                   shares_with=first_with.get(key) if key is not None else None)
        first_with.setdefault(key, method.name)
        # the judge grades and the proposer writes: price at the judge's rate unless both are the same model
        cost = price(args.judge, est) if proposer == args.judge else None
        total.merge(est)
        costs.append(cost)
        lines.append(_estimate_line(method.name, len(pending), est, cost) + f"  [{how}]")
    total_cost = None if None in costs else sum(c for c in costs if c is not None)  # unpriced if any part is
    lines.append(_estimate_line("total", len(items), total, total_cost))
    return "\n".join(lines)


def _estimate_line(name: str, n: int, est: Any, cost: float | None) -> str:
    dollars = f"~${cost:.2f}" if cost is not None else "$ n/a (local or unpriced model)"
    return (f"  {name:22s} {n:5d} items  ~{est.calls:,.0f} calls  ~{est.prompt_tokens:,.0f} prompt + "
            f"~{est.completion_tokens:,.0f} completion tokens  {dollars}")


def view_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "view", help="write one self-contained HTML page of a rubrics file, a verdicts file or an eval run",
        description="PATH is `rrd refine` output (rubrics .jsonl), `rrd judge` output (verdicts .jsonl, with "
                    "--rubrics), or an `rrd eval --out` folder. The page embeds its data and needs no network.")
    p.add_argument("path")
    p.add_argument("--out", default=None, help="page path (default: beside PATH, or PATH/view.html for a folder)")
    p.add_argument("--rubrics", default=None, help="the rubrics file a verdicts file was judged with")
    p.add_argument("--data", default=None, help="for an eval folder without items.jsonl: the benchmark file or "
                   "Hub id it ran on, to show prompts and responses")
    p.add_argument("--split", default=None)
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=run_view_command)


def run_view_command(args: argparse.Namespace) -> int:
    import webbrowser

    from rrd.io import InputError, UsageError

    try:
        page = _view(args)
    except ValueError as exc:
        if isinstance(exc, InputError):  # a bad record: the file:line:field error is the message users need
            raise
        raise UsageError(str(exc)) from None
    print(page)
    if args.open:
        webbrowser.open(page.resolve().as_uri())
    return 0


def _view(args: argparse.Namespace) -> Path:
    from rrd.io import latest_by, read_rows
    from rrd.records import RubricSet, load_rubric_sets
    from rrd.view import rubrics_page, verdicts_page, write_page

    from .view import PAGE, run_page

    path = Path(args.path)
    if path.is_dir():
        items = _view_items(path, args) if args.data else None
        return write_page(Path(args.out or path / PAGE), run_page(path, items))
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    rows = [r.data for r in read_rows(str(path))]
    out = Path(args.out or path.with_suffix(".html"))
    # both files are append-only: a re-refined prompt or re-judged pair supersedes its earlier line
    if rows and "tree" in rows[0]:
        sets = [RubricSet.from_dict(d) for d in latest_by(rows, "prompt_id").values()]
        return write_page(out, rubrics_page(sets, f"rubrics: {path.name}"))
    if rows and "pair_id" in rows[0]:
        if not args.rubrics:
            raise ValueError(f"{path} holds verdicts: give --rubrics, the rubrics file they were judged with")
        verdicts = list(latest_by(rows, "pair_id").values())
        return write_page(out, verdicts_page(verdicts, load_rubric_sets(args.rubrics).values(),
                                             f"verdicts: {path.name}"))
    raise ValueError(f"{path}: neither rubric sets (no `tree`) nor verdicts (no `pair_id`) in its first record")


def _view_items(run_dir: Path, args: argparse.Namespace) -> list[Any]:
    from .benchmarks import BENCHMARKS
    from rrd.io import read_jsonl
    from .runner import as_responses

    records = read_jsonl(run_dir / "results.jsonl")
    bench = records[0].get("bench") if records else None
    if bench not in BENCHMARKS:
        raise ValueError(f"{run_dir}: cannot tell which benchmark loader reads --data (bench {bench!r})")
    spec = BENCHMARKS[bench]
    return [as_responses(it) for it in spec.loader(args.data, split=args.split or spec.default_split)]
