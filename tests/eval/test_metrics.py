"""Tests for eval.metrics on tiny hand-computed cases: each expected number is worked out in the comment beside it,
so a wrong protocol (a tie counted as a win, each example clipped instead of the mean, micro instead of macro)
breaks a test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.policy_loaders import HealthRubric
from eval.metrics import judgebench_summary, ppe_correctness_summary, ppe_human_summary, two_game_counter
from eval.policy_metrics import biggen_summary, healthbench_example_score, healthbench_summary, parse_prometheus
from rrd.scoring import wilson_interval

# --- JudgeBench ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "g1", "g2", "expected"),
    [
        ("A", "A", "A", 2),       # consistent and right
        ("A", "A", "tie", 1),     # one right, one tie: correct
        ("A", "A", None, 1),      # one right, one failed: correct
        ("A", "A", "B", 0),       # inconsistent (position bias): not correct
        ("B", None, None, 0),     # both failed
        ("B", "tie", "tie", 0),
        ("B", "A", "tie", -1),
        ("B", "A", "A", -2),
    ],
)
def test_two_game_counter(label: str, g1: str | None, g2: str | None, expected: int) -> None:
    assert two_game_counter(label, g1, g2) == expected


def test_two_game_counter_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        two_game_counter("A", "A", "C")
    with pytest.raises(ValueError):
        two_game_counter("A>B", "A", "A")


def test_judgebench_two_game_summary() -> None:
    rows = [
        {"family": "mmlu-pro", "label": "A", "games": ["A", "tie"]},       # +1: correct
        {"family": "mmlu-pro", "label": "A", "games": ["A", "B"]},         # 0: inconsistent, no decision
        {"family": "livecodebench", "label": "B", "games": [None, None]},  # 0: two failed games, no decision
        {"family": "livecodebench", "label": "B", "games": ["B", "B"]},    # +2: correct
        {"family": "livebench-math", "label": "A", "games": ["B", "B"]},   # -2: wrong
    ]
    s = judgebench_summary(rows)
    assert (s["n"], s["correct"], s["accuracy"]) == (5, 2, 0.4)
    assert s["ci"] == pytest.approx((0.117618, 0.769280), abs=1e-5)  # Wilson 2/5, computed by hand
    assert s["tie_rate"] == pytest.approx(2 / 5)            # rows 2 and 3
    assert s["opposite_verdict_rate"] == pytest.approx(1 / 5)  # row 2 only: (None, None) is not inconsistent
    # JudgeBench's n_inconsistent (decision1 != decision2): rows 1 (A vs tie) and 2; two failed games agree
    assert s["decision_mismatch_rate"] == pytest.approx(2 / 5)
    assert s["failure_rate"] == pytest.approx(2 / 10)       # 2 failed games of 10
    fam = s["per_family"]
    assert set(fam) == {"mmlu-pro", "livecodebench", "livebench-math"}
    assert (fam["mmlu-pro"]["n"], fam["mmlu-pro"]["accuracy"]) == (2, 0.5)
    assert (fam["livecodebench"]["n"], fam["livecodebench"]["accuracy"]) == (2, 0.5)
    assert (fam["livebench-math"]["n"], fam["livebench-math"]["accuracy"]) == (1, 0.0)
    assert fam["mmlu-pro"]["ci"] == wilson_interval(1, 2)


def test_judgebench_single_game_summary() -> None:
    rows = [
        {"family": "mmlu-pro", "label": "A", "games": ["A"]},       # right
        {"family": "mmlu-pro", "label": "A", "games": ["tie"]},     # a tie is wrong
        {"family": "livecodebench", "label": "B", "games": [None]},  # a failure is wrong
        {"family": "livecodebench", "label": "B", "games": ["A"]},  # wrong
    ]
    s = judgebench_summary(rows)
    assert (s["n"], s["correct"], s["accuracy"]) == (4, 1, 0.25)
    assert s["tie_rate"] == 0.25 and s["failure_rate"] == 0.25
    assert s["opposite_verdict_rate"] is None and s["decision_mismatch_rate"] is None
    assert s["protocol"] == "single-game"
    assert s["per_family"]["livecodebench"]["accuracy"] == 0.0


def test_judgebench_rejects_mixed_protocols() -> None:
    with pytest.raises(ValueError):
        judgebench_summary([{"family": "mmlu-pro", "label": "A", "games": ["A"]},
                            {"family": "mmlu-pro", "label": "A", "games": ["A", "A"]}])


def test_wilson_values_used_for_accuracy() -> None:
    # p = 2/3, z = 1.96: centre = (2/3 + z^2/6) / (1 + z^2/3) = 0.57309, half-width = 0.36543
    assert wilson_interval(2, 3) == pytest.approx((0.20766, 0.93851), abs=1e-5)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0  # not -1e-17 ("-0.000")
    s = judgebench_summary([{"family": "mmlu-pro", "label": "A", "games": ["A"]}] * 2
                           + [{"family": "mmlu-pro", "label": "B", "games": ["A"]}])
    assert s["ci"] == pytest.approx((0.20766, 0.93851), abs=1e-5)


# --- PPE human preference -------------------------------------------------------------------------------------------


def test_ppe_human_summary_drops_human_ties_and_counts_judge_abstentions_wrong() -> None:
    rows = [
        {"winner": "A", "verdict": "A", "categories": ["is_code"], "language": "English"},                # right
        {"winner": "B", "verdict": "A", "categories": ["is_code", "hard_prompt"], "language": "English"},  # wrong
        {"winner": "tie", "verdict": "A", "categories": ["is_code"], "language": "English"},  # dropped
        {"winner": "tie", "verdict": None, "categories": [], "language": "French"},           # dropped
        {"winner": "B", "verdict": "tie", "categories": ["hard_prompt"], "language": "French"},  # judge tie: wrong
        {"winner": "A", "verdict": None, "categories": [], "language": "French"},             # failure: wrong
        {"winner": "B", "verdict": "B", "categories": ["hard_prompt"], "language": "English"},  # right
    ]
    s = ppe_human_summary(rows)
    assert (s["n"], s["correct"], s["accuracy"], s["dropped_ties"]) == (5, 2, 0.4, 2)
    assert s["judge_tie_rate"] == 0.2 and s["failure_rate"] == 0.2
    assert s["ci"] == wilson_interval(2, 5)
    cat = s["per_category"]
    assert (cat["is_code"]["n"], cat["is_code"]["accuracy"]) == (2, 0.5)  # the tie row is not counted
    assert (cat["hard_prompt"]["n"], cat["hard_prompt"]["correct"]) == (3, 1)
    assert cat["hard_prompt"]["accuracy"] == pytest.approx(1 / 3)
    lang = s["per_language"]
    assert (lang["English"]["n"], lang["English"]["correct"]) == (3, 2)
    assert (lang["French"]["n"], lang["French"]["correct"]) == (2, 0)


# --- PPE correctness --------------------------------------------------------------------------------------------------

BOK_ROWS = [
    # pairs: (1,0) 0.7=0.7 -> 0.5; (2,0) 0.4<0.7 -> 0; pairs with response 3 skipped (2)
    {"correct": [False, True, True, False], "scores": [0.7, 0.7, 0.4, None]},
    # pairs: 0.95 beats 0.8, 0.1 and 0.9 -> 3
    {"correct": [False, True, False, False], "scores": [0.8, 0.95, 0.1, 0.9]},
    # every score failed: 3 pairs skipped
    {"correct": [True, True, False, True], "scores": [None, None, None, None]},
]


def test_ppe_pairwise_accuracy() -> None:
    s = ppe_correctness_summary(BOK_ROWS, n_bootstrap=50)
    assert (s["n_prompts"], s["n_responses"], s["n_unscored_responses"]) == (3, 12, 5)
    assert (s["n_pairs"], s["skipped_pairs"]) == (5, 5)
    assert s["pairwise_accuracy"] == pytest.approx(3.5 / 5)
    assert s["pairwise_ci"] == wilson_interval(3.5, 5)


def test_ppe_auc_pooled_and_per_prompt() -> None:
    s = ppe_correctness_summary(BOK_ROWS, n_bootstrap=200, seed=1)
    # pooled: positives 0.7, 0.4, 0.95 vs negatives 0.7, 0.8, 0.1, 0.9:
    # 0.7 -> 1 + 0.5 (tie); 0.4 -> 1; 0.95 -> 4; total 6.5 of 12 pairs
    assert s["auc"] == pytest.approx(6.5 / 12)
    # per prompt: first 0.5/2 = 0.25, second 3/3 = 1, third has no scored response; mean 0.625
    assert s["mean_prompt_auc"] == pytest.approx(0.625) and s["n_auc_prompts"] == 2
    lo, hi = s["auc_ci"]
    assert 0 <= lo <= hi <= 1
    lo, hi = s["mean_prompt_auc_ci"]
    assert 0.25 <= lo <= hi <= 1  # every resample's mean lies between the two per-prompt AUCs
    assert ppe_correctness_summary(BOK_ROWS, n_bootstrap=200, seed=1)["auc_ci"] == s["auc_ci"]


def test_weighted_auc_matches_sklearn_on_replicated_data() -> None:
    """The bootstrap weights responses by how often their prompt was drawn; that must equal sklearn's AUC on the
    resample written out in full (ties included)."""
    from sklearn.metrics import roc_auc_score

    from eval.metrics import _tie_groups, _weighted_auc

    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.4
    s = rng.integers(0, 8, 60).astype(float)  # many ties
    w = rng.integers(0, 4, 60)
    order, starts = _tie_groups(s)
    assert _weighted_auc(y[order], starts, np.ones(60)) == pytest.approx(roc_auc_score(y, s))
    assert _weighted_auc(y[order], starts, w[order].astype(float)) == \
        pytest.approx(roc_auc_score(np.repeat(y, w), np.repeat(s, w)))


def test_ppe_best_of_k_curve() -> None:
    curve = ppe_correctness_summary(BOK_ROWS, n_bootstrap=10)["best_of_k"]
    assert [c["k"] for c in curve] == [1, 2, 4]
    # K=1: 0, 0, 1 (first response only)
    # K=2: tie 0.7/0.7 -> (0+1)/2 = 0.5; 0.95 wins -> 1; all failed -> mean(T, T) = 1
    # K=4: tie 0.7/0.7 above 0.4 and a failure -> 0.5; 0.95 -> 1; all failed -> mean(T, T, F, T) = 0.75
    assert [c["accuracy"] for c in curve] == pytest.approx([1 / 3, 2.5 / 3, 2.25 / 3])
    assert [c["oracle"] for c in curve] == pytest.approx([1 / 3, 1, 1])
    assert [c["random"] for c in curve] == pytest.approx([1 / 3, 2 / 3, 1.5 / 3])


def test_ppe_best_of_k_uses_shortest_prompt_and_rejects_mismatch() -> None:
    rows = [{"correct": [True, False, False], "scores": [0.1, 0.9, 0.5]},
            {"correct": [False, True, False, True], "scores": [1, 2, 3, 4]}]
    curve = ppe_correctness_summary(rows, n_bootstrap=0)["best_of_k"]
    assert [c["k"] for c in curve] == [1, 2, 3]
    assert [c["accuracy"] for c in curve] == pytest.approx([0.5, 0.5, 0.0])
    with pytest.raises(ValueError):
        ppe_correctness_summary([{"correct": [True, False], "scores": [0.3]}])


# --- HealthBench ------------------------------------------------------------------------------------------------------


def _items(*pairs: tuple[float, str]) -> list[HealthRubric]:
    return [HealthRubric(f"criterion {i}", points, (tag,)) for i, (points, tag) in enumerate(pairs)]


def test_healthbench_example_score() -> None:
    rubrics = [{"points": 5}, {"points": 3}, {"points": -4}]
    assert healthbench_example_score(rubrics, [True, False, True]) == pytest.approx((5 - 4) / 8)
    assert healthbench_example_score([{"points": 2}, {"points": -10}], [False, True]) == pytest.approx(-5.0)
    assert healthbench_example_score(rubrics, [False, False, False]) == 0.0


def test_healthbench_unscored_items_are_dropped() -> None:
    rubrics = [{"points": 5}, {"points": 3}, {"points": -4}]
    assert healthbench_example_score(rubrics, [True, None, True]) == pytest.approx((5 - 4) / 5)
    assert healthbench_example_score(rubrics, [None, None, True]) is None  # no positive item left scored
    assert healthbench_example_score([{"points": -4}], [True]) is None
    with pytest.raises(ValueError):
        healthbench_example_score(rubrics, [True, False])


def test_healthbench_mean_is_clipped_not_each_example() -> None:
    examples = [
        (_items((1, "axis:accuracy")), [True], []),                                 # 1.0
        (_items((10, "axis:accuracy"), (-1, "axis:accuracy")), [True, True], []),  # 0.9
        (_items((5, "axis:accuracy"), (-7, "axis:accuracy")), [True, True], []),   # -0.4
    ]
    s = healthbench_summary(examples, n_bootstrap=200)
    assert s["overall"]["score"] == pytest.approx(0.5)  # (1 + 0.9 - 0.4) / 3; clipping each would give 0.633
    assert s["overall"]["n"] == 3 and s["overall"]["std"] > 0
    assert s["tags"]["axis:accuracy"]["score"] == pytest.approx(0.5)


def test_healthbench_summary_tags_and_skips() -> None:
    acc, comp = "axis:accuracy", "axis:completeness"
    examples = [
        # 0.125; accuracy items (5, -4) -> 1/5 = 0.2; completeness item (3) -> 0/3 = 0
        (_items((5, acc), (3, comp), (-4, acc)), [True, False, True], ["theme:a"]),
        # -10/2 = -5; accuracy (2) -> 0; completeness has only a negative item -> skipped
        (_items((2, acc), (-10, comp)), [False, True], ["theme:b"]),
        # 1.0; accuracy 1, completeness 1
        (_items((4, acc), (4, comp)), [True, True], ["theme:a"]),
        # no positive item scored -> skipped entirely
        (_items((5, acc), (-3, acc)), [None, True], ["theme:a"]),
    ]
    s = healthbench_summary(examples, n_bootstrap=100)
    assert (s["n_examples"], s["n_skipped"]) == (4, 1)
    assert s["overall"]["score"] == 0.0 and s["overall"]["n"] == 3  # mean (0.125 - 5 + 1) / 3 < 0, clipped
    tags = s["tags"]
    assert tags["theme:a"]["score"] == pytest.approx((0.125 + 1) / 2) and tags["theme:a"]["n"] == 2
    assert tags["theme:b"]["score"] == 0.0 and tags["theme:b"]["std"] == 0.0  # -5 clipped, every resample alike
    assert tags[acc]["score"] == pytest.approx((0.2 + 0 + 1) / 3) and tags[acc]["n"] == 3
    assert tags[comp]["score"] == pytest.approx(0.5) and tags[comp]["n"] == 2


def test_healthbench_bootstrap_is_seeded() -> None:
    examples = [(_items((1, "t"), (-1, "t")), [bool(i % 2), bool(i % 3 == 0)], []) for i in range(20)]
    a = healthbench_summary(examples, n_bootstrap=300, seed=3)["overall"]
    b = healthbench_summary(examples, n_bootstrap=300, seed=3)["overall"]
    assert a == b
    scores = np.array([healthbench_example_score(r, m) for r, m, _ in examples])
    assert a["score"] == pytest.approx(np.clip(scores.mean(), 0, 1))
    assert a["std"] == pytest.approx(scores.std() / math.sqrt(len(scores)), rel=0.3)  # bootstrap ~ the SE


# --- BiGGen -----------------------------------------------------------------------------------------------------------


def test_biggen_macro_average_and_failures() -> None:
    rows = ([{"capability": "planning", "score": 5}] * 4 + [{"capability": "planning", "score": None}]
            + [{"capability": "safety", "score": 1}, {"capability": "safety", "score": 3}]
            + [{"capability": "tool_usage", "score": None}])
    s = biggen_summary(rows, n_bootstrap=200)
    caps = s["per_capability"]
    assert (caps["planning"]["mean"], caps["planning"]["n"], caps["planning"]["failures"]) == (5.0, 4, 1)
    assert caps["planning"]["ci"] == (5.0, 5.0)
    assert (caps["safety"]["mean"], caps["safety"]["n"]) == (2.0, 2)
    assert math.isnan(caps["tool_usage"]["mean"]) and caps["tool_usage"]["failures"] == 1
    assert s["overall"] == pytest.approx(3.5)  # (5 + 2) / 2, not the micro mean 24/6 = 4
    assert s["micro_mean"] == pytest.approx(4.0)
    assert (s["n"], s["failures"]) == (6, 2)
    lo, hi = s["overall_ci"]
    assert 3.0 <= lo <= hi <= 4.0  # planning is always 5; safety's resampled mean is 1, 2 or 3


def test_biggen_rejects_bad_scores() -> None:
    for bad in (0, 6, 4.5, True):
        with pytest.raises(ValueError):
            biggen_summary([{"capability": "x", "score": bad}])


# prometheus-eval's own absolute-mode cases (libs/prometheus-eval/tests/test_parser.py at dcfb442), which its
# parser passes; then cases where our earlier reader disagreed with it (an independent comparison, issue #16).
OFFICIAL_ABSOLUTE = [
    ("Reference (Score 5) two results [RESULT] 3", 3),
    ("Reference (Score 5) not results", None),
    ("Excellent. [RESULT] 5 out of 5", 5),
    ("Poor performance. [RESULT] score of 1", 1),
    ("Good job. [Result] 3", 3),
    ("Needs improvement. [Result] Score: 2", 2),
    ("Well done. [Result] Result: 4", 4),
    ("Average. [Result] 4/5", 4),
    ("Excellent. [Result] 5 out of 5", 5),
    ("Poor performance. [Result] score of 1", 1),
    ("Good job. (Score 5)", 5),
    ("Good job. [Score 4]", 4),
    ("Good job. score: 3", 3),
    ("Good job. Score: 3", 3),
    ("Good job. score of 1", 1),
    ("Good job. [RESULT] (5)", 5),
    ("The score is definitely not 3.", None),
    ("I rate this a perfect 10!", None),
    ("Score: 2.5", None),
    ("Result: A", None),
    ("", None),
]
DISAGREED = [
    ("Score: 4", 4),
    ("Feedback. [RESULT] Score: 2", 2),
    ("Feedback. [RESULT] 04", 4),
    ("Feedback. [RESULT] \uff13", 3),  # a full-width digit
    ("Feedback. [RESULT] 3-4", None),  # ambiguous: unparsed
    ("Feedback. [RESULT] 3 or 4", None),
    ("Feedback. [RESULT] 4,5", None),
    ("Feedback [RESULT] 3\n\nI hope this helps.", None),  # the score must end the answer
    ("Feedback [RESULT] **5**", None),
    ("Feedback [RESULT] 2.", None),
    ("The response is accurate. [RESULT] 4\n", 4),
    ("[result] 1", 1),
    ("Format is 'feedback [RESULT] 5'. Here: weak answer. [RESULT] 2", 2),
    ("[RESULT] 6", None),
    ("[RESULT] 0", None),
    ("[RESULT] 45", None),
]


@pytest.mark.parametrize(("text", "expected"), OFFICIAL_ABSOLUTE + DISAGREED)
def test_parse_prometheus(text: str, expected: int | None) -> None:
    assert parse_prometheus(text) == expected
