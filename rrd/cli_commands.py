"""`rrd refine` and `rrd judge`: the method's two jobs as resumable, append-only file-to-file commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from . import interrupt
from .config import PROFILES, RefineConfig, auto_profile, profile_config
from .io import InputError, JsonlAppender, Row, latest_by, read_rows
from .records import RubricSet
from .resume import (BUDGET_EXIT, Resume, Stop, add_resume_args, content_hash, judged_redo_reason,
                     refined_redo_reason)
from .resume import pending as resume_pending
from .rubric_files import load_rubric_sets, prompt_key
from .scoring import TieRule, pair_credit, undecided, wilson_interval

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "user_query")
A_FIELDS = ("response_A", "response_a", "response_1", "chosen")
B_FIELDS = ("response_B", "response_b", "response_2", "rejected")


def _prompt_text(row: Row, field: str | None) -> str:
    value = row.get(field) if field else row.get(*PROMPT_FIELDS, kind=(str, list))
    if isinstance(value, list):  # a chat conversation: the last user turn is the prompt
        users = [m.get("content", "") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise InputError(row.source, row.line, field or "prompt", "conversation has no user turn")
        value = users[-1]
    if not value.strip():
        raise InputError(row.source, row.line, field or "prompt", "empty prompt")
    return value


# ------------------------------------------------------------------------------------------------ shared flags
def add_refine_args(p: argparse.ArgumentParser, default_profile: str = "auto") -> None:
    from judges.cli_args import COUNT, POSITIVE, add_judge_args, add_proposer_args, number

    add_judge_args(p)
    add_proposer_args(p)
    d = RefineConfig()
    local = PROFILES["local"]
    g = p.add_argument_group("refinement (defaults: the paper's, or the local profile's where they differ)")
    g.add_argument("--profile", choices=["auto", *PROFILES], default=default_profile,
                   help="paper: the paper's settings; local: sized for a small model on a CPU (n-samples "
                        f"{local['n_samples']}, threshold {local['satisfy_threshold']}, max tokens "
                        f"{local['sample_max_tokens']}); auto: local when every model is local:, else paper. "
                        "Explicit flags override the profile")
    g.add_argument("--samplers", nargs="*", default=[], help="models that write the N sampled responses "
                   "(default: the proposer)")
    g.add_argument("--n-samples", type=POSITIVE, default=None, help=f"paper {d.n_samples}")
    g.add_argument("--sample-max-tokens", type=POSITIVE, default=None,
                   help=f"length cap of sampled and reference responses (paper {d.sample_max_tokens})")
    g.add_argument("--proposer-max-tokens", type=POSITIVE, default=None,
                   help=f"length cap of the proposer's rubric lists and decompositions (paper "
                        f"{d.proposer_max_tokens})")
    g.add_argument("--threshold", type=COUNT, default=None,
                   help=f"decompose a rubric when more than this many samples satisfy it (paper "
                        f"{d.satisfy_threshold})")
    g.add_argument("--max-rejections", type=COUNT, default=d.max_rejections, help="rejection budget T")
    g.add_argument("--max-depth", type=COUNT, default=d.max_depth)
    g.add_argument("--strong-model", default=d.strong_model, help="misalignment check: the strong reference")
    g.add_argument("--weak-model", default=d.weak_model, help="misalignment check: the weak reference")
    g.add_argument("--initial", choices=["responses", "prompt_only"], default=d.initial_source)
    g.add_argument("--weights", choices=["whitened", "uniform", "llm"], default=d.weight_scheme)
    for stage in ("decompose", "misalignment", "overlap", "conflict"):
        g.add_argument(f"--no-{stage}", action="store_true", help=f"ablation: switch the {stage} stage off")
    g.add_argument("--near-duplicate-threshold", type=_threshold, default=d.near_duplicate_threshold,
                   help="lexical similarity (0-100) from which a proposed rubric repeats an existing one and is "
                        "dropped before grading; 'off' for exact (canonical) repeats only")
    g.add_argument("--repair-attempts", type=COUNT, default=d.repair_attempts,
                   help="re-asks of the proposer, with feedback, after an unreadable or repeating answer")
    g.add_argument("--on-failed-decomposition", choices=["keep", "reject"], default=d.on_failed_decomposition,
                   help="keep: a parent that cannot be decomposed goes on to the filters as if atomic; "
                        "reject: it is rejected (the paper)")
    g.add_argument("--fallback", choices=["initial", "none"], default=d.fallback,
                   help="initial: a loop that accepts nothing falls back to the initial rubrics that passed the "
                        "misalignment check; none: the set stays empty (the paper)")
    g.add_argument("--proposer-repetition-penalty", type=number(float, strict=True),
                   default=d.proposer_repetition_penalty,
                   help="repetition penalty of proposer calls (local backend and api_base servers; 1.0 = off)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--prompt-concurrency", type=POSITIVE, default=4, help="prompts refined at once")


def _threshold(text: str) -> float | None:
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100] or 'off', not {text!r}") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 100] or 'off', not {text!r}")
    return value


def refine_profile(args: argparse.Namespace) -> str:
    """The profile a run uses: --profile, with auto resolved from the models that write and grade."""
    if args.profile != "auto":
        return args.profile
    models = [args.judge, args.proposer or args.judge, *args.samplers, args.strong_model, args.weak_model]
    return auto_profile([m for m in models if m])


def refine_config_from_args(args: argparse.Namespace) -> RefineConfig:
    sized = {
        "n_samples": args.n_samples,
        "sample_max_tokens": args.sample_max_tokens,
        "reference_max_tokens": args.sample_max_tokens,
        "proposer_max_tokens": args.proposer_max_tokens,
        "satisfy_threshold": args.threshold,
    }
    return profile_config(
        refine_profile(args),
        **{k: v for k, v in sized.items() if v is not None},
        samplers=list(args.samplers),
        max_rejections=args.max_rejections,
        max_depth=args.max_depth,
        strong_model=args.strong_model,
        weak_model=args.weak_model,
        initial_source=args.initial,
        weight_scheme=args.weights,
        decompose=not args.no_decompose,
        misalignment=not args.no_misalignment,
        overlap=not args.no_overlap,
        conflict=not args.no_conflict,
        near_duplicate_threshold=args.near_duplicate_threshold,
        repair_attempts=args.repair_attempts,
        on_failed_decomposition=args.on_failed_decomposition,
        fallback=args.fallback,
        proposer_repetition_penalty=args.proposer_repetition_penalty,
        seed=args.seed,
    )


@dataclass
class Models:
    """The judge, proposer and sampler models of one run, built once (a local model loads once, not per
    prompt) and sharing one Accounting and cache, so the budget and the summary cover every call."""

    judge: Any
    proposer: Any
    samplers: dict[str, Any]

    @classmethod
    def build(cls, judge_cfg: Any, proposer_cfg: Any, refine: RefineConfig) -> Models:
        """Judge, proposer and samplers sharing one Accounting and one cache. The budget is the tighter of the
        judge's and the proposer's budget_usd (it caps their calls together). A sampler named like the judge or
        the proposer reuses that model; any other sampler gets the proposer's settings and no api_base."""
        from dataclasses import replace

        from judges import Accounting, Judge

        budgets = [b for b in (judge_cfg.budget_usd, proposer_cfg.budget_usd) if b is not None]
        accounting = Accounting(budget_usd=min(budgets) if budgets else None)
        judge = Judge(judge_cfg, accounting=accounting)
        built = {(judge_cfg.model, judge_cfg.api_base): judge}

        def get(cfg: Any) -> Any:
            key = (cfg.model, cfg.api_base)
            if key not in built:
                built[key] = Judge(cfg, accounting=accounting, cache=judge.cache)
            return built[key]

        proposer = get(proposer_cfg)
        samplers: dict[str, Any] = {}
        for name in [*refine.samplers, refine.strong_model, refine.weak_model]:
            if name and name not in samplers:
                samplers[name] = (judge if name == judge_cfg.model else proposer if name == proposer_cfg.model
                                  else get(replace(proposer_cfg, model=name, api_base=None)))
        return cls(judge, proposer, samplers)

    @classmethod
    def from_args(cls, args: argparse.Namespace, config: RefineConfig) -> Models:
        from judges.cli_args import judge_config_from_args, proposer_config_from_args

        return cls.build(judge_config_from_args(args), proposer_config_from_args(args), config)

    async def aclose(self) -> None:
        closed: set[int] = set()
        for j in (self.judge, self.proposer, *self.samplers.values()):
            if id(j) not in closed:
                closed.add(id(j))
                await j.aclose()


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="prompt" if desc == "refine" else "pair", file=sys.stderr)


