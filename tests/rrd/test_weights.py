"""Tests for rrd.weights: closed forms, what redundancy does to the weights, fallbacks, the bound."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

from rrd.weights import (
    WeightResult,
    WhiteningConfig,
    edges,
    error_bound,
    fisher_weights,
    llm_weights,
    uniform_weights,
    whitened_uniform_weights,
)

EMPIRICAL = WhiteningConfig(shrinkage="none", ridge=0.05)
# Tiny ridge: closed forms below hold to about this relative precision.
NEAR_EXACT = WhiteningConfig(shrinkage="none", ridge=1e-9)


def explicit_wu(X: np.ndarray, Sigma: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Sigma^{-1/2} 1 written out independently: (raw weights, clipped and normalised weights)."""
    S = Sigma + ridge * np.trace(Sigma) / Sigma.shape[0] * np.eye(Sigma.shape[0])
    lam, V = np.linalg.eigh(S)
    raw = V @ np.diag(1.0 / np.sqrt(lam)) @ V.T @ np.ones(S.shape[0])
    clipped = np.where(raw > 0, raw, 0.0)
    return raw, clipped / clipped.sum()


def empirical_cov(X: np.ndarray) -> np.ndarray:
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc / X.shape[0]


def orthogonal_columns(n_rows: int = 40) -> np.ndarray:
    """Three 0/1 columns with exactly zero sample covariance (a balanced 2^3 factorial design)."""
    a = np.repeat([1.0, 0.0], n_rows // 2)
    b = np.tile(np.repeat([1.0, 0.0], n_rows // 4), 2)
    c = np.tile(np.repeat([1.0, 0.0], n_rows // 8), 4)
    return np.column_stack([a, b, c])


def realistic_verdicts(n_rows: int = 40, seed: int = 0) -> np.ndarray:
    """0/1 verdicts of three rubrics that all track a latent response quality, with different pass rates."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=n_rows)
    a = q + rng.normal(size=n_rows) > 0.0
    b = q + rng.normal(size=n_rows) > 0.3
    c = 0.5 * q + rng.normal(size=n_rows) > -0.2
    return np.column_stack([a, b, c]).astype(float)


# --- closed form ---------------------------------------------------------------------------------------------


def test_wu_matches_closed_form_all_weights_positive() -> None:
    X = np.array([[0, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1]], float)
    raw, expected = explicit_wu(X, empirical_cov(X), EMPIRICAL.ridge)
    assert np.all(raw > 0), "this case must not involve clipping"
    assert raw.max() / raw.min() > 5, "and must be far from uniform, so uniform can't pass by accident"
    result = whitened_uniform_weights(X, EMPIRICAL)
    assert result.scheme == "whitened_uniform" and result.fallback_reason is None
    np.testing.assert_allclose(result.weights, expected, rtol=1e-10)


def test_wu_matches_closed_form_with_clipping() -> None:
    X = np.array([[1, 1, 1], [0, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]], float)
    raw, expected = explicit_wu(X, empirical_cov(X), EMPIRICAL.ridge)
    assert raw[0] < 0, "this case must exercise clipping"
    result = whitened_uniform_weights(X, EMPIRICAL)
    np.testing.assert_allclose(result.weights, expected, rtol=1e-10)
    assert result.weights[0] == 0.0
    assert result.weights.sum() == pytest.approx(1.0)


def test_wu_default_uses_ledoit_wolf() -> None:
    X = realistic_verdicts(n_rows=8, seed=3)
    _, expected = explicit_wu(X, ledoit_wolf(X)[0], WhiteningConfig().ridge)
    np.testing.assert_allclose(whitened_uniform_weights(X).weights, expected, rtol=1e-10)


def test_wu_ridge_is_relative_so_rescaled_verdicts_get_the_same_weights() -> None:
    """Soft P(yes) verdicts that vary less than 0/1 ones must not be regularised more heavily."""
    X = realistic_verdicts(n_rows=12, seed=4)
    for config in (WhiteningConfig(), EMPIRICAL):
        np.testing.assert_allclose(
            whitened_uniform_weights(0.2 + 0.1 * X, config).weights,
            whitened_uniform_weights(X, config).weights,
            rtol=1e-8,
        )


# --- redundancy ----------------------------------------------------------------------------------------------


def test_exact_duplicate_counts_as_sqrt2_copies_when_uncorrelated_with_the_rest() -> None:
    """Sigma^{-1/2} 1 does NOT count two identical rubrics as one: it counts them as sqrt(2).

    Derivation: with a duplicated, Sigma^{-1/2} acts on the normalised sum (a + a')/sqrt(2), whose variance is
    2 var(a) and along which 1 has length sqrt(2): weight sqrt(2)/sqrt(2 var(a)) = 1/sd(a), the same as a
    alone, spread over two columns as 1/(sqrt(2) sd(a)) each. So the pair totals sqrt(2)/sd(a). With three
    exactly uncorrelated equal-variance rubrics: a alone gets 1/3; a + a' get sqrt(2)/(2 + sqrt(2)) = 0.414;
    uniform weights would give them 1/2.
    """
    X = orthogonal_columns()
    alone = whitened_uniform_weights(X, NEAR_EXACT).weights
    dup = whitened_uniform_weights(np.column_stack([X[:, 0], X]), NEAR_EXACT).weights
    np.testing.assert_allclose(alone, [1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    pair = dup[0] + dup[1]
    assert pair == pytest.approx(np.sqrt(2) / (2 + np.sqrt(2)), rel=1e-6)
    assert dup[0] == pytest.approx(dup[1], rel=1e-9)
    # b and c keep equal shares of what is left, and each keeps 1/sqrt(2) of the pair's weight.
    assert dup[2] == pytest.approx(dup[3], rel=1e-6)
    assert dup[2] / pair == pytest.approx(1 / np.sqrt(2), rel=1e-6)


def test_duplicate_on_realistic_verdicts_is_partly_discounted() -> None:
    """On correlated 0/1 data the pair lands between 'counted once' and 'counted twice'.

    'Counted twice' is what the pair would get if the weights did not react to the duplicate (raw weight of
    a, twice, against raw b and c): uniform's behaviour. WU must land strictly inside, near the sqrt(2) law.
    """
    X = realistic_verdicts()
    alone = whitened_uniform_weights(X, NEAR_EXACT).weights
    dup = whitened_uniform_weights(np.column_stack([X[:, 0], X]), NEAR_EXACT).weights
    pair = dup[0] + dup[1]
    counted_once = alone[0]
    counted_twice = 2 * alone[0] / (2 * alone[0] + alone[1] + alone[2])
    sqrt2_law = np.sqrt(2) * alone[0] / (np.sqrt(2) * alone[0] + alone[1] + alone[2])
    assert counted_once + 0.05 < pair < counted_twice - 0.05
    assert pair == pytest.approx(sqrt2_law, abs=0.02)  # exact only for uncorrelated rubrics; these are weakly so
    # b and c keep their relative standing.
    assert dup[2] / dup[3] == pytest.approx(alone[1] / alone[2], rel=0.05)


def test_fisher_counts_an_exact_duplicate_once() -> None:
    """Sigma^{-1} mu (unlike Sigma^{-1/2} 1) gives a duplicated rubric's pair the weight it had alone."""
    D, y = correlated_noise_pairs(n_pairs=3000, seed=5)
    D = D[:, [0, 5, 6]]  # one shared-noise rubric, the clean one, an extra independent one
    config = WhiteningConfig(shrinkage="none", ridge=1e-9)
    alone = fisher_weights(D, y, config).weights
    dup = fisher_weights(np.column_stack([D[:, 0], D]), y, config).weights
    assert np.all(alone > 0.05)
    np.testing.assert_allclose([dup[0] + dup[1], dup[2], dup[3]], alone, rtol=1e-5)


def test_uncorrelated_rubric_keeps_its_share() -> None:
    """A rubric uncorrelated with the rest gets 1/sd, as among independents, whatever the others are.

    Setup: a and a near-copy of it (strongly correlated), b, and d; b and d are exactly uncorrelated with
    everything. Sigma is block-diagonal, so Sigma^{-1/2} 1 gives d exactly 1/sd(d) and b exactly 1/sd(b), and
    adding d leaves the other rubrics' relative weights untouched (ridge 0 keeps the blocks exact).
    """
    base = orthogonal_columns(80)  # a, b, d mutually uncorrelated
    a, b, d = base.T
    a_near = a.copy()
    # Flips balanced across a's halves (and all where b = d = 1): a_near stays uncorrelated with b and d.
    a_near[[0, 1, 40, 41]] = 1 - a_near[[0, 1, 40, 41]]
    exact = WhiteningConfig(shrinkage="none", ridge=0.0)
    without_d = whitened_uniform_weights(np.column_stack([a, a_near, b]), exact).weights
    with_d = whitened_uniform_weights(np.column_stack([a, a_near, b, d]), exact).weights
    np.testing.assert_allclose(with_d[:3] / with_d[:3].sum(), without_d, rtol=1e-9)
    assert with_d[3] / with_d[2] == pytest.approx(np.std(b) / np.std(d), rel=1e-9)
    # Among independents of equal variance d would have 1/3 of (b, d, the a-cluster counted once); the a
    # near-duplicates are discounted toward that, so d keeps more than uniform's 1/4.
    assert with_d[3] > 0.25 + 0.02
    assert with_d[3] == pytest.approx(with_d[2])


# --- Fisher --------------------------------------------------------------------------------------------------


def correlated_noise_pairs(n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair votes: rubrics 0-4 share one noise factor and have a small edge; rubric 5 is clean; 6 independent."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n_pairs)
    shared = rng.normal(size=n_pairs)
    latent = np.column_stack(
        [0.3 * y + 1.0 * shared + 0.3 * rng.normal(size=n_pairs) for _ in range(5)]
        + [0.8 * y + 1.0 * rng.normal(size=n_pairs), 0.4 * y + 1.0 * rng.normal(size=n_pairs)]
    )
    D = np.where(latent > 0.5, 1.0, np.where(latent < -0.5, -1.0, 0.0))
    return D, y


def pairwise_accuracy(D: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    margin = D @ w
    return float(np.mean(np.where(np.abs(margin) < 1e-12, 0.5, np.sign(margin) == y)))


def test_fisher_matches_closed_form() -> None:
    D, y = correlated_noise_pairs(n_pairs=500, seed=1)
    mu = (D * y[:, None]).mean(axis=0)
    Z = D * y[:, None] - mu
    Sigma = Z.T @ Z / len(y)
    Sigma = Sigma + 0.05 * np.trace(Sigma) / len(mu) * np.eye(len(mu))
    raw = np.linalg.solve(Sigma, mu)
    expected = np.where(raw > 0, raw, 0.0) / np.where(raw > 0, raw, 0.0).sum()
    result = fisher_weights(D, y, EMPIRICAL)
    assert result.scheme == "fisher"
    np.testing.assert_allclose(result.weights, expected, rtol=1e-8)
    np.testing.assert_allclose(edges(D, y), mu)


def test_fisher_beats_uniform_on_correlated_noise() -> None:
    D, y = correlated_noise_pairs(n_pairs=4000, seed=0)
    train, test = slice(0, 2000), slice(2000, None)
    fisher = fisher_weights(D[train], y[train])
    assert fisher.scheme == "fisher"
    acc_fisher = pairwise_accuracy(D[test], y[test], fisher.weights)
    acc_uniform = pairwise_accuracy(D[test], y[test], uniform_weights(D.shape[1]))
    assert acc_fisher > acc_uniform + 0.05, (acc_fisher, acc_uniform)
    assert fisher.weights[5] > fisher.weights[:5].max(), "the clean rubric must carry the most weight"


def test_fisher_direction_minimises_the_bound() -> None:
    rng = np.random.default_rng(2)
    A = rng.normal(size=(5, 5))
    Sigma = A @ A.T + 0.5 * np.eye(5)
    mu = rng.uniform(0.05, 0.5, size=5)
    best = error_bound(np.linalg.solve(Sigma, mu), mu, Sigma)
    for _ in range(200):
        assert best <= error_bound(rng.uniform(0, 1, size=5), mu, Sigma) + 1e-12


def test_error_bound_values() -> None:
    w, mu, Sigma = np.array([1.0, 1.0]), np.array([0.2, 0.4]), np.eye(2) * 0.5
    assert error_bound(w, mu, Sigma) == pytest.approx(np.exp(-0.5 * 0.36 / 1.0))
    assert error_bound(w, -mu, Sigma) == 1.0  # leaning the wrong way: the bound says nothing
    assert error_bound(w, mu, np.zeros((2, 2))) == 0.0
    with pytest.raises(ValueError):
        error_bound(w, mu, np.eye(3))


def test_edges_are_mean_vote_toward_truth() -> None:
    D = np.array([[1, 0, -1], [1, -1, 1], [0, 1, 1], [-1, 0, 1]], float)
    y = np.array([1, 1, -1, -1], float)
    np.testing.assert_allclose(edges(D, y), [(1 + 1 + 0 + 1) / 4, (0 - 1 - 1 + 0) / 4, (-1 + 1 - 1 - 1) / 4])
    with pytest.raises(ValueError):
        edges(D, np.array([1, 0, 1, 1], float))


# --- fallbacks -----------------------------------------------------------------------------------------------


def assert_uniform_fallback(result: WeightResult, m: int, reason_contains: str) -> None:
    assert result.scheme == "uniform"
    assert result.fell_back
    assert reason_contains in result.fallback_reason
    np.testing.assert_allclose(result.weights, np.full(m, 1 / m))


def test_too_few_rows_falls_back_to_uniform() -> None:
    X = np.array([[1, 0, 1], [0, 1, 1]], float)
    assert_uniform_fallback(whitened_uniform_weights(X), 3, "fewer than min_samples")


def test_single_rubric_gets_weight_one() -> None:
    result = whitened_uniform_weights(np.array([[1.0], [0.0], [1.0], [1.0]]))
    np.testing.assert_array_equal(result.weights, [1.0])
    assert "single rubric" in result.fallback_reason


def test_non_finite_input_falls_back_to_uniform() -> None:
    X = realistic_verdicts(n_rows=8)
    X[3, 1] = np.nan
    assert_uniform_fallback(whitened_uniform_weights(X), 3, "non-finite")
    D, y = correlated_noise_pairs(n_pairs=50, seed=0)
    D[0, 0] = np.inf
    assert_uniform_fallback(fisher_weights(D, y), D.shape[1], "non-finite")


def test_all_constant_rubrics_fall_back_to_uniform() -> None:
    X = np.zeros((8, 4))
    X[:, 2] = 1.0
    assert_uniform_fallback(whitened_uniform_weights(X), 4, "constant")


def test_constant_rubric_does_not_blow_up() -> None:
    """A rubric no sampled response passes (common after RRD's c <= 2 filter) gets a finite, ordinary weight."""
    rng = np.random.default_rng(1)
    X = (rng.random((8, 20)) < 0.2).astype(float)
    X[:, 0] = 0.0
    result = whitened_uniform_weights(X)
    assert result.scheme == "whitened_uniform"
    assert np.all(np.isfinite(result.weights))
    assert 0.5 < result.weights[0] / np.mean(result.weights[1:]) < 2.0


@pytest.mark.parametrize("shrinkage", ["ledoit_wolf", "oas"])
def test_constant_rubric_beside_few_rubrics_gets_an_ordinary_weight(shrinkage) -> None:
    """Two rubrics on four samples (a typical small RRD set): Ledoit-Wolf estimates almost no shrinkage here,
    and before the variance floor the constant rubric took 98% of the weight."""
    X = np.array([[1, 1], [1, 1], [0, 1], [0, 1]], dtype=float)
    result = whitened_uniform_weights(X, WhiteningConfig(shrinkage=shrinkage))
    assert result.scheme == "whitened_uniform"
    assert result.weights == pytest.approx([0.5, 0.5], abs=0.01)
    X3 = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=float)  # a constant 0 column
    w = whitened_uniform_weights(X3, WhiteningConfig(shrinkage=shrinkage)).weights
    assert 0.5 < w[1] / np.mean(w[[0, 2]]) < 2.0


def test_constant_rubric_with_no_shrinkage_is_bounded_only_by_the_ridge() -> None:
    """The documented hazard: full-rank Sigma, no shrinkage -> about 1/sqrt(ridge) times an average weight."""
    rng = np.random.default_rng(1)
    X = (rng.random((400, 5)) < 0.5).astype(float)
    X[:, 0] = 1.0
    weights = whitened_uniform_weights(X, WhiteningConfig(shrinkage="none", ridge=1e-3)).weights
    ratio = weights[0] / np.mean(weights[1:])
    assert np.isfinite(ratio)
    # sd(other) / sqrt(ridge * mean variance); the mean variance includes the zero column: 4 * 0.25 / 5.
    assert ratio == pytest.approx(np.sqrt(0.25 / (1e-3 * 0.2)), rel=0.1)


def test_fisher_without_positive_edge_falls_back() -> None:
    D, y = correlated_noise_pairs(n_pairs=200, seed=0)
    assert_uniform_fallback(fisher_weights(D, -y), D.shape[1], "positive edge")


def test_fisher_too_few_pairs_falls_back() -> None:
    D, y = correlated_noise_pairs(n_pairs=2, seed=0)
    assert_uniform_fallback(fisher_weights(D, y), D.shape[1], "fewer than min_samples")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        WhiteningConfig(shrinkage="graphical_lasso")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        WhiteningConfig(ridge=-1.0)
    with pytest.raises(ValueError):
        WhiteningConfig(min_samples=1)


# --- uniform and LLM ----------------------------------------------------------------------------------------


def test_uniform_and_llm_weights() -> None:
    np.testing.assert_allclose(uniform_weights(4), [0.25] * 4)
    with pytest.raises(ValueError):
        uniform_weights(0)
    np.testing.assert_allclose(llm_weights([1, 3, 0, 4]), [0.125, 0.375, 0.0, 0.5])
    np.testing.assert_allclose(llm_weights([0, 0, 0]), [1 / 3] * 3)
    np.testing.assert_allclose(llm_weights([1, -2, 3]), [1 / 3] * 3)
    np.testing.assert_allclose(llm_weights([1, float("nan")]), [0.5, 0.5])
