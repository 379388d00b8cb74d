"""bench/bench_quickstart.py on the embedded 135M model (a code path check: its verdicts are never asserted)."""

from __future__ import annotations

import pytest

from tests.scripts import load_script


def _bench():
    return load_script("bench/bench_quickstart.py")


@pytest.mark.usefixtures("smollm2_gguf")
def test_one_timed_refine_says_where_its_time_went():
    bench = _bench()
    run = bench.run_once(["--judge", "local:smollm2-135m", "--n-samples", "2", "--max-rejections", "2",
                          "--sample-max-tokens", "48", "--max-depth", "0", "--initial-mode", "joint"])
    assert run["calls"] > 0 and run["evaluated_tokens"] <= run["prompt_tokens"]
    assert 0 < run["peak_rss_gb"] < 24
    stages = run["stages"]
    assert {"sampling", "initial"} <= set(stages)  # grading too, if the 135M model wrote a readable list
    assert sum(s["seconds"] for s in stages.values()) <= run["wall_s"]  # waited inside the process's wall time
    assert list(stages) == sorted(stages, key=lambda k: -stages[k]["seconds"])
    row = bench.table([{"variant": "x", **run}]).splitlines()[-1]
    assert row.startswith("| x | ") and f"initial {stages['initial']['seconds']:.0f} (" in row


@pytest.mark.usefixtures("smollm2_gguf")
def test_several_prompts_are_summed_and_their_rubrics_listed():
    bench = _bench()
    run = bench.run_once(["--judge", "local:smollm2-135m", "--n-samples", "2", "--max-rejections", "1",
                          "--sample-max-tokens", "24", "--max-depth", "0", "--initial-mode", "joint"], prompts=2)
    counts = run["rubrics_per_prompt"]
    assert len(counts) == 2 and run["rubrics"] == sum(counts)
    assert f"| {sum(counts)} ({counts[0]}+{counts[1]}) |" in bench.table([{"variant": "x", **run}])
