"""What one reward call logs through TRL: per-completion columns (log_extra) and step metrics (log_metric) --
pass rates, unscored and no-reward fractions, online-WU fallbacks, and the judge calls, hits, failures, dollars
and latency the step cost."""

from __future__ import annotations

from typing import Any, Sequence

from .config import LogExtra, LogMetric, RubricRewardConfig, StepGrading

ACCOUNTING_METRICS = {
    "calls": "rubric/judge_calls",
    "cache_hits": "rubric/judge_cache_hits",
    "failures": "rubric/judge_failures",
    "cost_usd": "rubric/judge_cost_usd",
    "latency_s": "rubric/judge_latency_s",
}


def accounting_snapshot(judges: Sequence[Any]) -> dict[str, float]:
    """The ACCOUNTING_METRICS totals over the judges' accountings (a shared accounting counted once)."""
    total: dict[str, float] = {k: 0.0 for k in ACCOUNTING_METRICS}
    seen = set()
    for j in judges:
        if j is None or j.accounting is None or id(j.accounting) in seen:
            continue
        seen.add(id(j.accounting))
        snap = j.accounting.snapshot()
        for k in total:
            total[k] += float(snap.get(k) or 0.0)
    return total


def log_step(g: StepGrading, config: RubricRewardConfig, before: dict[str, float], after: dict[str, float],
             log_extra: LogExtra | None, log_metric: LogMetric | None) -> None:
    """Log one grading; `before`/`after` are accounting snapshots around it."""
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
    if config.weights == "online_wu" and (g.wu_used or g.wu_fallback):
        log_metric("rubric/wu_fallback_frac", g.wu_fallback / (g.wu_used + g.wu_fallback))
    for k in range(config.log_criteria):
        col = [row[k] for row in g.values if k < len(row) and row[k] is not None]
        if col:
            log_metric(f"rubric/pass_rate_c{k}", float(sum(col) / len(col)))
