"""Scoring a response and comparing a pair from per-rubric verdicts (docs/rrd-method.md, "Scoring").

The judge grades each response on its own, one verdict per rubric, so a pair's order cannot matter.
A verdict is True/False, a P(yes) in [0, 1], or None when the judge's answer could not be parsed:
an unscored verdict is dropped and the weights renormalised over the rest; it is never counted as a NO.

Plain functions with no dependency on other rrd modules; a RubricSet wires them to its weights.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Literal, Sequence

import numpy as np

Verdict = bool | float | None
PairVerdict = Literal["A", "B", "tie"]

# Scores are ratios of float sums: two mathematically equal scores can differ in the last bits, and a
# tie_margin of 0 must still call them a tie.
_FLOAT_TOLERANCE = 1e-12


class TieRule(str, Enum):
    """What a tied pair is worth in accuracy accounting (configurable, as the method page asks).

    HALF: a tie counts 0.5, the expected value of a coin flip.
    PAIRWISE: the caller breaks the tie with a direct pairwise judge call and passes that verdict.
    TIE: reported as a tie and counted wrong, the strict reading.
    """

    HALF = "half"
    PAIRWISE = "pairwise"
    TIE = "tie"


def score_response(weights: Sequence[float], verdicts: Sequence[Verdict]) -> float | None:
    """s = sum_k w_k g_k / sum over scored k of w_k, in [0, 1].

    Renormalising over scored rubrics keeps a parse failure from reading as a failed rubric. None when
    nothing was scored or the scored rubrics carry no weight: there is then no score to report.
    """
    w, g, scored = _as_arrays(weights, verdicts)
    return _weighted_mean(w, g, scored)


def compare(
    weights: Sequence[float],
    verdicts_a: Sequence[Verdict],
    verdicts_b: Sequence[Verdict],
    tie_margin: float = 0.0,
) -> PairVerdict | None:
    """Pairwise verdict from two pointwise gradings: the higher score wins, |s_A - s_B| <= tie_margin is a tie.

    Only rubrics scored for BOTH responses are used, so the two scores are averages over the same rubrics
    and a parse failure on one side cannot tilt the comparison. None when no rubric with positive weight
    was scored for both.
    """
    if tie_margin < 0:
        raise ValueError(f"tie_margin must be >= 0, got {tie_margin}")
    w, g_a, scored_a = _as_arrays(weights, verdicts_a)
    _, g_b, scored_b = _as_arrays(weights, verdicts_b)
    common = scored_a & scored_b
    s_a = _weighted_mean(w, g_a, common)
    s_b = _weighted_mean(w, g_b, common)
    if s_a is None or s_b is None:
        return None
    diff = s_a - s_b
    if abs(diff) <= tie_margin + _FLOAT_TOLERANCE:
        return "tie"
    return "A" if diff > 0 else "B"


def undecided(verdict: PairVerdict | None, rule: TieRule | str = TieRule.HALF,
              tie_break: PairVerdict | None = None) -> bool:
    """A pair the judge could not decide: no rubric scored for both responses (verdict None) and, under
    PAIRWISE, no readable tie-break either; or, under PAIRWISE, a tie whose tie-break could not be read."""
    if TieRule(rule) is TieRule.PAIRWISE:
        return verdict in ("tie", None) and tie_break is None
    return verdict is None


def pair_credit(
    verdict: PairVerdict | None,
    label: Literal["A", "B"],
    rule: TieRule | str = TieRule.HALF,
    tie_break: PairVerdict | None = None,
) -> float:
    """Accuracy credit for one pair: 1 correct, 0 wrong, and a tie according to the rule.

    An undecided pair (see `undecided`) earns 0, as a failed verdict does in `rrd eval`'s official protocols
    (JudgeBench's counter, PPE): a judge that could not answer has not agreed with the label, and crediting it
    0.5 would reward failing on hard pairs. Callers report undecided pairs separately. Under PAIRWISE the caller
    passes tie_break, the direct pairwise judge's verdict for a tied pair; a tie_break that is itself a tie
    earns 0.5, as a coin flip would.
    """
    rule = TieRule(rule)
    if label not in ("A", "B"):
        raise ValueError(f"label must be 'A' or 'B', got {label!r}")
    if verdict not in ("A", "B", "tie", None):
        raise ValueError(f"verdict must be 'A', 'B', 'tie' or None, got {verdict!r}")
    if tie_break not in ("A", "B", "tie", None):
        raise ValueError(f"tie_break must be 'A', 'B', 'tie' or None, got {tie_break!r}")
    if undecided(verdict, rule, tie_break):
        return 0.0
    if verdict in ("A", "B"):
        return 1.0 if verdict == label else 0.0
    if rule is TieRule.HALF:  # a tie (None is undecided under HALF and TIE)
        return 0.5
    if rule is TieRule.TIE:
        return 0.0
    if tie_break == "tie":
        return 0.5
    return 1.0 if tie_break == label else 0.0  # PAIRWISE: the direct judge decides a tie or an unscored pair


def _as_arrays(weights: Sequence[float], verdicts: Sequence[Verdict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, g, scored): weights, verdicts as numbers (0 where unscored) and the scored mask."""
    w = np.asarray(weights, dtype=float).ravel()
    if len(verdicts) != w.size:
        raise ValueError(f"{len(verdicts)} verdicts for {w.size} weights")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    scored = np.array([v is not None for v in verdicts], dtype=bool)
    g = np.array([0.0 if v is None else _as_probability(v) for v in verdicts], dtype=float)
    return w, g, scored


def _as_probability(v: bool | float) -> float:
    """A bool is 1/0; a float is P(yes). NaN or out-of-range values are upstream bugs, not 'unscored'."""
    g = float(v)
    if not 0.0 <= g <= 1.0:  # also rejects NaN
        raise ValueError(f"a verdict must be a bool, a P(yes) in [0, 1], or None; got {v!r}")
    return g


def _weighted_mean(w: np.ndarray, g: np.ndarray, mask: np.ndarray) -> float | None:
    total = float(w[mask].sum())
    if total <= 0:
        return None
    return float(w[mask] @ g[mask]) / total


def wilson_interval(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (k may be fractional, e.g. half-credited ties).

    Wilson rather than the normal approximation because benchmark slices are small (a 42-pair source family)
    and accuracies sit near 0 or 1, where the normal interval leaves [0, 1] or collapses to a point.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 a bound is 0 or 1 exactly; rounding left -1e-17, which reports printed as "-0.000"
    return (max(0.0, centre - half), min(1.0, centre + half))
