"""Benchmark metrics, exactly as the official protocols define them (see docs/protocols.md), with 95% CIs.

Pure functions over verdicts already collected: no model calls, so a report can be recomputed from a results file.
Accuracies get Wilson intervals (rrd.scoring.wilson_interval); means get percentile bootstrap intervals.
A failed or unparseable judge output is None everywhere, and each summary says how it was counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rrd.scoring import wilson_interval

VERDICTS = ("A", "B", "tie", None)
Interval = tuple[float, float]
NAN_CI: Interval = (math.nan, math.nan)


def _rate(k: float, n: int) -> float:
    return k / n if n else math.nan


def _accuracy(correct: float, n: int) -> dict[str, Any]:
    return {"n": n, "correct": correct, "accuracy": _rate(correct, n), "ci": wilson_interval(correct, n)}


def _check_verdict(v: Any, what: str) -> None:
    if v not in VERDICTS:
        raise ValueError(f"{what} must be 'A', 'B', 'tie' or None, got {v!r}")


def _percentile_ci(samples: np.ndarray) -> Interval:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return NAN_CI
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return (float(lo), float(hi))


# --- JudgeBench ------------------------------------------------------------------------------------------------------


def two_game_counter(label: str, game1: str | None, game2: str | None) -> int:
    """JudgeBench's per-pair counter: +1 per verdict matching the label, -1 per opposite verdict, 0 for a tie or a
    failure. `game2` must already be flipped back to the original order. The pair is correct iff the counter > 0."""
    if label not in ("A", "B"):
        raise ValueError(f"label must be 'A' or 'B', got {label!r}")
    total = 0
    for i, verdict in enumerate((game1, game2), start=1):
        _check_verdict(verdict, f"game{i}")
        if verdict == label:
            total += 1
        elif verdict in ("A", "B"):
            total -= 1
    return total


def judgebench_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """JudgeBench accuracy, overall and per source family, from rows {family, label, games}.

    `games` is [g1, g2] (two-game protocol, g2 flipped back) or [g1] (single game, for order-free judges);
    all rows must use the same protocol. Besides accuracy:
    - tie_rate: share of pairs with no final decision: counter == 0 in the two-game protocol (this includes the
      inconsistent pairs and pairs whose games both failed), a "tie" verdict in the single game;
    - opposite_verdict_rate (two-game only, else None; ours): share of pairs whose two games gave opposite
      decisive verdicts (A and B after the flip-back), i.e. pure position bias;
    - decision_mismatch_rate (two-game only, else None; JudgeBench's `n_inconsistent` in utils/metrics.py at
      e2c52c2, computed there and never reported): share of pairs whose two decisions differ in any way, decisive
      vs tie and a failed game vs an answer included (two failed games agree);
    - failure_rate: share of games (not pairs) whose verdict is None.
    """
    n_games_per_pair: int | None = None
    per_family: dict[str, list[float]] = defaultdict(list)
    n = correct = ties = opposite = mismatched = games = failures = 0
    for row in rows:
        label, verdicts = row["label"], list(row["games"])
        if len(verdicts) not in (1, 2):
            raise ValueError(f"games must hold 1 or 2 verdicts, got {len(verdicts)}")
        if n_games_per_pair is None:
            n_games_per_pair = len(verdicts)
        elif len(verdicts) != n_games_per_pair:
            raise ValueError("rows mix the single-game and the two-game protocol")
        if len(verdicts) == 2:
            counter = two_game_counter(label, verdicts[0], verdicts[1])
            ok, tie = counter > 0, counter == 0
            opposite += set(verdicts) == {"A", "B"}
            mismatched += verdicts[0] != verdicts[1]
        else:
            if label not in ("A", "B"):
                raise ValueError(f"label must be 'A' or 'B', got {label!r}")
            _check_verdict(verdicts[0], "game1")
            ok, tie = verdicts[0] == label, verdicts[0] == "tie"
        n += 1
        correct += ok
        ties += tie
        games += len(verdicts)
        failures += sum(v is None for v in verdicts)
        per_family[row["family"]].append(float(ok))
    return {
        **_accuracy(correct, n),
        "per_family": {f: _accuracy(sum(v), len(v)) for f, v in sorted(per_family.items())},
        "tie_rate": _rate(ties, n),
        "opposite_verdict_rate": _rate(opposite, n) if n_games_per_pair == 2 else None,
        "decision_mismatch_rate": _rate(mismatched, n) if n_games_per_pair == 2 else None,
        "failure_rate": _rate(failures, games),
        "protocol": "two-game" if n_games_per_pair == 2 else "single-game",
    }


# --- PPE human preference -------------------------------------------------------------------------------------------


def ppe_human_summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """PPE human-preference accuracy from rows {winner, verdict, categories[, language]}.

    Rows whose human vote is a tie are dropped (the official protocol). On the remaining rows a judge tie or a
    failed verdict (None) counts as wrong: a judge that abstains has not agreed with the human, and dropping those
    rows would reward abstaining on hard pairs. Reported per category flag and per language too.
    """
    n = correct = dropped = judge_ties = failures = 0
    per_category: dict[str, list[float]] = defaultdict(list)
    per_language: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        winner, verdict = row["winner"], row["verdict"]
        if winner not in ("A", "B", "tie"):
            raise ValueError(f"winner must be 'A', 'B' or 'tie', got {winner!r}")
        _check_verdict(verdict, "verdict")
        if winner == "tie":
            dropped += 1
            continue
        ok = float(verdict == winner)
        n += 1
        correct += ok
        judge_ties += verdict == "tie"
        failures += verdict is None
        for category in row.get("categories") or ():
            per_category[category].append(ok)
        if row.get("language") is not None:
            per_language[row["language"]].append(ok)
    return {
        **_accuracy(correct, n),
        "dropped_ties": dropped,
        "judge_tie_rate": _rate(judge_ties, n),
        "failure_rate": _rate(failures, n),
        "per_category": {c: _accuracy(sum(v), len(v)) for c, v in sorted(per_category.items())},
        "per_language": {lang: _accuracy(sum(v), len(v)) for lang, v in sorted(per_language.items())},
    }


# --- PPE correctness (best-of-K) ------------------------------------------------------------------------------------


def _prompt_arrays(rows: Iterable[Mapping[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per prompt: correctness (bool) and scores (float, NaN where the judge failed)."""
    out = []
    for i, row in enumerate(rows):
        correct, scores = list(row["correct"]), list(row["scores"])
        if len(correct) != len(scores):
            raise ValueError(f"row {i}: {len(correct)} correctness labels but {len(scores)} scores")
        if not correct:
            raise ValueError(f"row {i}: no responses")
        s = np.array([math.nan if x is None else float(x) for x in scores], dtype=float)
        if np.isinf(s).any():
            raise ValueError(f"row {i}: infinite score")
        out.append((np.array(correct, dtype=bool), s))
    return out


