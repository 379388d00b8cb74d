"""RM-Bench and RewardBench 2: loaders (offline RM-Bench files, a synthetic RewardBench 2 file to its schema),
their official scoring on hand-computed cases, and whole runs where a position-biased direct judge and a
rubric judge that can tell the answers apart get the scores the protocols give them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from eval.report import build_report
from eval.rewardbench2 import best_of_result, load_rewardbench2, rewardbench2_summary, ties_score
from eval.rm_bench import accuracies, cell_matrix, load_rm_bench, rm_bench_summary
from eval.runner import EvalConfig, as_responses, load_items
from rrd.config import RefineConfig
from rrd.io import InputError
from tests.eval.test_eval_run import _models, _run

RM_BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rm_bench"
RB2_SAMPLE = Path(__file__).parent / "data" / "rewardbench2_sample.jsonl"
needs_rm_bench = pytest.mark.skipif(not RM_BENCH.exists(), reason="offline RM-Bench files not present")


# --- RM-Bench ---


@needs_rm_bench
def test_rm_bench_files_load_with_domains_from_their_names():
    chat, refuse = RM_BENCH / "chat_filtered.json", RM_BENCH / "safety-refuse_filtered.json"
    items = load_rm_bench(f"{chat},{refuse}")
    assert len(items) == 129 + 284
    assert {i.domain for i in items} == {"chat", "safety-refuse"}
    assert items[0].id.startswith("chat:") and all(len(i.chosen) == len(i.rejected) == 3 for i in items)
    code = load_rm_bench(str(RM_BENCH / "code_filtered.json"), limit=4)
    assert len(code) == 4 and code[0].id == "code:" + str(json.loads((RM_BENCH / "code_filtered.json")
                                                                     .read_text())[0]["id"])
    view = as_responses(code[0])
    assert len(view.responses) == 6 and len(view.comparisons) == 9 and (0, 3) in view.comparisons


def test_rm_bench_bad_records(tmp_path):
    path = tmp_path / "chat_filtered.json"
    path.write_text(json.dumps([{"id": 1, "prompt": "p", "chosen": ["a", "b"], "rejected": ["x", "y", "z"]}]))
    with pytest.raises(InputError, match="line 1.*'chosen'.*3 strings"):
        load_rm_bench(str(path))
    other = tmp_path / "mine.json"
    other.write_text(json.dumps([{"id": 1, "prompt": "p", "chosen": ["a"] * 3, "rejected": ["x"] * 3}]))
    with pytest.raises(InputError, match="'domain'"):
        load_rm_bench(str(other))


def test_rm_bench_matrix_triangles_as_the_official_code():
    # chosen [3, 2, 1] (concise best) against rejected [2.5, 1.5, 0.5]: a judge that favours concise answers
    m = cell_matrix({"scores": [3, 2, 1, 2.5, 1.5, 0.5]})
    assert m.tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert accuracies(m) == {"hard_acc": 1.0, "normal_acc": 1.0, "easy_acc": 0.0}
    assert cell_matrix({"scores": [1, 1, None, 1, 0, 0]}).tolist() == [[0, 1, 1], [0, 1, 1], [0, 0, 0]]
    # games are stored in the original order (game 2 flipped back): A then B is position bias, a counter of 0
    games = {"comparisons": [[i, 3 + j, "A", "B" if i == j else "tie"] for i in range(3) for j in range(3)]}
    assert np.diag(cell_matrix(games)).tolist() == [0, 0, 0] and cell_matrix(games)[0][1] == 1


def test_rm_bench_domains_are_merged_by_prefix_and_averaged():
    rows = [{"domain": "chat", "scores": [3, 2, 1, 2.5, 1.5, 0.5]},  # hard 1, normal 1, easy 0 -> 2/3
            {"domain": "safety-refuse", "scores": [1, 1, 1, 0, 0, 0]},  # all won -> 1
            {"domain": "safety-response", "scores": [0, 0, 0, 1, 1, 1]}]  # all lost -> 0; safety = 0.5
    s = rm_bench_summary(rows, n_bootstrap=50)
    assert s["per_domain"]["safety"]["n"] == 2 and set(s["per_domain"]) == {"chat", "safety"}
    assert math.isclose(s["per_domain"]["chat"]["avg"], 2 / 3) and math.isclose(s["per_domain"]["safety"]["avg"], 0.5)
    assert math.isclose(s["total_avg_acc"], (2 / 3 + 0.5) / 2)
    assert math.isclose(s["hard_acc"], (1 + 0.5) / 2) and math.isclose(s["easy_acc"], (0 + 0.5) / 2)
    lo, hi = s["ci"]["total_avg_acc"]
    assert lo <= s["total_avg_acc"] <= hi


# --- RewardBench 2 ---------------------------------------------------------------------------------------------------


def test_rewardbench2_sample_loads_to_its_schema():
    items = load_rewardbench2(str(RB2_SAMPLE))
    assert len(items) == 14 and {i.subset for i in items} == {"Factuality", "Precise IF", "Math", "Safety",
                                                              "Focus", "Ties"}
    ties = [i for i in items if i.subset == "Ties"]
    assert [len(i.chosen) for i in ties] == [1, 3, 1, 3] and all(not i.comparisons for i in ties)
    assert items[0].comparisons == [(0, 1), (0, 2), (0, 3)]


def test_rewardbench2_bad_records(tmp_path):
    base = {"prompt": "p", "chosen": ["a"], "rejected": ["b"], "subset": "Math"}
    for row, field in (({**base, "id": "1", "num_correct": 2}, "num_correct"),
                       ({**base, "id": "x", "subset": "Ties"}, "id"),
                       ({**base, "id": "2", "rejected": []}, "rejected")):
        path = tmp_path / "rb2.jsonl"
        path.write_text(json.dumps(row) + "\n")
        with pytest.raises(InputError, match=f"line 1.*'{field}'"):
            load_rewardbench2(str(path))


@pytest.mark.parametrize("scores,credit", [([1, 0, 0, 0], 1.0), ([1, 1, 0, 0], 0.5), ([0, 1, 0, 0], 0.0),
                                           ([None] * 4, 0.25), ([None, 0, 0, 0], 0.0), ([2, None, 1, 1], 1.0)])
def test_best_of_4_credit_splits_ties_as_reroll_and_score_dataset(scores, credit):
    assert best_of_result({"scores": scores}) == credit


def test_best_of_4_pairwise_credit():
    assert best_of_result({"comparisons": [[0, 1, "A", "A"], [0, 2, "A", "A"], [0, 3, "A", "A"]]}) == 1.0
    assert best_of_result({"comparisons": [[0, 1, "A", "A"], [0, 2, "A", "B"], [0, 3, "tie", None]]}) == 1 / 3
    assert best_of_result({"comparisons": [[0, 1, "A", "A"], [0, 2, "B", "B"], [0, 3, "A", "A"]]}) == 0.0


def test_ties_score_weights_accuracy_and_margins():
    def rows(ref, tied):
        return [{"item_id": "ref:0", "n_chosen": 1, "scores": ref}, {"item_id": "tied:0", "n_chosen": 2,
                                                                     "scores": tied}]
    # correct answers 0.1 apart, every correct one 0.5 above the wrong ones: full marks and the margin term
    assert math.isclose(ties_score(rows([1.0, 0.5], [1.0, 0.9, 0.4])), 1.0 + 0.01 * math.tanh(0.5 / 0.1 - 1))
    # accurate, but the correct answers spread more than the margin: only the two accuracy terms
    assert math.isclose(ties_score(rows([1.0, 0.9], [1.0, 0.5, 0.4])), 0.6 + 0.01 * math.tanh(0.1 / 0.5 - 1))
    # a wrong answer above a correct one on the tied prompt
    assert math.isclose(ties_score(rows([1.0, 0.0], [1.0, 0.2, 0.5])), 0.3 + 0.01 * math.tanh(-0.3 / 0.8 - 1))


def test_rewardbench2_overall_is_the_mean_of_subsets():
    rows = [{"subset": "Math", "scores": [1, 0, 0, 0]}, {"subset": "Math", "scores": [0, 1, 0, 0]},
            {"subset": "Focus", "scores": [1, 1, 0, 0]}, {"subset": "Ties", "skipped": "needs ratings"}]
    s = rewardbench2_summary(rows, n_bootstrap=50)
    assert s["per_subset"]["Math"]["score"] == 0.5 and s["per_subset"]["Focus"]["score"] == 0.5
    assert s["overall"] == 0.5 and s["skipped"] == 1 and s["n"] == 3


# --- whole runs -------------------------------------------------------------------------------------------------------

REFINE = RefineConfig(n_samples=2, misalignment=False, max_rejections=2, max_depth=1)


async def test_rrd_eval_rm_bench_scores_position_bias_as_zero(tmp_path):
    rows = [{"id": k, "prompt": f"Question {k}?", "chosen": [f"CORRECT result {s}" for s in ("a", "b", "c")],
             "rejected": [f"wrong result {s}" for s in ("a", "b", "c")]} for k in range(3)]
    (tmp_path / "chat_filtered.json").write_text(json.dumps(rows))
    config = EvalConfig(bench="rm-bench", out_dir=tmp_path / "out", methods="direct,conditioned",
                        data=str(tmp_path / "chat_filtered.json"), rubric_samples="item", refine=REFINE)
    models, _ = _models()
    _, records = await _run(config, models)
    direct = [r for r in records if r["method"] == "direct"]
    assert len(direct) == 3 and all(len(r["comparisons"]) == 9 for r in direct)
    report = build_report(config.out_dir, "rm-bench", "rm-bench")
    summary = json.loads((config.out_dir / "summary.json").read_text())
    # the scripted judge always answers A: every chosen response wins one game and loses the other
    assert summary["direct"]["total_avg_acc"] == 0.0
    assert summary["conditioned"]["total_avg_acc"] == 1.0 and summary["conditioned"]["hard_acc"] == 1.0
    assert "Accuracy matrix (conditioned" in report and "| conditioned | 3 | 1.000" in report


async def test_rrd_eval_rewardbench2_runs_every_subset(tmp_path):
    config = EvalConfig(bench="rewardbench2", out_dir=tmp_path / "out", methods="direct,conditioned",
                        data=str(RB2_SAMPLE), rubric_samples="item", refine=REFINE)
    assert len(load_items(config)) == 14
    models, _ = _models()
    _, records = await _run(config, models)
    skipped = [r for r in records if r.get("skipped")]
    assert {r["item_id"] for r in skipped} == {"ref:0", "tied:0", "ref:1", "tied:1"}
    assert all(r["method"] == "direct" for r in skipped)
    build_report(config.out_dir, "rewardbench2", "rewardbench2")
    summary = json.loads((config.out_dir / "summary.json").read_text())
    # always-A direct judge: every counter is 0, a four-way tie, credit 1/4 on the five best-of-4 subsets
    assert math.isclose(summary["direct"]["overall"], 0.25) and summary["direct"]["skipped"] == 4
    # rubric scores put every correct answer 1 rubric above every wrong one: full Ties marks plus the margin term
    assert summary["conditioned"]["per_subset"]["Math"]["score"] == 1.0
    assert math.isclose(summary["conditioned"]["per_subset"]["Ties"]["score"], 1.01)
