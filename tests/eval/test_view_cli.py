"""`rrd view` on each kind of PATH, and `rrd eval` writing items.jsonl and view.html by default."""

from __future__ import annotations

import json

from eval.view import run_page
from rrd.cli import main
from tests.eval.test_view_browser import _eval_run
from tests.rrd.test_view import tree_set


def _data(html: str) -> dict:
    return json.loads(html.split('<script type="application/json" id="data">')[1].split("</script>")[0])


def test_view_of_a_rubrics_file_and_of_a_verdicts_file(tmp_path, capsys):
    rs = tree_set()
    rubrics = tmp_path / "rubrics.jsonl"
    rubrics.write_text(rs.to_json() + "\n")
    assert main(["view", str(rubrics)]) == 0
    page = tmp_path / "rubrics.html"
    assert capsys.readouterr().out.strip() == str(page)
    assert [s["prompt_id"] for s in _data(page.read_text())["sets"]] == ["p1"]

    verdicts = tmp_path / "verdicts.jsonl"
    verdicts.write_text(json.dumps({"pair_id": "x", "prompt_id": "p1", "rubric_set": rs.content_hash,
                                    "score_A": 1.0, "score_B": 0.4, "verdict": "A", "tie_break": None,
                                    "label": "B", "verdicts_A": [[True, 0.9], [True, None]],
                                    "verdicts_B": [[False, 0.1], [True, None]]}) + "\n")
    assert main(["view", str(verdicts)]) == 2
    assert "give --rubrics" in capsys.readouterr().err
    assert main(["view", str(verdicts), "--rubrics", str(rubrics), "--out", str(tmp_path / "v.html")]) == 0
    item = _data((tmp_path / "v.html").read_text())["items"][0]
    assert item["prompt"] == rs.prompt and item["methods"]["rubrics"]["verdicts"] == [[True, True], [False, True]]
    assert item["methods"]["rubrics"]["set"] == rs.content_hash


def test_view_refuses_what_it_cannot_show(tmp_path, capsys):
    other = tmp_path / "prompts.jsonl"
    other.write_text('{"prompt": "hi"}\n')
    assert main(["view", str(other)]) == 2
    assert "neither rubric sets" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["view", str(tmp_path / "empty")]) == 2
    assert "no results.jsonl records" in capsys.readouterr().err


async def test_eval_folder_page_joins_records_items_and_sets(tmp_path):
    page = await _eval_run(tmp_path)
    data = _data(page.read_text())
    assert {i["id"] for i in data["items"]} == {f"q{i}" for i in range(6)}
    q0 = next(i for i in data["items"] if i["id"] == "q0")
    assert q0["prompt"] == "Question 0?" and len(q0["responses"]) == 2  # from OUT/items.jsonl
    assert q0["methods"]["direct"]["verdict"] == "tie"  # always-A judge: the two games cancel
    keys = {s["key"] for s in data["sets"]}
    assert q0["methods"]["conditioned"]["set"] in keys
    assert data["run"]["summary"]["direct"]["n"] == 6 and data["run"]["plots"]
    (tmp_path / "out" / "items.jsonl").unlink()  # an older run folder: texts missing, the rest still shown
    assert _data(run_page(tmp_path / "out"))["items"][0]["prompt"] == ""


def test_later_lines_supersede_and_items_merge_across_runs(tmp_path):
    from eval.judging import ItemResponses
    from eval.view import write_items

    old, new = tree_set(), tree_set()
    new.prompt = "A re-refined prompt"
    rubrics = tmp_path / "r.jsonl"
    rubrics.write_text(old.to_json() + "\n" + new.seal().to_json() + "\n")
    assert main(["view", str(rubrics)]) == 0
    assert [s["prompt"] for s in _data((tmp_path / "r.html").read_text())["sets"]] == ["A re-refined prompt"]

    write_items(tmp_path, [ItemResponses("a", "first", ["x", "y"]), ItemResponses("b", "second", ["x", "y"])])
    write_items(tmp_path, [ItemResponses("b", "second, again", ["x", "y"])])  # a resumed run with --limit 1
    rows = [json.loads(x) for x in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert [(r["id"], r["prompt"]) for r in rows] == [("a", "first"), ("b", "second, again")]


async def test_rm_bench_page_shows_each_comparison_and_the_top_scored_response(tmp_path):
    from eval.runner import EvalConfig
    from tests.eval.test_eval_run import _models, _run
    from tests.eval.test_reward_benches import REFINE

    rows = [{"id": 0, "prompt": "Question?", "chosen": [f"CORRECT result {s}" for s in "abc"],
             "rejected": [f"wrong result {s}" for s in "abc"]}]
    (tmp_path / "chat_filtered.json").write_text(json.dumps(rows))
    config = EvalConfig(bench="rm-bench", out_dir=tmp_path / "out", methods="direct,conditioned",
                        data=str(tmp_path / "chat_filtered.json"), rubric_samples="item", refine=REFINE)
    await _run(config, _models()[0])
    methods = _data(run_page(config.out_dir))["items"][0]["methods"]
    assert methods["direct"]["note"].count(" vs ") == 9 and methods["direct"]["note"].startswith("0 vs 3: A, B")
    assert methods["conditioned"]["verdict"] in (0, 1, 2)  # a chosen response has the top rubric score