def _pairwise(correct: np.ndarray, scores: np.ndarray) -> tuple[float, int, int]:
    """(credit, scored pairs, skipped pairs) over all (correct, incorrect) pairs; a score tie earns 0.5."""
    pos, neg = scores[correct], scores[~correct]
    if pos.size == 0 or neg.size == 0:
        return 0.0, 0, 0
    p, q = pos[:, None], neg[None, :]
    valid = ~(np.isnan(p) | np.isnan(q))
    credit = float(((p > q) & valid).sum() + 0.5 * ((p == q) & valid).sum())
    return credit, int(valid.sum()), int((~valid).sum())


def _pooled_auc(prompts: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """sklearn's ROC-AUC over every scored response of every prompt; NaN when one class is missing."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([c for c, _ in prompts])
    s = np.concatenate([x for _, x in prompts])
    keep = ~np.isnan(s)
    y, s = y[keep], s[keep]
    if y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, s))


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sort order, start index of each run of equal scores in that order)."""
    order = np.argsort(scores, kind="stable")
    s = scores[order]
    return order, np.flatnonzero(np.r_[True, s[1:] != s[:-1]])


def _weighted_auc(y: np.ndarray, starts: np.ndarray, w: np.ndarray) -> float:
    """Mann-Whitney AUC of score-sorted labels `y` with per-response weights `w` (a tie counts 1/2, as sklearn).
    The bootstrap uses it with weights = how often each prompt was drawn, so the scores are sorted only once."""
    pos = np.add.reduceat(w * y, starts)
    neg = np.add.reduceat(w * ~y, starts)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))


