"""Rubric weights: uniform, LLM-assigned, whitened-uniform (WU) and the labelled Fisher direction.

Notation follows docs/rrd-method.md. A score is s(R) = sum_k w_k g_k(R). For a pair with true preference
y in {+1,-1}, rubric k votes Y_k = g_k(R1) - g_k(R2); its edge is mu_k = E[Y_k y] and its noise
Z_k = Y_k y - mu_k has covariance Sigma. The judge's error is bounded by

    P(wrong) <= exp(-1/2 (w^T mu)^2 / (w^T Sigma w)),

so weights should not over-count rubrics whose noise is shared. Without labels (the method's default) we
whiten the response-level verdicts, w = Sigma^{-1/2} 1; with labels the bound's optimum is w = Sigma^{-1} mu.

Every covariance here comes from a handful of samples (8 responses, about 20 rubrics), so it is shrunk and
ridged before it is inverted, and every degenerate case falls back to uniform weights with the reason recorded.

What duplicated rubrics get (measured in tests/rrd/test_weights.py): w = Sigma^{-1/2} 1 counts k exact copies
of a rubric as sqrt(k) copies (exactly so when the copies are uncorrelated with the other rubrics): less than
uniform's k, more than one. Only the Fisher form Sigma^{-1} (.) counts them as one copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Shrinkage = Literal["ledoit_wolf", "oas", "none"]
_SHRINKAGES: tuple[str, ...] = ("ledoit_wolf", "oas", "none")


@dataclass(frozen=True)
class WhiteningConfig:
    """How a covariance estimated from few samples is made safe to invert.

    shrinkage: scikit-learn estimator for Sigma. With 8 samples and 20 rubrics the empirical covariance is
        rank-deficient, so the default is Ledoit-Wolf; "oas" is its small-sample sibling; "none" is the
        empirical (maximum-likelihood) covariance and is only sensible with many samples.
    ridge: added to Sigma's diagonal as a FRACTION OF THE MEAN RUBRIC VARIANCE (not an absolute amount), so it
        means the same for hard 0/1 verdicts and for soft P(yes) verdicts that vary much less.
        A rubric that is constant across the samples (every response passes, or none does) has no
        covariance with anything: it is an eigenvector of Sigma whose eigenvalue is its shrunk variance plus
        the ridge, and its un-normalised weight is 1/sqrt(that). Under Ledoit-Wolf/OAS the shrunk variance is
        (shrinkage intensity) x (mean variance), and the intensity can be near 0 when there are few rubrics,
        so under Ledoit-Wolf/OAS its variance is floored at the mean variance of the varying rubrics: it gets
        the weight of an average independent rubric. Under shrinkage="none" only the ridge bounds it: with
        enough rows for a full-rank Sigma it gets about 1/sqrt(ridge) times an average rubric's weight (about
        30x at 1e-3), so raise the ridge if you use "none" with constant rubrics. (With fewer rows than
        rubrics every rubric picks up such ridge-bounded null directions, and the constant one no longer
        stands out.)
    min_samples: fewer rows than this and no covariance is estimated (uniform fallback).
    eps: eigenvalues below eps x (largest eigenvalue) are floored there before inverting; this only matters
        when ridge is 0 and Sigma is singular.
    """

    shrinkage: Shrinkage = "ledoit_wolf"
    ridge: float = 1e-3
    min_samples: int = 3
    eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.shrinkage not in _SHRINKAGES:
            raise ValueError(f"shrinkage must be one of {_SHRINKAGES}, got {self.shrinkage!r}")
        if not (np.isfinite(self.ridge) and self.ridge >= 0):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge!r}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be >= 2 (a covariance needs two rows), got {self.min_samples}")
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}")


@dataclass(frozen=True)
class WeightResult:
    """Weights plus the scheme that actually produced them, so a fallback is never silent.

    scheme is what the weights ARE ("uniform" after a fallback), fallback_reason says why the requested
    scheme was not used (None when it was).
    """

    weights: np.ndarray
    scheme: str
    fallback_reason: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None


def uniform_weights(m: int) -> np.ndarray:
    """Every rubric counts the same: the baseline, and the fallback whenever a covariance can't be trusted."""
    if m < 1:
        raise ValueError(f"need at least one rubric, got m={m}")
    return np.full(m, 1.0 / m)


