"""bench/bench_engine_replay.py on the embedded 135M model (a code path check: its answers are never asserted)."""

from __future__ import annotations

import json

import pytest

from tests.scripts import load_script


@pytest.mark.usefixtures("smollm2_gguf")
def test_a_recorded_refine_replays_the_same_batches(tmp_path):
    bench = load_script("bench/bench_engine_replay.py")
    out = tmp_path / "batches.json"
    bench.record(out, 1, ["--judge", "local:smollm2-135m", "--n-samples", "2", "--max-rejections", "1",
                          "--sample-max-tokens", "24", "--max-depth", "0", "--initial-mode", "joint"])
    batches = json.loads(out.read_text())["batches"]
    assert batches and {b["model"] for b in batches} == {"smollm2-135m"}
    requests = [r for b in batches for r in b["requests"]]
    assert all(r["messages"] and "max_tokens" in r["params"] for r in requests)
    result = bench.replay(out, bench.ROOT)
    assert result["batches"] == len(batches) and result["seconds"] > 0
    assert result["decoded_tokens"] >= len(requests) and result["evaluated_tokens"] > 0
