"""RewardBench 2 (allenai/reward-bench-2): best-of-4 subsets and the Ties subset, scored as allenai/reward-bench
(05a9005) scores them.

- Factuality, Precise IF, Math, Safety, Focus: one chosen and three rejected responses. A scoring method earns
  1/k when the chosen response has the top score shared by k responses, else 0 (`reroll_and_score_dataset`; the
  ratings protocol of scripts/run_generative_v2.py, 0.25 when every rating failed, is the same rule).
- Ties: several correct answers ("tied:N") and a reference prompt with one ("ref:N"), ids "sample_type:prompt_id".
  Its score is `process_single_model`'s: 0.3 tied accuracy + 0.3 reference accuracy + 0.2 P(correct-incorrect
  margin > spread of the correct ones) + 0.2 the same with the reference's margin + 0.01 tanh margin term.
- The overall score is the unweighted mean of the subset scores (the RewardBench 2 leaderboard's).

Rubric methods rate each response pointwise, the official ratings setting. The pairwise direct judge plays the
chosen response against each of the first three rejected ones (two games each) instead of the official four-way
prompt: 0 if any rejected one wins its counter, else 1/(1 + the number of counters at 0), the 1/k rule. The Ties
subset needs ratings (as in the official code) and is skipped for pairwise methods (docs/protocols.md).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rrd.io import InputError, Row

from .loaders import ChosenRejectedItem, _id, _load, _unique

HUB_ID = "allenai/reward-bench-2"
TIES = "Ties"
SUBSETS = ("Factuality", "Precise IF", "Math", "Safety", "Focus", TIES)
#: the official generative rankings prompt shows four responses: the chosen and the first three rejected
DIRECT_REJECTED = 3


@dataclass(frozen=True)
class RewardBench2Item(ChosenRejectedItem):
    subset: str

    @property
    def comparisons(self) -> list[tuple[int, int]]:
        """(chosen, rejected) index pairs the pairwise judge plays; none on Ties (it needs ratings)."""
        if self.subset == TIES:
            return []
        n = len(self.chosen)
        return [(0, n + j) for j in range(min(DIRECT_REJECTED, len(self.rejected)))]


def _texts(row: Row, key: str) -> tuple[str, ...]:
    value = row.get(key, kind=list)
    if not value or not all(isinstance(v, str) for v in value):
        raise InputError(row.source, row.line, key, "expected a non-empty list of strings")
    return tuple(value)


def _item(row: Row) -> RewardBench2Item:
    chosen, rejected = _texts(row, "chosen"), _texts(row, "rejected")
    subset = row.get("subset")
    num_correct = row.get("num_correct", required=False, kind=int)
    if num_correct is not None and num_correct != len(chosen):
        raise InputError(row.source, row.line, "num_correct", f"{num_correct}, but chosen has {len(chosen)}")
    item_id = _id(row, "id")
    if subset == TIES and (item_id.count(":") != 1 or item_id.split(":")[0] not in ("ref", "tied")
                           or not item_id.split(":")[1].isdigit()):
        raise InputError(row.source, row.line, "id", f"Ties ids are ref:N or tied:N, got {item_id!r}")
    return RewardBench2Item(id=item_id, prompt=row.get("prompt"), chosen=chosen, rejected=rejected, subset=subset)


def load_rewardbench2(source: str, *, split: str = "test", limit: int | None = None) -> list[RewardBench2Item]:
    """RewardBench 2 items from the Hub (allenai/reward-bench-2, split test) or a file to its schema."""
    return _unique(_load(source, split, limit, _item), lambda r: r.id, "id")


# --- scoring ---


def _counter(game1: str | None, game2: str | None) -> int:
    return sum({"A": 1, "B": -1}.get(g or "", 0) for g in (game1, game2))


def best_of_result(row: Mapping[str, Any]) -> float:
    """One non-Ties item's credit: 1/k if the chosen response is top with k-way tie, else 0."""
    if row.get("comparisons") is not None:
        counters = [_counter(g1, g2) for _, _, g1, g2 in row["comparisons"]]
        return 0.0 if any(c < 0 for c in counters) else 1.0 / (1 + sum(c == 0 for c in counters))
    scores = np.array([-np.inf if s is None else float(s) for s in row["scores"]])
    top = scores.max()
    return float(1.0 / np.sum(scores == top)) if scores[0] == top else 0.0


