"""Tests for rrd.scoring: unscored verdicts are dropped (never a NO), pairs use common rubrics, ties."""

from __future__ import annotations

import pytest

from rrd.scoring import TieRule, compare, pair_credit, score_response, undecided


# --- score_response ------------------------------------------------------------------------------------------


def test_unscored_verdict_is_dropped_and_weights_renormalised() -> None:
    assert score_response([0.5, 0.5], [True, None]) == 1.0  # not 0.5: a parse failure is not a NO
    assert score_response([0.5, 0.5], [True, False]) == 0.5


def test_weighted_score_with_bools_and_probabilities() -> None:
    assert score_response([0.2, 0.3, 0.5], [True, False, True]) == pytest.approx(0.7)
    assert score_response([0.2, 0.3, 0.5], [0.5, 1.0, 0.0]) == pytest.approx(0.4)
    assert score_response([0.2, 0.3, 0.5], [None, 1.0, False]) == pytest.approx(0.3 / 0.8)


def test_nothing_scored_or_no_weight_gives_none() -> None:
    assert score_response([0.5, 0.5], [None, None]) is None
    assert score_response([0.0, 1.0], [True, None]) is None


def test_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        score_response([0.5, 0.5], [True])
    with pytest.raises(ValueError):
        score_response([0.5, 0.5], [True, 1.5])
    with pytest.raises(ValueError):
        score_response([0.5, 0.5], [True, float("nan")])  # NaN is a bug upstream, not "unscored"
    with pytest.raises(ValueError):
        score_response([-0.5, 1.5], [True, True])


# --- compare -------------------------------------------------------------------------------------------------


def test_compare_higher_score_wins() -> None:
    w = [0.25, 0.25, 0.5]
    assert compare(w, [True, True, False], [False, False, True]) == "tie"
    assert compare(w, [True, False, True], [False, True, True]) == "tie"
    assert compare(w, [True, True, True], [False, True, True]) == "A"
    assert compare(w, [0.1, 0.0, 0.0], [0.0, 0.0, 0.2]) == "B"


def test_compare_uses_only_rubrics_scored_for_both() -> None:
    w = [1 / 3, 1 / 3, 1 / 3]
    # Scored separately A = 2/3 beats B = 1/2; on the common rubrics 1 and 2 they are equal.
    assert compare(w, [True, True, False], [None, True, False]) == "tie"
    # Scored separately B = 1 beats A = 1/2; on the common rubric 1 they are equal.
    assert compare(w, [False, True, None], [None, True, True]) == "tie"
    # Scored separately both are 1/2; the common rubric 2 decides.
    assert compare(w, [True, None, False], [None, False, True]) == "B"


def test_compare_without_common_rubric_is_none() -> None:
    assert compare([0.5, 0.5], [True, None], [None, False]) is None
    assert compare([0.0, 1.0], [True, None], [False, None]) is None  # common rubric carries no weight


def test_compare_tie_margin() -> None:
    w = [0.5, 0.3, 0.2]
    a, b = [True, False, True], [True, True, False]  # 0.7 vs 0.8
    assert compare(w, a, b) == "B"
    assert compare(w, a, b, tie_margin=0.1) == "tie"  # |diff| <= margin is a tie, boundary included
    assert compare(w, a, b, tie_margin=0.09) == "B"
    # Equal in exact arithmetic, unequal in floating point: still a tie with margin 0.
    assert compare([0.1, 0.2, 0.3], [True, True, False], [False, False, True]) == "tie"
    with pytest.raises(ValueError):
        compare(w, a, b, tie_margin=-0.1)


# --- ties in accuracy ----------------------------------------------------------------------------------------


def test_pair_credit_decisive_verdicts() -> None:
    for rule in TieRule:
        assert pair_credit("A", "A", rule) == 1.0
        assert pair_credit("B", "A", rule) == 0.0
        assert pair_credit("B", "B", rule, tie_break="A") == 1.0  # tie_break only matters for ties


def test_pair_credit_ties_by_rule() -> None:
    assert pair_credit("tie", "A", TieRule.HALF) == 0.5
    assert pair_credit("tie", "A", TieRule.TIE) == 0.0
    assert pair_credit("tie", "A", TieRule.PAIRWISE, tie_break="A") == 1.0
    assert pair_credit("tie", "A", TieRule.PAIRWISE, tie_break="B") == 0.0
    assert pair_credit("tie", "B", TieRule.PAIRWISE, tie_break="tie") == 0.5
    assert pair_credit("tie", "B", "half") == 0.5  # rules may be given by name, as in a config file


def test_pair_credit_undecided_pairs_earn_nothing() -> None:
    """No rubric scored for both responses is undecided, not a tie: 0, as a failed verdict in rrd eval's
    protocols, not the 0.5 a coin flip would earn. Under PAIRWISE the direct judge may still decide it, and a
    tie-break that could not be read leaves the pair undecided instead of raising."""
    assert undecided(None, TieRule.HALF) and pair_credit(None, "A", TieRule.HALF) == 0.0
    assert undecided(None, TieRule.TIE) and pair_credit(None, "A", TieRule.TIE) == 0.0
    assert not undecided(None, TieRule.PAIRWISE, "B") and pair_credit(None, "B", TieRule.PAIRWISE, tie_break="B") == 1.0
    assert undecided("tie", TieRule.PAIRWISE, None) and pair_credit("tie", "A", TieRule.PAIRWISE) == 0.0
    assert undecided(None, TieRule.PAIRWISE, None)
    assert not undecided("tie", TieRule.HALF) and not undecided("A", TieRule.PAIRWISE)


def test_pair_credit_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pair_credit("A", "tie", TieRule.HALF)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_credit("C", "A", TieRule.HALF)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pair_credit("A", "A", "coin")
