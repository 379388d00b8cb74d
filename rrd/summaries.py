"""The end-of-run summaries `rrd refine` and `rrd judge` print, read from the records written (so a resumed
run's summary covers every item, and a redone item counts once)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, NamedTuple, Sequence

from .grading import pair_verdict_of, upgrade_pair_record
from .records import Rubric
from .scoring import wilson_interval


class Decompositions(NamedTuple):
    """What the parents sent to decomposition gave, counted over rubric trees."""

    #: decomposed parents, and those rejected or kept after a failed decomposition
    tried: int
    #: parents with at least one child that is not a repeat (dropped before grading)
    new: int
    #: parents with at least one graded child that some but not all samples satisfy: a child that is new but
    #: satisfied by every sample (or by none) still separates nothing, so this is the stricter reading of success
    separating: int


def decompositions(trees: Iterable[Sequence[Rubric]]) -> Decompositions:
    """Counted over every tree (one per rubric set); read by the refine summary and bench/compare_runs.py."""
    tried = new = separating = 0
    for tree in trees:
        kids: dict[str, list[Rubric]] = {}
        for r in tree:
            if r.parent is not None and r.status != "dropped":
                kids.setdefault(r.parent, []).append(r)
        for r in tree:
            if r.status == "decomposed" or r.reason == "failed_decomposition" or "decomposition failed" in (
                    r.detail or ""):
                mine = kids.get(r.id, [])
                tried, new = tried + 1, new + bool(mine)
                separating += any(0 < sum(v is True for v in k.verdicts) < sum(v is not None for v in k.verdicts)
                                  for k in mine)
    return Decompositions(tried, new, separating)


def stage_times(sets: Iterable[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    """Seconds waited and prompt tokens evaluated (sent minus reused) per refinement stage over the sets, most
    seconds first; {} for sets written before stages were timed."""
    seconds: Counter[str] = Counter()
    evaluated: Counter[str] = Counter()
    for s in sets:
        for stage, t in s.get("stats", {}).get("stages", {}).items():
            seconds[stage] += t.get("seconds", 0.0)
            evaluated[stage] += int(t.get("prompt_tokens", 0) - t.get("cached_tokens", 0))
    if not any(seconds.values()):
        return {}
    return {stage: (seconds[stage], evaluated[stage]) for stage in sorted(seconds, key=lambda k: -seconds[k])}


def refine_summary(sets: list[dict[str, Any]], accounting: Any) -> str:
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
        f"judge calls per prompt: mean {sum(calls) / len(calls):.0f}   this run: {accounting.summary()}",
    ]
    total: Counter[str] = Counter()
    for s in sets:
        total.update({k: v for k, v in s.get("stats", {}).items() if isinstance(v, (int, float))})
    lines.append(f"repairs: {total['repairs']} re-asks, {total['repaired']} fixed the answer   failed "
                 f"decompositions: {total['failed_decompositions']} ({total['kept_after_failed_decomposition']} "
                 f"parents kept as atomic)   split by syntax: {total['splits']}   sampled candidates: "
                 f"{total['candidate_wins']} of {total['candidates']} gave a new child")
    d = decompositions([Rubric.from_dict(r) for r in s.get("tree", [])] for s in sets)
    lines.append(f"decompositions: {d.tried} parents, {d.new} gave a new child, {d.separating} a child that separates "
                 "the samples (some but not all satisfy it)")
    lines.append(f"proposer calls on decompositions: {total['decompose_calls']}   coarse rubrics left undecomposed "
                 f"once the budget was spent: {total['over_budget']}   overlaps across initial lists (not counted "
                 f"in T): {total['initial_overlaps']}   overlap/conflict claims not confirmed in another order: "
                 f"{total['unconfirmed_checks']}")
    by_stage = stage_times(sets)
    if by_stage:
        lines.append("time waiting on calls by stage, summed over prompts (prompt tokens evaluated): " + ", ".join(
            f"{stage} {seconds:.0f} s ({evaluated:,})" for stage, (seconds, evaluated) in by_stage.items()))
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


def judge_summary(records: list[dict[str, Any]], accounting: Any) -> str:
    """Counts over distinct pairs (the last record of each): a redone pair is counted once. Records of any
    version (rrd.grading.upgrade_pair_record)."""
    records = [upgrade_pair_record(r) for r in records]
    labelled = [r for r in records if r.get("credit") is not None]
    undecided_n = sum(bool(r.get("undecided", pair_verdict_of(r) is None)) for r in records)
    ties = sum(pair_verdict_of(r) == "tie" for r in records)
    reasons: Counter[str] = Counter()
    for r in records:
        reasons.update(r["unscored_kinds"] if "unscored_kinds" in r else _legacy_kinds(r))
    lines = [f"pairs: {len(records)}   score ties: {ties}   undecided: {undecided_n}"
             + (" (counted wrong, as in rrd eval)" if undecided_n else "")]
    unscored = sum(r.get("unscored", 0) for r in records)
    lines.append(f"unscored verdicts: {unscored}"
                 + (" (" + ", ".join(f"{k} {v}" for k, v in reasons.most_common(4)) + ")" if reasons else ""))
    if labelled:
        k = sum(r["credit"] for r in labelled)
        lo, hi = wilson_interval(k, len(labelled))
        mode = labelled[-1].get("score_mode")
        lines.append(f"accuracy: {k / len(labelled):.3f} ({k:g}/{len(labelled)}), 95% CI [{lo:.3f}, {hi:.3f}]"
                     + (f" ({mode} scores)" if mode else ""))
        other = [r for r in labelled if "games_by_mode" in r]
        if other and mode:
            alt = "hard" if mode == "soft" else "soft"
            wins = sum(pair_verdict_of(r, alt) == r["label"] for r in other)
            alt_ties = sum(pair_verdict_of(r, alt) == "tie" for r in other)
            lines.append(f"  with {alt} scores: {wins}/{len(other)} right, {alt_ties} ties (a tie counts 0 here)")
    failed = sum(1 for r in records if r.get("failed"))
    if failed:
        lines.append(f"pairs with failed calls: {failed} (redone by the next run unless --retry none)")
    lines.append(f"this run: {accounting.summary()}")
    return "\n".join(lines)


def _legacy_kinds(record: dict[str, Any]) -> Counter[str]:
    """Unscored kinds of a record written before they were stored (`unscored_kinds`): read off the reasons."""
    from judges.types import CALL_FAILED, CALL_FAILED_PERMANENTLY

    reasons = (*(x for rs in record.get("unscored_reasons", []) for x in rs), record.get("tie_break_reason"))
    return Counter("failed, not retryable" if x.startswith(CALL_FAILED_PERMANENTLY) else
                   "call failed" if x.startswith(CALL_FAILED) else "unreadable" for x in reasons if x)