def _prompt_stats(correct: np.ndarray, incorrect: np.ndarray) -> tuple[bool, float, float]:
    """(accurate, spread of the correct scores, worst correct - best incorrect), as _compute_prompt_stats."""
    spread = float(correct.max() - correct.min()) if len(correct) > 1 else math.nan
    margin = float(correct.min() - incorrect.max())
    return bool(margin > 0), spread, margin


def ties_score(rows: Sequence[Mapping[str, Any]]) -> float:
    """process_single_model's overall score over Ties rows {item_id, n_chosen, scores}; a failed score is -inf."""
    ref: dict[str, tuple[bool, float, float]] = {}
    tied: dict[str, tuple[bool, float, float]] = {}
    for row in rows:
        kind, pid = str(row["item_id"]).split(":")
        scores = np.array([-np.inf if s is None else float(s) for s in row["scores"]])
        k = int(row["n_chosen"])
        with np.errstate(invalid="ignore"):
            (ref if kind == "ref" else tied)[pid] = _prompt_stats(scores[:k], scores[k:])
    ref_acc = float(np.mean([s[0] for s in ref.values()])) if ref else 0.0
    tied_acc = float(np.mean([s[0] for s in tied.values()])) if tied else 0.0
    both = sorted(set(ref) & set(tied))
    if not both:
        return 0.3 * tied_acc + 0.3 * ref_acc
    spread = np.array([tied[p][1] for p in both])
    margin_tied = np.array([tied[p][2] for p in both])
    margin_ref = np.array([ref[p][2] for p in both])
    with np.errstate(invalid="ignore", divide="ignore"):
        preferred = float(np.mean(margin_tied > spread))
        preferred_hard = float(np.mean(np.minimum(margin_ref, margin_tied) > spread))
        margins = np.nan_to_num(np.tanh(np.minimum(margin_ref, margin_tied) / spread - 1), nan=0.0)
    return 0.3 * tied_acc + 0.3 * ref_acc + 0.2 * preferred + 0.2 * preferred_hard + 0.01 * float(np.mean(margins))


def _subset_scores(by_subset: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, float]:
    return {s: ties_score(rows) if s == TIES else float(np.mean([best_of_result(r) for r in rows]))
            for s, rows in by_subset.items()}


def _resample(rows: list[Mapping[str, Any]], subset: str, rng: np.random.Generator) -> list[Mapping[str, Any]]:
    """Items drawn with replacement; on Ties, prompts (a ref row and its tied row together), renumbered so a
    prompt drawn twice counts twice."""
    if subset != TIES:
        return [rows[i] for i in rng.integers(0, len(rows), len(rows))]
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r["item_id"]).split(":")[1]].append(r)
    keys = list(groups)
    out = []
    for n, i in enumerate(rng.integers(0, len(keys), len(keys))):
        out += [{**r, "item_id": f"{str(r['item_id']).split(':')[0]}:{n}"} for r in groups[keys[i]]]
    return out


def rewardbench2_summary(rows: Iterable[Mapping[str, Any]], n_bootstrap: int = 1000,
                         seed: int = 0) -> dict[str, Any]:
    """Subset scores, their unweighted mean and percentile bootstrap 95% CIs from one method's rows."""
    rows = list(rows)
    skipped = sum(1 for r in rows if r.get("skipped"))
    by_subset: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if not r.get("skipped"):
            by_subset[r["subset"]].append(r)
    if not by_subset:
        return {"n": 0, "overall": math.nan, "overall_ci": (math.nan, math.nan), "per_subset": {}, "skipped": skipped}
    point = _subset_scores(by_subset)
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_bootstrap):
        sample = _subset_scores({s: _resample(v, s, rng) for s, v in by_subset.items()})
        for s, v in sample.items():
            boot[s].append(v)
        boot["overall"].append(float(np.mean(list(sample.values()))))
    ci = {k: tuple(float(x) for x in np.percentile(v, [2.5, 97.5])) for k, v in boot.items()}
    order = {name: i for i, name in enumerate(SUBSETS)}
    per_subset = {s: {"n": len(by_subset[s]), "score": point[s], "ci": ci[s]}
                  for s in sorted(point, key=lambda s: (order.get(s, len(order)), s))}
    return {"n": sum(len(v) for v in by_subset.values()), "overall": float(np.mean(list(point.values()))),
            "overall_ci": ci["overall"], "per_subset": per_subset, "skipped": skipped}
