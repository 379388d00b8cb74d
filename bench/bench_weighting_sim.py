"""Weighting under redundancy: uniform vs whitened-uniform (WU) vs Fisher on simulated rubric verdicts.

The question (docs/rrd-method.md, "Why: the bound"): when some rubrics overlap, does whitening stop them
from outvoting the rest? We simulate RESPONSES, not votes, because WU is fitted the way the method fits it:
from unlabelled response-level verdicts (8 sampled responses per prompt, Ledoit-Wolf).

Generative model (fixed before looking at any result; see the report for why it was not tuned):
  response: quality q ~ N(0,1), a nuisance factor f ~ N(0,1) unrelated to quality (style, length...).
  clean rubric k:     g_k = 1[0.8 q + e_k > t_k]                      (8 of them)
  overlapping rubric: g_j = 1[0.5 q + 1.0 f + 0.5 e_j > t_j]           (2 of them: weaker, share f)
  redundancy r:       each overlapping rubric gets r near-duplicates 1[0.5 q + 1.0 f + 0.5 e_j + 0.3 e' > t_j]
  pair: two independent responses, y = sign(q1 - q2); a tie in score counts 0.5.
Schemes: uniform; WU-8 (per-prompt weights from 8 responses, averaged over repetitions); WU-2000 (the same
estimator given 2000 responses: what WU tends to); Fisher (fitted on 2000 labelled pairs). For each, the
paper's bound as an accuracy floor, 1 - exp(-1/2 (w^T mu)^2 / (w^T Sigma w)), with mu and Sigma measured on
the evaluation pairs.

    python bench/bench_weighting_sim.py [--out docs/results/weighting_sim.png] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rrd.weights import edges, error_bound, fisher_weights, uniform_weights, whitened_uniform_weights  # noqa: E402

REDUNDANCY_LEVELS = (0, 2, 4, 8, 16)
N_CLEAN, N_OVERLAPPING = 8, 2
SAMPLES_PER_PROMPT = 8
N_PROMPTS = 300  # repetitions of the 8-sample WU fit
N_EVAL_PAIRS = 20_000
N_FIT = 2_000  # responses for WU-2000, labelled pairs for Fisher


@dataclass(frozen=True)
class RubricModel:
    """Loadings of every rubric's latent: quality, the shared nuisance, a parent noise, its own noise."""

    quality: np.ndarray
    nuisance: np.ndarray
    parent: np.ndarray  # index of the idiosyncratic noise a rubric shares with its parent (its own for originals)
    own_noise: np.ndarray
    threshold: np.ndarray
    overlapping: np.ndarray  # True for the overlapping rubrics and their near-duplicates

    @property
    def m(self) -> int:
        return self.quality.size


def base_thresholds(seed: int) -> np.ndarray:
    """The original rubrics' thresholds, shared by every redundancy level (pass rates roughly 25-60%)."""
    return np.random.default_rng(seed).uniform(-0.3, 0.8, size=N_CLEAN + N_OVERLAPPING)


def rubric_model(redundancy: int, base_thresholds: np.ndarray) -> RubricModel:
    """8 clean rubrics, 2 overlapping ones, and `redundancy` near-duplicates of each overlapping one."""
    n_base = N_CLEAN + N_OVERLAPPING
    quality = [0.8] * N_CLEAN + [0.5] * N_OVERLAPPING
    nuisance = [0.0] * N_CLEAN + [1.0] * N_OVERLAPPING
    parent = list(range(n_base))
    own = [0.0] * n_base
    threshold = list(base_thresholds)
    for j in range(N_CLEAN, n_base):
        for _ in range(redundancy):
            quality.append(0.5)
            nuisance.append(1.0)
            parent.append(j)
            own.append(0.3)
            threshold.append(base_thresholds[j])
    overlapping = np.array([p >= N_CLEAN for p in parent])
    return RubricModel(
        quality=np.array(quality),
        nuisance=np.array(nuisance),
        parent=np.array(parent),
        own_noise=np.array(own),
        threshold=np.array(threshold),
        overlapping=overlapping,
    )


def parent_noise_scale(model: RubricModel) -> np.ndarray:
    """Clean rubrics carry unit idiosyncratic noise, overlapping ones 0.5 (they are mostly nuisance)."""
    return np.where(model.overlapping, 0.5, 1.0)


