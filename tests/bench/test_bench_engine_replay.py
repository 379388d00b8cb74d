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
    recorded = json.loads(out.read_text())
    assert recorded["batches"] and {b["model"] for b in recorded["batches"]} == {"smollm2-135m"}
    first = recorded["batches"][0]["requests"]  # the samples and references, drawn together
    assert len(first) >= 2 and all({"messages", "params"} <= set(r) for r in first)
    result = bench.replay(out, bench.ROOT)
    assert result["batches"] == len(recorded["batches"]) and result["seconds"] > 0
    assert 0 < result["evaluated_tokens"] and 0 < result["decoded_tokens"]
