"""The analysis scripts behind docs/results/small_proposer: decomposition success read off a tree, and accuracy
re-scored without the rubrics a refinement left coarse (bench/compare_runs.py, bench/coarse_rubrics.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rrd.records import Rubric, RubricSet
from rrd.summaries import decompositions, refine_summary

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
compare_runs = pytest.importorskip("compare_runs")
coarse_rubrics = pytest.importorskip("coarse_rubrics")


def node(text, parent=None, status="accepted", verdicts=(), reason=None):
    r = Rubric.new(text, parent=parent)
    r.status, r.verdicts, r.reason = status, list(verdicts), reason
    return r


def test_a_decomposition_separates_only_if_a_new_child_splits_the_samples():
    """rrd.summaries.decompositions, which compare_runs' set-health columns and the refine summary read."""
    p1 = node("p1", status="decomposed", verdicts=[True, True])
    kids1 = [node("p1 copy", p1, "dropped", [True, False]),  # dropped repeats never count, whatever their verdicts
             node("p1.a", p1, verdicts=[True, False])]
    p2 = node("p2", status="decomposed", verdicts=[True, True])
    kids2 = [node("p2.a", p2, verdicts=[True, True]), node("p2.b", p2, status="rejected", verdicts=[False, None])]
    p3 = node("p3", status="rejected", verdicts=[True, True], reason="failed_decomposition")
    rs = RubricSet(prompt="q", rubrics=[], weights=[], tree=[p1, *kids1, p2, *kids2, p3])
    # p1 and p2 gave new children; only p1's splits the samples (p2.b's one scored verdict is NO: nothing split)
    assert decompositions([rs.tree]) == (3, 2, 1)
    assert decompositions([rs.tree, rs.tree]).separating == 2
    text = refine_summary([{"accepted": [], "tree": [r.to_dict() for r in rs.tree], "stats": {}}],
                          SimpleNamespace(summary=lambda: "0 calls"))
    assert "decompositions: 3 parents, 2 gave a new child, 1 a child that separates the samples" in text
    health = compare_runs.set_health([rs])
    assert health["decomposition_success"] == pytest.approx(2 / 3)
    assert health["separating_decompositions"] == pytest.approx(1 / 3)


def test_rescoring_without_the_coarse_rubrics_uses_only_the_others():
    fine, coarse = node("fine", verdicts=[True, False]), node("coarse", verdicts=[True, True])
    rs = RubricSet(prompt="q", rubrics=[fine, coarse], weights=[0.5, 0.5], tree=[fine, coarse],
                   config={"refine": {"satisfy_threshold": 1}})
    assert coarse_rubrics.coarse_mask(rs) == [False, True]
    # A is ahead on the fine rubric and behind on the coarse one by more: B wins with both, A without the coarse one
    record = {"weights": [0.5, 0.5], "verdicts": [[0.6, 0.2], [0.5, 0.9]], "games": ["B"]}
    assert coarse_rubrics.rescored(record, [True, False])["games"] == ["A"]
    assert coarse_rubrics.rescored(record, [True, True])["games"] == ["B"]


def test_rubric_files_are_compared_on_the_prompts_every_file_holds(tmp_path):
    """A stopped refine (2 prompts) against a finished one (3): the finished file's third prompt, with a much larger
    set, must not enter its row, or the two rows describe different prompts."""
    def write(name, sizes):
        lines = [RubricSet.provided(f"q{i}", [f"r{i}.{k}" for k in range(n)], prompt_id=f"p{i}").to_json()
                 for i, n in enumerate(sizes)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        return tmp_path / name

    rows = compare_runs.compare({"before": write("before.jsonl", [1, 3, 20]), "after": write("after.jsonl", [2, 4])},
                                methods=[])
    assert [(r["run"], r["n"], r["median_rubrics"]) for r in rows] == [("before", 2, 2.0), ("after", 2, 3.0)]
    (tmp_path / "other.jsonl").write_text(RubricSet.provided("x", ["r"], prompt_id="px").to_json() + "\n")
    with pytest.raises(SystemExit, match="no prompt"):
        compare_runs.compare({"a": tmp_path / "before.jsonl", "b": tmp_path / "other.jsonl"}, methods=[])
