"""Policy benchmark metrics (HealthBench, BiGGen Bench), exactly as the official protocols define them (see
docs/protocols.md), with bootstrap intervals. Pure functions over grades already collected."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .metrics import NAN_CI, _percentile_ci

# --- HealthBench ------------------------------------------------------------------------------------------------------


def _points(item: Any) -> float:
    return float(item["points"] if isinstance(item, Mapping) else item.points)


def _tags(item: Any) -> Sequence[str]:
    return (item.get("tags") or ()) if isinstance(item, Mapping) else item.tags


def healthbench_example_score(rubrics: Sequence[Any], met: Sequence[bool | None]) -> float | None:
    """simple-evals' calculate_score: points of met items (a met negative item is a penalty) / positive points.

    Our extension: an item whose verdict is None (the grader failed) is dropped from numerator and denominator,
    rather than read as "not met" (which would reward a failed grade on a negative item). None when no
    positive-points item remains scored: the score is then undefined. Rubric items may be HealthRubric objects
    or mappings with "points".
    """
    if len(rubrics) != len(met):
        raise ValueError(f"{len(rubrics)} rubric items but {len(met)} verdicts")
    possible = achieved = 0.0
    for item, verdict in zip(rubrics, met):
        if verdict is None:
            continue
        if not isinstance(verdict, (bool, np.bool_)):
            raise ValueError(f"verdict must be True, False or None, got {verdict!r}")
        points = _points(item)
        if points > 0:
            possible += points
        if verdict:
            achieved += points
    return achieved / possible if possible > 0 else None


def _clipped_stats(values: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> dict[str, Any]:
    """simple-evals' _compute_clipped_stats: the mean clipped to [0, 1] (the mean, not each example), and the std
    of the clipped means of `n_bootstrap` resamples; we add their 2.5/97.5 percentiles as a 95% CI."""
    boot = np.array([np.clip(values[rng.integers(0, values.size, values.size)].mean(), 0, 1)
                     for _ in range(n_bootstrap)])
    return {"score": float(np.clip(values.mean(), 0, 1)), "std": float(np.std(boot)) if n_bootstrap else math.nan,
            "ci": _percentile_ci(boot), "n": int(values.size)}


def healthbench_summary(
    examples: Iterable[tuple[Sequence[Any], Sequence[bool | None], Sequence[str]]],
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """HealthBench overall score and tag sub-scores from examples (rubrics, met, example_tags), as simple-evals.

    Per example: its overall score counts toward each of its example tags (e.g. theme:emergency_referrals); for each
    rubric tag (e.g. axis:accuracy) the score is recomputed on the items carrying that tag, skipped when they have no
    positive points. Each metric is the clipped mean over the examples that have it, with bootstrap std. Examples
    whose score is undefined (no scored positive item) are skipped and counted in `n_skipped`.
    """
    values: dict[str, list[float]] = defaultdict(list)
    n_examples = skipped = 0
    for rubrics, met, example_tags in examples:
        n_examples += 1
        score = healthbench_example_score(rubrics, met)
        if score is None:
            skipped += 1
            continue
        metrics = {"overall_score": score}
        metrics.update({tag: score for tag in example_tags})
        by_tag: dict[str, list[int]] = defaultdict(list)
        for i, item in enumerate(rubrics):
            for tag in _tags(item):
                by_tag[tag].append(i)
        for tag, idx in by_tag.items():
            tag_score = healthbench_example_score([rubrics[i] for i in idx], [met[i] for i in idx])
            if tag_score is not None:
                metrics[tag] = tag_score  # as simple-evals: a rubric tag overrides a same-named example tag
        for name, value in metrics.items():
            values[name].append(value)
    rng = np.random.default_rng(seed)
    overall = values.pop("overall_score", [])
    empty = {"score": math.nan, "std": math.nan, "ci": NAN_CI, "n": 0}
    return {
        "overall": _clipped_stats(np.array(overall), n_bootstrap, rng) if overall else empty,
        "tags": {tag: _clipped_stats(np.array(v), n_bootstrap, rng) for tag, v in sorted(values.items())},
        "n_examples": n_examples,
        "n_skipped": skipped,
    }


# --- BiGGen Bench -----------------------------------------------------------------------------------------------------

# prometheus-eval's absolute-mode reader (libs/prometheus-eval/prometheus_eval/parser.py at dcfb442, used by
# BiGGen-Bench/run_response_eval.py), re-expressed: one of its markers, the score, optionally "/5", "out of 5" or
# a closing bracket, and nothing after it but whitespace. Digits are Unicode digits, as Python's \d ("３" is 3).
_PROMETHEUS_SCORE = re.compile(
    r"(?:\[RESULT\]|\[SCORE\]|Score:?|Result:?|\[Result\]:?|score\s+of)"  # the markers it accepts
    r"\s*[(\[\s]*(\d+)"  # opening brackets or spaces, then the number
    r"(?:[)\]\s]|/\s*5|\s*out\s*of\s*5)?\s*$",  # an optional closing, then the end of the answer
    re.IGNORECASE,
)


def parse_prometheus(text: str | None) -> int | None:
    """The 1-5 score of a Prometheus absolute grade, read exactly as prometheus-eval's parse_output(mode=
    "absolute") reads it: the score must end the answer ("... [RESULT] 4", "Score: 4", "[RESULT] 04",
    "[RESULT] 5 out of 5"). Anything else is None (unscored, and re-asked by the policy evaluator): a score
    followed by more text, out of range (0, 6, 45), fractional (2.5) or ambiguous ("3-4", "3 or 4", "4,5")."""
    if not isinstance(text, str):
        return None
    m = _PROMETHEUS_SCORE.search(text)
    if m is None:
        return None
    score = int(m.group(1))
    return score if 1 <= score <= 5 else None


def biggen_summary(rows: Iterable[Mapping[str, Any]], n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """BiGGen scores from rows {capability, score: 1-5 or None (failed parse)[, skipped: reason]}.

    Per capability: mean over parsed scores, n, failures and a bootstrap 95% CI. Overall is the official macro
    average (unweighted mean of the capability means); its CI resamples within each capability, so every
    bootstrap replicate keeps the capability mix. Failures are excluded from the means and reported.
    The micro mean (over all scored instances) is given for reference only. Rows the protocol does not grade
    (`skipped`, e.g. llm_judge items for a Prometheus grader) count in `skipped` by reason and nowhere else, as the
    official make_report.py never sees them.
    """
    scores: dict[str, list[int]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    skipped: Counter[str] = Counter()
    for row in rows:
        if row.get("skipped"):
            skipped[row["skipped"]] += 1
            continue
        cap, score = row["capability"], row["score"]
        if score is None:
            failures[cap] += 1
            scores.setdefault(cap, [])
            continue
        if isinstance(score, bool) or not isinstance(score, (int, np.integer)) or not 1 <= score <= 5:
            raise ValueError(f"score must be an integer 1-5 or None, got {score!r}")
        scores[cap].append(int(score))
    rng = np.random.default_rng(seed)
    arrays = {cap: np.array(v, dtype=float) for cap, v in sorted(scores.items())}
    scored = {cap: a for cap, a in arrays.items() if a.size}
    boot = {cap: np.array([a[rng.integers(0, a.size, a.size)].mean() for _ in range(n_bootstrap)])
            for cap, a in scored.items()}
    per_capability = {
        cap: {"mean": float(a.mean()) if a.size else math.nan, "n": int(a.size), "failures": failures[cap],
              "ci": _percentile_ci(boot[cap]) if a.size else NAN_CI}
        for cap, a in arrays.items()
    }
    all_scores = np.concatenate(list(scored.values())) if scored else np.array([])
    return {
        "overall": float(np.mean([a.mean() for a in scored.values()])) if scored else math.nan,
        "overall_ci": _percentile_ci(np.mean(list(boot.values()), axis=0)) if scored and n_bootstrap else NAN_CI,
        "micro_mean": float(all_scores.mean()) if all_scores.size else math.nan,
        "n": int(all_scores.size),
        "failures": sum(failures.values()),
        "skipped": dict(skipped),
        "per_capability": per_capability,
    }