class RefineView:
    """The refine bar's live postfix: the stage and rubric counts of the prompt that changed last, its elapsed
    time and ETA, how many prompts are in flight, and the run's calls. A prompt takes minutes on a local model,
    so the bar must move while it runs, not only when it ends; `tick` refreshes it during long grading waves.

    The ETA of a prompt in its loop is queue length x seconds per decided rubric so far (children join the
    queue, so it can grow); before its loop starts, it is the mean duration of the prompts finished in this run
    minus the time spent, and unknown ("?") until one has finished."""

    def __init__(self, bar: Any, accounting: Any, clock: Any = time.monotonic):
        self.bar, self.accounting, self.clock = bar, accounting, clock
        self.live: dict[str | None, Any] = {}
        self.last: Any = None
        self.started: dict[str | None, float] = {}
        self.loop_started: dict[str | None, float] = {}
        self.durations: list[float] = []

    def __call__(self, progress: Any) -> None:
        now = self.clock()
        pid = progress.prompt_id
        self.started.setdefault(pid, now)
        if progress.stage == "done":
            self.live.pop(pid, None)
            self.durations.append(now - self.started.pop(pid))
            self.loop_started.pop(pid, None)
        else:
            if progress.stage.startswith("grading") and pid not in self.loop_started:
                self.loop_started[pid] = now
            self.live[pid] = progress
            self.last = progress
        self.show()

    def eta(self, progress: Any) -> float | None:
        """Seconds left for this prompt, or None when nothing measured yet can tell."""
        now = self.clock()
        loop_t0 = self.loop_started.get(progress.prompt_id)
        if loop_t0 is not None and progress.processed > 0:
            return progress.queue * (now - loop_t0) / progress.processed
        if self.durations:
            spent = now - self.started.get(progress.prompt_id, now)
            return max(0.0, sum(self.durations) / len(self.durations) - spent)
        return None

    def show(self) -> None:
        parts = []
        p = self.last
        if p is not None and p.prompt_id in self.live:
            spent = self.clock() - self.started.get(p.prompt_id, self.clock())
            eta = self.eta(p)
            parts.append(f"{p.stage} q={p.queue} acc={p.accepted} rej={p.rejected} drop={p.dropped} "
                         f"{_clock(spent)} eta {_clock(eta) if eta is not None else '?'}")
        if len(self.live) > 1:
            parts.append(f"{len(self.live)} in flight")
        parts.append(self.accounting.postfix())
        self.bar.set_postfix_str(" | ".join(parts))

    async def tick(self, every_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.show()


# ---------------------------------------------------------------------------------------------------- refine
@dataclass
class PromptTask:
    prompt_id: str
    prompt: str
    responses: list[str] | None


def _prompt_tasks(args: argparse.Namespace) -> list[PromptTask]:
    tasks: dict[str, PromptTask] = {}
    for row in read_rows(args.input, split=args.split, limit=args.limit):
        prompt = _prompt_text(row, args.prompt_field)
        pid = str(row.get(args.id_field, kind=(str, int))) if args.id_field else prompt_key(prompt)
        responses = None
        if args.responses_field and args.responses_field in row.data:
            responses = row.get(args.responses_field, kind=list)
            if not all(isinstance(r, str) for r in responses):
                raise InputError(row.source, row.line, args.responses_field, "expected a list of strings")
        tasks.setdefault(pid, PromptTask(pid, prompt, responses))  # a repeated prompt is refined once
    return list(tasks.values())


async def refine_all(tasks: Iterable[PromptTask], models: Models, config: RefineConfig, out: JsonlAppender,
                     prompt_concurrency: int, bar: Any = None, *, retry: str = "failed",
                     stop: Stop | None = None, resume: Resume | None = None) -> list[RubricSet]:
    """Refine every task not already done in `out` (see rrd.resume for what is redone); each RubricSet is
    appended the moment it is done. A prompt whose calls hit the budget is not written, and no new one starts
    (`stop` says so)."""
    from judges import BudgetExceeded

    from .refine import refine_prompt

    tasks = list(tasks)
    resume = resume if resume is not None else Resume()
    stop = stop if stop is not None else Stop()
    pending = resume_pending(tasks, lambda t: t.prompt_id, latest_by(out.existing, "prompt_id"),
                             lambda t, r: refined_redo_reason(r, t.prompt, t.responses, retry), resume)
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
                rs = await refine_prompt(task.prompt, models.judge, models.proposer, config,
                                         prompt_id=task.prompt_id, responses=task.responses,
                                         samplers=models.samplers, progress=view)
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


def _summary_refine(sets: list[dict[str, Any]], accounting: Any) -> str:
    if not sets:
        return "no rubric sets"
    counts = [len(s.get("accepted", [])) for s in sets]
    reasons: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for s in sets:
        reasons.update(r.get("reason") for r in s.get("tree", []) if r.get("status") == "rejected")
        dropped.update(r.get("reason") for r in s.get("tree", []) if r.get("status") == "dropped")
    calls = [s.get("stats", {}).get("calls", 0) for s in sets]
    failed = [s.get("prompt_id") for s in sets if s.get("stopped") == "failed"]
    lines = [
        f"prompts: {len(sets)}   rubrics per prompt: mean {sum(counts) / len(counts):.1f}, "
        f"min {min(counts)}, max {max(counts)}",
        "rejections: " + (", ".join(f"{k} {v}" for k, v in reasons.most_common()) or "none")
        + "   repeats dropped before grading: " + (", ".join(f"{k} {v}" for k, v in dropped.most_common()) or "none"),
        f"judge calls per prompt: mean {sum(calls) / len(calls):.0f}   this run: {_run_totals(accounting)}",
    ]
    st = [s.get("stats", {}) for s in sets]
    lines.append(f"repairs: {sum(x.get('repairs', 0) for x in st)} re-asks, {sum(x.get('repaired', 0) for x in st)} "
                 f"fixed the answer   failed decompositions: {sum(x.get('failed_decompositions', 0) for x in st)} "
                 f"({sum(x.get('kept_after_failed_decomposition', 0) for x in st)} parents kept as atomic)")
    fallback = [s.get("prompt_id") for s in sets if s.get("fallback")]
    if fallback:
        lines.append(f"fell back to initial rubrics (nothing accepted) ({len(fallback)}): "
                     f"{', '.join(map(str, fallback[:10]))}")
    with_failures = [s.get("prompt_id") for s in sets if s.get("stats", {}).get("failures", 0)]
    if with_failures:
        lines.append(f"prompts with failed calls ({len(with_failures)}, redone by the next run): "
                     f"{', '.join(map(str, with_failures[:10]))}")
    if failed:
        lines.append(f"failed prompts ({len(failed)}): {', '.join(map(str, failed[:10]))}")
    return "\n".join(lines)


def _run_totals(accounting: Any) -> str:
    return (f"{accounting.calls} calls, {accounting.cache_hits} cache hits, {accounting.failures} failed, "
            f"{accounting.unreadable} unreadable answers, {accounting.prompt_tokens + accounting.completion_tokens} "
            f"tokens, ${accounting.cost_usd:.4f}")


def _finish(stop: Stop, unit: str) -> int:
    """Say why the run stopped early, if it did; the exit status."""
    if stop.budget is not None:
        print(stop.message(unit), file=sys.stderr)
        return BUDGET_EXIT
    return 0


def _run_refine(args: argparse.Namespace) -> int:
    tasks = _prompt_tasks(args)
    config = refine_config_from_args(args)
    resume, stop = Resume(), Stop()
    with JsonlAppender(args.out) as out:  # opened first: a bad or busy --out fails before any model loads
        models = Models.from_args(args, config)
        bar = _bar(len(tasks), "refine")
        try:
            interrupt.run(_refine_and_close(tasks, models, config, out, args, bar, stop, resume))
        finally:
            bar.close()
        if resume.message("prompt"):
            print(resume.message("prompt"), file=sys.stderr)
        latest = latest_by((r.data for r in read_rows(str(out.path))), "prompt_id")
        print(_summary_refine([latest[t.prompt_id] for t in tasks if t.prompt_id in latest],
                              models.judge.accounting))
    if not args.no_view and latest:
        from .view import rubrics_page, write_page

        page = write_page(Path(args.out).with_suffix(".html"),
                          rubrics_page([RubricSet.from_dict(d) for d in latest.values()], f"rubrics: {args.out}"))
        print(f"view: {page}", file=sys.stderr)
    return _finish(stop, "prompt")


async def _refine_and_close(tasks, models, config, out, args, bar, stop, resume) -> None:
    try:
        await refine_all(tasks, models, config, out, args.prompt_concurrency, bar, retry=args.retry, stop=stop,
                         resume=resume)
    finally:
        await models.aclose()


def refine_command(sub: argparse._SubParsersAction) -> None:
    from judges.cli_args import POSITIVE

    p = sub.add_parser("refine", help="refine rubrics for each prompt (RRD) into a rubrics JSONL",
                       description="Writes one RubricSet per prompt as it finishes; re-running resumes.")
    p.add_argument("input", help="prompts: .jsonl, .json, .csv, or a Hugging Face dataset id")
    p.add_argument("--out", required=True, help="rubrics.jsonl (appended; prompts done are skipped)")
    p.add_argument("--no-view", action="store_true", help="do not write the HTML view beside --out (OUT.html)")
    p.add_argument("--prompt-field", default=None, help=f"default: first of {', '.join(PROMPT_FIELDS)}")
    p.add_argument("--responses-field", default="responses", help="optional list of your own N responses")
    p.add_argument("--id-field", default=None, help="prompt id column (default: a hash of the prompt)")
    p.add_argument("--split", default="train", help="split for Hub datasets")
    p.add_argument("--limit", type=POSITIVE, default=None)
    add_resume_args(p)
    add_refine_args(p)
    p.set_defaults(func=_run_refine)


# ----------------------------------------------------------------------------------------------------- judge
LABELS = {"A>B": "A", "A": "A", "model_a": "A", "1": "A", "B>A": "B", "B": "B", "model_b": "B", "2": "B"}


@dataclass
class Pair:
    pair_id: str
    prompt_id: str
    prompt: str
    a: str
    b: str
    label: str | None  # "A", "B", "tie" or None (unlabelled)

    @property
    def content_hash(self) -> str:
        return content_hash(self.prompt, self.a, self.b)


def _label(row: Row) -> str | None:
    if "chosen" in row.data and "response_A" not in row.data:
        return "A"
    raw = row.data.get("label", row.data.get("winner"))
    if raw is None:
        return None
    text = str(raw).strip()
    if text in LABELS:
        return LABELS[text]
    if text.lower().startswith("tie") or text in ("A=B", "B=A"):
        return "tie"
    raise InputError(row.source, row.line, "label", f"unknown label {raw!r} (use A>B, B>A, A, B or tie)")


def _pairs(args: argparse.Namespace) -> list[Pair]:
    pairs = []
    for row in read_rows(args.pairs, split=args.split, limit=args.limit):
        prompt = _prompt_text(row, args.prompt_field)
        a, b = row.get(*A_FIELDS), row.get(*B_FIELDS)
        pid = str(row.get(args.id_field, kind=(str, int))) if args.id_field else prompt_key(prompt)
        pair_id = row.get("pair_id", "id", required=False, kind=(str, int))
        if pair_id is None:
            pair_id = "pair-" + content_hash(prompt, a, b)
        pairs.append(Pair(str(pair_id), pid, prompt, a, b, _label(row)))
    return pairs


async def judge_pair(pair: Pair, rs: RubricSet, judge: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The verdict record of one pair: both responses graded against `rs`, the tie broken under PAIRWISE, and
    every unscored verdict's reason kept, so a re-run knows what to retry and a reader knows why."""
    from judges import GradeItem
    from judges.types import is_retryable_failure, is_unreadable

    tie_rule = TieRule(args.tie_rule)
    va, vb = await judge.grade_many([GradeItem(rs.texts, pair.a, pair.prompt),
                                     GradeItem(rs.texts, pair.b, pair.prompt)])
    if args.soft:
        fa = [v.p_yes if v.p_yes is not None else v.met for v in va]
        fb = [v.p_yes if v.p_yes is not None else v.met for v in vb]
    else:
        fa, fb = [v.met for v in va], [v.met for v in vb]
    verdict = rs.compare(fa, fb, tie_margin=args.tie_margin)
    calls = judge.fresh_calls(va) + judge.fresh_calls(vb)
    reasons = [v.reason for v in (*va, *vb) if v.met is None]
    tie_break = tie_break_reason = None
    if verdict in ("tie", None) and tie_rule is TieRule.PAIRWISE:
        pv = await judge.pairwise(pair.prompt, pair.a, pair.b)
        tie_break, tie_break_reason, calls = pv.winner, pv.reason, calls + (not pv.cached)
        if pv.winner is None:
            reasons.append(pv.reason)
    is_undecided = undecided(verdict, tie_rule, tie_break)
    why_undecided = None
    if is_undecided:
        why_undecided = (f"no rubrics: {rs.failure or rs.stopped}" if not rs.rubrics
                         else "no rubric scored for both responses" if verdict is None
                         else "tie")
        if tie_break_reason:
            why_undecided += f"; tie-break unreadable: {tie_break_reason[:200]}"
    return {
        "pair_id": pair.pair_id, "prompt_id": pair.prompt_id, "item_hash": pair.content_hash,
        "rubric_set": rs.content_hash,
        "score_A": rs.score(fa), "score_B": rs.score(fb), "verdict": verdict, "tie_break": tie_break,
        "tie_break_reason": tie_break_reason, "label": pair.label,
        "credit": (pair_credit(verdict, pair.label, tie_rule, tie_break)
                   if pair.label in ("A", "B") else None),
        "undecided": is_undecided, "undecided_reason": why_undecided,
        "unscored": sum(v.met is None for v in (*va, *vb)),
        "failed": sum(is_retryable_failure(r) for r in reasons),
        "unreadable": sum(is_unreadable(r) for r in reasons),
        "verdicts_A": [[v.met, v.p_yes] for v in va], "verdicts_B": [[v.met, v.p_yes] for v in vb],
        "reasons_A": [v.reason if v.met is None else None for v in va],
        "reasons_B": [v.reason if v.met is None else None for v in vb],
        "calls": calls, "judge": judge.model,
    }


async def judge_pairs(pairs: list[Pair], sets: dict[str, RubricSet], models: Models, args: argparse.Namespace,
                      out: JsonlAppender, bar: Any = None, *, stop: Stop | None = None,
                      resume: Resume | None = None) -> None:
    """Score each pending pair against its prompt's RubricSet (refining missing ones first) and append the
    verdict record as soon as it is known. Once the budget refuses a call no new pair starts; pairs in flight
    finish (their calls that fit are sent) and the refused one is left for the next run."""
    from judges import BudgetExceeded

    stop = stop if stop is not None else Stop()
    resume = resume if resume is not None else Resume()
    retry = getattr(args, "retry", "failed")
    missing = {p.prompt_id: p for p in pairs if p.prompt_id not in sets}
    if missing:
        if not args.refine_missing:
            raise SystemExit(f"{len(missing)} prompts have no rubric set in {args.rubrics} "
                             f"(first: {next(iter(missing))}); run `rrd refine` or drop --no-refine-missing")
        tasks = [PromptTask(pid, p.prompt, None) for pid, p in missing.items()]
        with JsonlAppender(args.rubrics) as rubrics_out:  # refined sets are kept for the next run
            for rs in await refine_all(tasks, models, refine_config_from_args(args), rubrics_out,
                                       args.prompt_concurrency, retry=retry, stop=stop):
                sets[rs.prompt_id or prompt_key(rs.prompt)] = rs

    def redo(p: Pair, record: dict[str, Any]) -> str | None:
        rs = sets.get(p.prompt_id)
        return judged_redo_reason(record, p.content_hash, rs.content_hash if rs is not None else None, retry)

    pending = resume_pending(pairs, lambda p: p.pair_id, latest_by(out.existing, "pair_id"), redo, resume)
    if bar is not None:
        bar.update(len(pairs) - len(pending))
    sem = asyncio.Semaphore(max(1, args.pair_concurrency))

    async def one(pair: Pair) -> None:
        rs = sets.get(pair.prompt_id)
        async with sem:
            if stop.budget is not None or rs is None:  # rs None: its refinement stopped at the budget
                stop.not_done += 1
                return
            try:
                record = await judge_pair(pair, rs, models.judge, args)
            except BudgetExceeded as exc:  # the calls that fit were sent and cached; the pair waits for a re-run
                stop.budget = str(exc)
                stop.not_done += 1
                return
        out.append(record)
        if bar is not None:
            bar.set_postfix_str(models.judge.accounting.postfix())
            bar.update(1)

    await asyncio.gather(*(one(p) for p in pending))


def _summary_judge(records: list[dict[str, Any]], accounting: Any) -> str:
    """Counts over distinct pairs (the last record of each): a redone pair is counted once."""
    labelled = [r for r in records if r.get("credit") is not None]
    undecided_n = sum(bool(r.get("undecided", r.get("verdict") is None)) for r in records)
    ties = sum(r.get("verdict") == "tie" for r in records)
    reasons = Counter(_reason_kind(x) for r in records for x in (*r.get("reasons_A", []), *r.get("reasons_B", []),
                                                                r.get("tie_break_reason")) if x)
    lines = [f"pairs: {len(records)}   score ties: {ties}   undecided: {undecided_n}"
             + (" (counted wrong, as in rrd eval)" if undecided_n else "")]
    unscored = sum(r.get("unscored", 0) for r in records)
    lines.append(f"unscored verdicts: {unscored}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in reasons.most_common(4)) + ")" if reasons else ""))
    if labelled:
        k = sum(r["credit"] for r in labelled)
        lo, hi = wilson_interval(k, len(labelled))
        lines.append(f"accuracy: {k / len(labelled):.3f} ({k:g}/{len(labelled)}), 95% CI [{lo:.3f}, {hi:.3f}]")
    failed = sum(1 for r in records if r.get("failed"))
    if failed:
        lines.append(f"pairs with failed calls: {failed} (redone by the next run unless --retry none)")
    lines.append(f"this run: {_run_totals(accounting)}")
    return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """A short class of an unscored verdict's reason, for the summary."""
    from judges.types import CALL_FAILED, CALL_FAILED_PERMANENTLY

    if reason.startswith(CALL_FAILED_PERMANENTLY):
        return "failed, not retryable"
    if reason.startswith(CALL_FAILED):
        return "call failed"
    return "unreadable"


def _run_judge(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    sets = load_rubric_sets(args.rubrics)
    resume, stop = Resume(), Stop()
    with JsonlAppender(args.out) as out:  # opened first: a bad or busy --out fails before any model loads
        if args.retry == "unscored" and args.reask_unreadable == 0:
            args.reask_unreadable = 1  # re-judging an unreadable answer is only worth it with a changed question
        models = Models.from_args(args, refine_config_from_args(args))
        bar = _bar(len(pairs), "judge")

        async def go() -> None:
            try:
                await judge_pairs(pairs, sets, models, args, out, bar, stop=stop, resume=resume)
            finally:
                await models.aclose()

        try:
            interrupt.run(go())
        finally:
            bar.close()
    if resume.message("pair"):
        print(resume.message("pair"), file=sys.stderr)
    latest = latest_by((r.data for r in read_rows(args.out)), "pair_id")
    print(_summary_judge([latest[p.pair_id] for p in pairs if p.pair_id in latest], models.judge.accounting))
    return _finish(stop, "pair")


def judge_command(sub: argparse._SubParsersAction) -> None:
    from judges.cli_args import POSITIVE, number

    p = sub.add_parser("judge", help="score preference pairs against refined rubrics; prints accuracy",
                       description="Pointwise rubric scoring of both responses; the higher weighted score wins. "
                                   "Verdicts are appended as they arrive; re-running resumes.")
    p.add_argument("pairs", help="pairs: .jsonl/.json/.csv or Hub id with prompt, response_A, response_B[, label]")
    p.add_argument("--rubrics", required=True, help="rubrics.jsonl from `rrd refine` (missing prompts are refined "
                   "and appended to it)")
    p.add_argument("--out", required=True, help="verdicts.jsonl (appended; judged pairs are skipped)")
    p.add_argument("--prompt-field", default=None)
    p.add_argument("--id-field", default=None, help="prompt id column matching the rubric sets' prompt_id")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=POSITIVE, default=None)
    p.add_argument("--tie-rule", choices=[t.value for t in TieRule], default="half",
                   help="half: a tie scores 0.5; pairwise: break it with a direct pairwise call; tie: counts wrong. "
                        "A pair with no rubric scored for both responses is undecided and counts wrong")
    p.add_argument("--tie-margin", type=number(float), default=0.0)
    p.add_argument("--soft", action="store_true", help="score with P(YES) instead of hard verdicts")
    p.add_argument("--pair-concurrency", type=POSITIVE, default=8)
    p.add_argument("--no-refine-missing", dest="refine_missing", action="store_false")
    add_resume_args(p)
    add_refine_args(p)
    p.set_defaults(func=_run_judge)