def sample_responses(model: RubricModel, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(q, X): latent quality and the binary verdict matrix (responses x rubrics)."""
    q = rng.normal(size=n)
    f = rng.normal(size=n)
    e_parent = rng.normal(size=(n, N_CLEAN + N_OVERLAPPING))[:, model.parent]
    e_own = rng.normal(size=(n, model.m))
    latent = (
        q[:, None] * model.quality
        + f[:, None] * model.nuisance
        + e_parent * parent_noise_scale(model)
        + e_own * model.own_noise
    )
    return q, (latent > model.threshold).astype(float)


def sample_pairs(model: RubricModel, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(D, y): per-rubric votes g_k(R1) - g_k(R2) and the true preference."""
    q, X = sample_responses(model, 2 * n_pairs, rng)
    y = np.where(q[:n_pairs] > q[n_pairs:], 1.0, -1.0)
    return X[:n_pairs] - X[n_pairs:], y


def pairwise_accuracy(D: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Share of pairs the higher weighted score gets right; a tie counts 0.5 (TieRule.HALF)."""
    margin = D @ w
    return float(np.mean(np.where(np.abs(margin) < 1e-12, 0.5, (np.sign(margin) == y).astype(float))))


def bound_accuracy(w: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> float:
    """The paper's guarantee read as an accuracy floor: 1 - exp(-1/2 (w^T mu)^2 / (w^T Sigma w))."""
    return 1.0 - error_bound(w, mu, Sigma)


@dataclass(frozen=True)
class SchemeResult:
    accuracy: float
    bound: float
    overlap_share: float  # total weight on the overlapping rubrics and their duplicates


def evaluate(weights: list[np.ndarray], D: np.ndarray, y: np.ndarray, model: RubricModel) -> SchemeResult:
    """Average accuracy, bound and overlap share over one or more weight vectors (WU-8: one per prompt)."""
    mu = edges(D, y)
    Sigma = np.cov(D * y[:, None], rowvar=False, bias=True)
    return SchemeResult(
        accuracy=float(np.mean([pairwise_accuracy(D, y, w) for w in weights])),
        bound=float(np.mean([bound_accuracy(w, mu, Sigma) for w in weights])),
        overlap_share=float(np.mean([w[model.overlapping].sum() for w in weights])),
    )


def run_level(redundancy: int, seed: int) -> tuple[int, dict[str, SchemeResult], float]:
    """All four schemes at one redundancy level; returns (m, results, WU-8 fallback rate)."""
    rng = np.random.default_rng([seed, redundancy])
    model = rubric_model(redundancy, base_thresholds(seed))
    D_eval, y_eval = sample_pairs(model, N_EVAL_PAIRS, rng)

    wu8 = [whitened_uniform_weights(sample_responses(model, SAMPLES_PER_PROMPT, rng)[1]) for _ in range(N_PROMPTS)]
    wu_many = whitened_uniform_weights(sample_responses(model, N_FIT, rng)[1])
    fisher = fisher_weights(*sample_pairs(model, N_FIT, rng))
    schemes = {
        "uniform": [uniform_weights(model.m)],
        "WU-8": [r.weights for r in wu8],
        "WU-2000": [wu_many.weights],
        "Fisher": [fisher.weights],
    }
    results = {name: evaluate(ws, D_eval, y_eval, model) for name, ws in schemes.items()}
    return model.m, results, float(np.mean([r.fell_back for r in wu8]))


def print_tables(rows: list[tuple[int, int, dict[str, SchemeResult], float]]) -> None:
    names = list(rows[0][2])
    for title, field, fmt in (
        ("pairwise accuracy (ties = 0.5)", "accuracy", "{:.3f}"),
        ("bound as accuracy floor, 1 - exp(-1/2 (w'mu)^2 / w'Sigma w)", "bound", "{:.3f}"),
        ("weight share on the overlapping rubrics + duplicates", "overlap_share", "{:.2f}"),
    ):
        print(f"\n{title}")
        print(f"{'r':>3} {'m':>3} " + " ".join(f"{n:>8}" for n in names))
        for r, m, results, _ in rows:
            print(f"{r:>3} {m:>3} " + " ".join(f"{fmt.format(getattr(results[n], field)):>8}" for n in names))
    print("\nWU-8 fell back to uniform on " + ", ".join(f"r={r}: {rate:.0%}" for r, _, _, rate in rows))


def plot(rows: list[tuple[int, int, dict[str, SchemeResult], float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    levels = [r for r, _, _, _ in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in rows[0][2]:
        line = ax.plot(levels, [res[name].accuracy for _, _, res, _ in rows], marker="o", label=name)[0]
        ax.plot(levels, [res[name].bound for _, _, res, _ in rows], ls=":", color=line.get_color())
    ax.set_xlabel("near-duplicates per overlapping rubric (r)")
    ax.set_ylabel("pairwise accuracy (solid); bound floor (dotted)")
    ax.set_title("Rubric weighting under growing redundancy (simulation)")
    ax.set_xticks(levels)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results/weighting_sim.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [(r, *run_level(r, args.seed)) for r in REDUNDANCY_LEVELS]
    print_tables(rows)
    plot(rows, args.out)
    print(f"\nplot: {args.out}   ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
