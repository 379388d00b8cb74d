"""bench/bench_check_answers.py: the checks it replays, and one run on the embedded 135M model (a code path check:
its verdicts are never asserted)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.scripts import load_script


def _bench():
    return load_script("bench/bench_check_answers.py")


def _sets(tmp_path: Path) -> Path:
    tree = [
        {"id": "a", "text": "Rubric A.", "status": "accepted"},
        {"id": "b", "text": "Rubric B.", "status": "rejected", "reason": "misaligned"},
        {"id": "c", "text": "Rubric C.", "status": "decomposed"},
        {"id": "d", "text": "Rubric D.", "status": "accepted"},
        {"id": "e", "text": "Rubric E.", "status": "rejected", "reason": "overlap"},
    ]
    path = tmp_path / "sets.jsonl"
    path.write_text(json.dumps({"tree": tree, "accepted": ["a", "d"]}) + "\n")
    return path


def test_checks_are_replayed_in_refine_order_against_the_rubrics_accepted_before(tmp_path: Path) -> None:
    bench = _bench()
    checks = bench.checks(_sets(tmp_path), 10)
    # A is checked against nothing (A empty), B is misaligned and C decomposed (never checked); D then E, each for
    # overlap then conflict, against what was accepted before them
    assert [(key, listed) for key, _, listed in checks] == [("overlaps", 1), ("conflicts", 1), ("overlaps", 2),
                                                            ("conflicts", 2)]
    last = checks[-1][1][-1]["content"]
    assert "1. Rubric A.\n2. Rubric D." in last and last.endswith("Candidate rubric: Rubric E.")
    assert len(bench.checks(_sets(tmp_path), 3)) == 3


@pytest.mark.usefixtures("smollm2_gguf")
def test_both_ways_run_and_the_given_opening_starts_every_answer(tmp_path: Path) -> None:
    bench = _bench()
    result = asyncio.run(bench.measure("smollm2-135m", bench.checks(_sets(tmp_path), 4)))
    assert result["checks"] == 4 and set(result["seconds_per_check"]) == {"decoded", "given"}
    assert 0.0 <= result["same_answer"] <= 1.0 and result["cpu"]
    assert result["given_start_with_opening"] == 1.0
