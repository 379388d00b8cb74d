"""`rrd judge` and `rrd eval pairs` score pairs with one scorer (rrd.grading): the same pairs against the same
rubric sets, over a real HTTP server, give the same per-pair scores and verdicts in both score modes."""

from __future__ import annotations

import json
import math

from rrd.cli import main
from rrd.records import load_rubric_sets, prompt_key
from tests.loopback_server import LoopbackServer
from tests.rrd.test_cli import EXAMPLES, _yes_if_in_response


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_rrd_judge_and_rrd_eval_give_the_same_per_pair_scores(tmp_path, capsys):
    rubrics = tmp_path / "rubrics.jsonl"
    rubrics.write_text(open("examples/rubrics.jsonl").read())
    sets = load_rubric_sets(str(rubrics))
    # rrd eval keeps its sets per method, keyed by the prompt: give it the same sets there, so it refines nothing
    stored = tmp_path / "eval" / "rubrics" / "rrd-uniform.jsonl"
    stored.parent.mkdir(parents=True)
    stored.write_text("".join(json.dumps({**rs.to_dict(), "prompt_id": prompt_key(rs.prompt)}) + "\n"
                              for rs in sets.values()))
    with LoopbackServer(_yes_if_in_response) as server:
        common = ["--judge", "grader", "--api-base", server.api_base, "--cache-path", str(tmp_path / "c.sqlite")]
        assert main(["judge", EXAMPLES, "--rubrics", str(rubrics), "--out", str(tmp_path / "v.jsonl"), *common]) == 0
        sent = len(server.requests)
        assert main(["eval", "pairs", "--data", EXAMPLES, "--method", "rrd-uniform", "--out", str(tmp_path / "eval"),
                     *common]) == 0
        assert len(server.requests) == sent  # every verdict came from the cache: the same grading requests
    capsys.readouterr()
    judged = {r["pair_id"]: r for r in _lines(tmp_path / "v.jsonl")}
    evaluated = {r["item_id"]: r for r in _lines(tmp_path / "eval" / "results.jsonl") if r.get("method") == "rrd-uniform"}
    assert set(judged) == set(evaluated) and len(judged) == 6
    soft_scores = set()
    for pair_id, j in judged.items():
        e = evaluated[pair_id]
        assert j["rubric_set"] == sets[j["prompt_id"]].content_hash
        assert all(math.isclose(a, b) for a, b in zip(j["scores"], e["scores"], strict=True))
        assert j["games_by_mode"] == e["games_by_mode"] and j["verdicts"] == e["verdicts"]
        soft_scores.update(j["scores"])
    assert len(soft_scores) > 2  # P(YES) scores, not only 0 and 1: the soft reading was compared
