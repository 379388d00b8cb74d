"""Benchmark metrics, exactly as the official protocols define them (see docs/protocols.md), with 95% CIs.

Pure functions over verdicts already collected: no model calls, so a report can be recomputed from a results file.
Accuracies get Wilson intervals (rrd.scoring.wilson_interval); means get percentile bootstrap intervals.
A failed or unparseable judge output is None everywhere, and each summary says how it was counted.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
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