def _prompt_auc(correct: np.ndarray, scores: np.ndarray) -> float:
    keep = ~np.isnan(scores)
    if not keep.any():
        return math.nan
    order, starts = _tie_groups(scores[keep])
    return _weighted_auc(correct[keep][order], starts, np.ones(int(keep.sum())))


def _best_of_k(correct: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Expected correctness of the top-scored response among the first k, ties broken uniformly at random.
    A failed score (NaN) ranks below every real score: the judge cannot choose what it could not grade."""
    c, s = correct[:k], np.where(np.isnan(scores[:k]), -np.inf, scores[:k])
    return float(c[s == s.max()].mean())


def _k_values(k_max: int) -> list[int]:
    ks = [1 << i for i in range(k_max.bit_length()) if (1 << i) <= k_max]
    return ks if ks[-1] == k_max else ks + [k_max]


def ppe_correctness_summary(
    rows: Iterable[Mapping[str, Any]], n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """PPE correctness metrics from rows {correct: [bool]*K, scores: [float|None]*K}, one row per prompt.

    - pairwise accuracy over every (correct, incorrect) response pair of the same prompt; a score tie earns 0.5;
      a pair with a failed (None) score is skipped and counted in `skipped_pairs`. Wilson CI over scored pairs.
    - ROC-AUC pooled over all scored responses, and the mean per-prompt AUC over prompts that have both classes;
      95% CIs by bootstrap over prompts.
    - best-of-K for K = 1, 2, 4, ..., K_max (K_max = the fewest responses any prompt has, so every prompt counts at
      every K): mean over prompts of the expected correctness of the top-scored response among the first K (ties
      broken uniformly at random, in expectation). `oracle` (any correct among the first K) and `random` (mean
      correctness of the first K) bracket it.
    """
    prompts = _prompt_arrays(rows)
    if not prompts:
        raise ValueError("no rows")
    pair_stats = [_pairwise(c, s) for c, s in prompts]
    credit = sum(p[0] for p in pair_stats)
    n_pairs = sum(p[1] for p in pair_stats)
    prompt_aucs = np.array([_prompt_auc(c, s) for c, s in prompts])
    has_auc = ~np.isnan(prompt_aucs)

    # Bootstrap over prompts: pooled AUC via per-response weights (draw counts), so one sort serves all resamples.
    flat_y = np.concatenate([c for c, _ in prompts])
    flat_s = np.concatenate([x for _, x in prompts])
    owner = np.repeat(np.arange(len(prompts)), [len(c) for c, _ in prompts])
    keep = ~np.isnan(flat_s)
    order, starts = _tie_groups(flat_s[keep])
    sorted_y, sorted_owner = flat_y[keep][order], owner[keep][order]
    rng = np.random.default_rng(seed)
    boot_pooled, boot_mean = np.full(n_bootstrap, math.nan), np.full(n_bootstrap, math.nan)
    for b in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, len(prompts), len(prompts)), minlength=len(prompts))
        if starts.size:
            boot_pooled[b] = _weighted_auc(sorted_y, starts, counts[sorted_owner].astype(float))
        drawn = has_auc & (counts > 0)
        if drawn.any():
            boot_mean[b] = np.average(prompt_aucs[drawn], weights=counts[drawn])

    k_max = min(len(c) for c, _ in prompts)
    curve = [
        {
            "k": k,
            "accuracy": float(np.mean([_best_of_k(c, s, k) for c, s in prompts])),
            "oracle": float(np.mean([c[:k].any() for c, _ in prompts])),
            "random": float(np.mean([c[:k].mean() for c, _ in prompts])),
        }
        for k in _k_values(k_max)
    ]
    return {
        "n_prompts": len(prompts),
        "n_responses": int(sum(len(c) for c, _ in prompts)),
        "n_unscored_responses": int(sum(np.isnan(s).sum() for _, s in prompts)),
        "pairwise_accuracy": _rate(credit, n_pairs),
        "pairwise_ci": wilson_interval(credit, n_pairs),
        "n_pairs": n_pairs,
        "skipped_pairs": sum(p[2] for p in pair_stats),
        "auc": _pooled_auc(prompts),
        "auc_ci": _percentile_ci(boot_pooled),
        "mean_prompt_auc": float(prompt_aucs[has_auc].mean()) if has_auc.any() else math.nan,
        "mean_prompt_auc_ci": _percentile_ci(boot_mean),
        "n_auc_prompts": int(has_auc.sum()),
        "best_of_k": curve,
    }