def llm_weights(importances: Sequence[float]) -> np.ndarray:
    """Normalise LLM-assigned importance scores to sum 1.

    A model's importance list is trusted only as a whole: any negative or non-finite entry, or an all-zero
    list, means the output is malformed and uniform weights are returned instead.
    """
    scores = np.asarray(importances, dtype=float).ravel()
    if scores.size == 0:
        raise ValueError("need at least one importance score")
    if not np.all(np.isfinite(scores)) or np.any(scores < 0) or scores.sum() <= 0:
        return uniform_weights(scores.size)
    return scores / scores.sum()


def edges(D: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-rubric edge mu_k = E[Y_k y]: how far rubric k's vote leans toward the true preference.

    mu_k > 0 is the bound's condition (2) (the rubric is aligned); reports show it per rubric.
    """
    D, y = _check_pairs(D, y)
    return (D * y[:, None]).mean(axis=0)


def whitened_uniform_weights(X: np.ndarray, config: WhiteningConfig | None = None) -> WeightResult:
    """WU, the method's default: w = Sigma^{-1/2} 1 over the response-level verdict matrix, clipped, normalised.

    X has one row per sampled response and one column per rubric (0/1 verdicts or P(yes) in [0, 1]); no
    preference labels are needed. Whitening de-correlates the rubrics before they are counted uniformly, so
    a cluster of correlated rubrics stops outvoting the rest (it counts about sqrt(k) times, not k times).
    """
    config = config or WhiteningConfig()
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"X must be a 2-D (responses x rubrics) matrix with at least one rubric, got {X.shape}")
    n, m = X.shape
    reason = _degenerate_reason(X, config)
    if reason is not None:
        return _uniform(m, reason)
    Sigma = _regularised(_covariance(X, config.shrinkage), config.ridge)
    w = _inverse_power(Sigma, 0.5, config.eps) @ np.ones(m)
    return _clip_normalise(w, "whitened_uniform")


def fisher_weights(D: np.ndarray, y: np.ndarray, config: WhiteningConfig | None = None) -> WeightResult:
    """The labelled variant: w = Sigma^{-1} mu, the direction that maximises (w^T mu)^2 / (w^T Sigma w).

    D holds one row per labelled pair, Y_k = g_k(R1) - g_k(R2) (or differences of P(yes)); y is the true
    preference in {+1,-1}. Sigma is the shrunk covariance of the noise Z = D y - mu. Negative weights are
    clipped because a score must stay a non-negative combination of satisfied rubrics.
    """
    config = config or WhiteningConfig()
    D, y = _check_pairs(D, y)
    m = D.shape[1]
    reason = _degenerate_reason(D, config)
    if reason is not None:
        return _uniform(m, reason)
    mu = edges(D, y)
    if not np.any(mu > 0):
        return _uniform(m, "no rubric has a positive edge mu_k")
    votes_toward_truth = D * y[:, None]
    if np.all(np.ptp(votes_toward_truth, axis=0) == 0):
        return _uniform(m, "the noise Z has zero variance for every rubric: no covariance to estimate")
    Sigma = _regularised(_covariance(votes_toward_truth, config.shrinkage), config.ridge)
    w = _inverse_power(Sigma, 1.0, config.eps) @ mu
    return _clip_normalise(w, "fisher")


def error_bound(w: np.ndarray, mu: np.ndarray, Sigma: np.ndarray) -> float:
    """The paper's bound on P(wrong), single-Sigma version: exp(-1/2 (w^T mu)^2 / (w^T Sigma w)).

    The bound assumes the weighted vote leans toward the truth (w^T mu > 0); when it does not, it says
    nothing, so 1.0 is returned. Noise-free votes (w^T Sigma w = 0) with a positive lean give 0.0.
    """
    w, mu, Sigma = np.asarray(w, dtype=float), np.asarray(mu, dtype=float), np.asarray(Sigma, dtype=float)
    if w.shape != mu.shape or w.ndim != 1 or Sigma.shape != (w.size, w.size):
        raise ValueError(f"shapes do not match: w {w.shape}, mu {mu.shape}, Sigma {Sigma.shape}")
    lean = float(w @ mu)
    spread = float(w @ Sigma @ w)
    if lean <= 0:
        return 1.0
    if spread <= 0:
        return 0.0
    return float(np.exp(-0.5 * lean**2 / spread))


# --- the linear algebra, as on the method page --------------------------------------------------------------


def _covariance(X: np.ndarray, shrinkage: Shrinkage) -> np.ndarray:
    """Sigma from few rows: shrunk toward a scaled identity, because 8 x 20 is rank-deficient.

    Under the shrunk estimators, a column constant across the rows has no estimable variance or covariance;
    its variance is raised to the mean variance of the varying columns, so it is weighted like an average
    independent rubric. Without this floor, the shrunk variance is intensity x mean variance, and Ledoit-Wolf's
    intensity can be near 0 with few rubrics (2 rubrics x 4 samples gave 0), which hands the constant rubric
    about 1/sqrt(ridge) times the weight of the informative one (0.98 vs 0.02).
    """
    # imported here: sklearn (with scipy and pandas) is 1.1 s of every `rrd` command's 1.3 s of imports
    from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf

    estimator = {"ledoit_wolf": LedoitWolf, "oas": OAS, "none": EmpiricalCovariance}[shrinkage]()
    Sigma = estimator.fit(X).covariance_
    constant = np.ptp(X, axis=0) == 0
    if shrinkage != "none" and constant.any() and not constant.all():
        floor = float(np.mean(np.diag(Sigma)[~constant]))
        idx = np.flatnonzero(constant)
        Sigma[idx, idx] = np.maximum(Sigma[idx, idx], floor)
    return Sigma


def _regularised(Sigma: np.ndarray, ridge: float) -> np.ndarray:
    """Sigma + ridge * (mean variance) * I: keeps constant rubrics (zero variance) invertible."""
    return Sigma + ridge * np.mean(np.diag(Sigma)) * np.eye(Sigma.shape[0])


def _inverse_power(Sigma: np.ndarray, power: float, eps: float) -> np.ndarray:
    """Sigma^{-power} by eigendecomposition (symmetric, so Sigma^{-1/2} is the ZCA whitening matrix)."""
    lam, V = np.linalg.eigh(Sigma)
    lam = np.maximum(lam, eps * max(lam.max(), 0.0))
    if lam.max() <= 0:
        raise ValueError("Sigma has no positive eigenvalue")  # callers rule this out first
    return (V * lam**-power) @ V.T


def _clip_normalise(w: np.ndarray, scheme: str) -> WeightResult:
    """Clip negatives to 0 (a satisfied rubric never lowers a score) and normalise to sum 1."""
    if not np.all(np.isfinite(w)):
        return _uniform(w.size, f"{scheme} weights were not finite")
    w = np.clip(w, 0.0, None)
    total = w.sum()
    if total <= 0:
        return _uniform(w.size, f"every {scheme} weight was <= 0 before clipping")
    return WeightResult(weights=w / total, scheme=scheme)


def _degenerate_reason(X: np.ndarray, config: WhiteningConfig) -> str | None:
    """Why a covariance of X can't be estimated, or None when it can."""
    n, m = X.shape
    if m == 1:
        return "a single rubric: nothing to weight against"
    if not np.all(np.isfinite(X)):
        return "non-finite values (NaN or inf) in the verdicts"
    if n < config.min_samples:
        return f"only {n} rows, fewer than min_samples={config.min_samples}"
    if np.all(np.ptp(X, axis=0) == 0):
        return "every rubric is constant across rows: no covariance to estimate"
    return None


def _uniform(m: int, reason: str) -> WeightResult:
    return WeightResult(weights=uniform_weights(m), scheme="uniform", fallback_reason=reason)


def _check_pairs(D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a pair-vote matrix and its labels; shape errors are caller bugs, so they raise."""
    D = np.asarray(D, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    if D.ndim != 2 or D.shape[1] == 0:
        raise ValueError(f"D must be a 2-D (pairs x rubrics) matrix with at least one rubric, got {D.shape}")
    if y.shape[0] != D.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels for {D.shape[0]} pairs")
    if not np.all(np.isin(y, (-1.0, 1.0))):
        raise ValueError("y must hold only +1 (R1 preferred) or -1 (R2 preferred)")
    return D, y


def impute_unscored(rows: Sequence[Sequence[float | bool | None]], empty_fill: float) -> tuple[np.ndarray, int]:
    """rows x rubrics matrix for whitening, with each unscored (None) cell set to its rubric's mean over the
    scored rows, or `empty_fill` when none is scored; also returns how many cells were filled. Whitening needs
    a full matrix, and a column mean is the fill that leaves that rubric's mean unchanged."""
    X = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=float)
    missing = int(np.isnan(X).sum())
    for k in range(X.shape[1] if X.ndim == 2 else 0):
        col = X[:, k]
        col[np.isnan(col)] = float(np.nanmean(col)) if np.any(~np.isnan(col)) else empty_fill
    return X, missing

