"""The end-of-run summaries `rrd refine` and `rrd judge` print, read from the records written (so a resumed
run's summary covers every item, and a redone item counts once)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .scoring import wilson_interval


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
    lines.append(f"proposer calls on decompositions: {total['decompose_calls']}   coarse rubrics left undecomposed "
                 f"once the budget was spent: {total['over_budget']}   overlaps across initial lists (not counted "
                 f"in T): {total['initial_overlaps']}   overlap/conflict claims not confirmed in reverse order: "
                 f"{total['unconfirmed_checks']}")
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
    """Counts over distinct pairs (the last record of each): a redone pair is counted once."""
    labelled = [r for r in records if r.get("credit") is not None]
    undecided_n = sum(bool(r.get("undecided", r.get("verdict") is None)) for r in records)
    ties = sum(r.get("verdict") == "tie" for r in records)
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
        other = [r for r in labelled if "verdict_by_mode" in r]
        if other and mode:
            alt = "hard" if mode == "soft" else "soft"
            wins = sum(r["verdict_by_mode"][alt] == r["label"] for r in other)
            alt_ties = sum(r["verdict_by_mode"][alt] == "tie" for r in other)
            lines.append(f"  with {alt} scores: {wins}/{len(other)} right, {alt_ties} ties (a tie counts 0 here)")
    failed = sum(1 for r in records if r.get("failed"))
    if failed:
        lines.append(f"pairs with failed calls: {failed} (redone by the next run unless --retry none)")
    lines.append(f"this run: {accounting.summary()}")
    return "\n".join(lines)


def _legacy_kinds(record: dict[str, Any]) -> Counter[str]:
    """Unscored kinds of a record written before they were stored (`unscored_kinds`): read off the reasons."""
    from judges.types import CALL_FAILED, CALL_FAILED_PERMANENTLY

    reasons = (*record.get("reasons_A", []), *record.get("reasons_B", []), record.get("tie_break_reason"))
    return Counter("failed, not retryable" if x.startswith(CALL_FAILED_PERMANENTLY) else
                   "call failed" if x.startswith(CALL_FAILED) else "unreadable" for x in reasons if x)
