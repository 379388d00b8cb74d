"""`rrd eval judgebench --limit 4` end to end against a real OpenAI-compatible server (llama-cpp-python serving
SmolLM2), interrupted with Ctrl-C and resumed. SmolLM2 judges at chance: nothing here asserts on its verdicts,
only that an interrupted-and-resumed run writes every result exactly once and the same report as a clean run.

tests/eval/data/judgebench_short4.jsonl holds the four shortest pairs of JudgeBench's gpt split (MIT), verbatim.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rrd.cli import main

PAIRS = Path(__file__).parent / "data" / "judgebench_short4.jsonl"
pytestmark = pytest.mark.server


def _argv(api_base: str, out: Path, cache: Path) -> list[str]:
    return ["eval", "judgebench", "--data", str(PAIRS), "--limit", "4", "--judge", "smollm2", "--api-base",
            api_base, "--method", "direct,rrd-wu", "--rubric-samples", "item", "--pairwise-max-tokens", "48",
            "--max-rejections", "2", "--max-depth", "1", "--proposer-max-tokens", "96", "--sample-max-tokens", "64",
            "--item-concurrency", "2",
            "--out", str(out), "--cache-path", str(cache)]


def _results(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def _report_body(out: Path) -> str:
    """The report from "Judge" to "## Cost": the command line names the folder, and calls/seconds depend on what
    the interrupted run had already cached, which is the point of resuming."""
    text = (out / "report.md").read_text()
    return text[text.index("Judge / grader"): text.index("## Cost")]


def test_eval_judgebench_interrupted_and_resumed_matches_a_clean_run(llama_server, tmp_path):
    clean = tmp_path / "clean"
    assert main(_argv(llama_server, clean, tmp_path / "clean.sqlite")) == 0
    records = _results(clean)
    assert sorted((r["method"], r["item_id"]) for r in records) == sorted(
        (m, json.loads(x)["pair_id"]) for m in ("direct", "rrd-wu") for x in PAIRS.read_text().splitlines())
    assert all(len(r["games_by_mode"]["hard"]) == (2 if r["method"] == "direct" else 1) for r in records)
    assert all(len(r["games"]) == 1 for r in records)  # soft (default): the direct judge's games become one verdict
    assert all(r["judge"] == "smollm2" and r["usage"]["calls"] >= 1 for r in records if r["method"] == "direct")
    assert "| direct | 2 | 4 |" in _report_body(clean) and "| rrd-wu | 1 | 4 |" in _report_body(clean)
    # the HTML view and the item texts it shows are written beside the report by default
    assert len((clean / "items.jsonl").read_text().splitlines()) == 4 and (clean / "view.html").exists()

    resumed = tmp_path / "resumed"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    # SIGINT back to its default in the child: a test run started in the background (`pytest &`) inherits it
    # ignored, and the command rightly keeps ignoring it then
    proc = subprocess.Popen([sys.executable, "-m", "rrd.cli", *_argv(llama_server, resumed, tmp_path / "r.sqlite")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    results = resumed / "results.jsonl"
    while not (results.exists() and results.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C mid-run, with calls in flight
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    stopped_after = time.monotonic() - t0
    partial = _results(resumed)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    # within seconds, not after the rest of the run (a lost cancellation used to let it go on to the end);
    # generous for a loaded 2-core machine, still far below the minutes the remaining work takes
    assert stopped_after < 30, stopped_after
    assert 1 <= len(partial) < 8

    assert main(_argv(llama_server, resumed, tmp_path / "r.sqlite")) == 0
    final = _results(resumed)
    keys = [(r["method"], r["item_id"]) for r in final]
    assert len(keys) == len(set(keys)) == 8  # every (method, pair) once: nothing judged twice
    assert final[: len(partial)] == partial  # what was written before Ctrl-C is kept as it was
    assert _report_body(resumed) == _report_body(clean)
