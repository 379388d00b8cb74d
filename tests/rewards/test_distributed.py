"""Online WU over a rollout group split across two real processes (torch.distributed, gloo, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rrd.weights import whitened_uniform_weights
from tests.rewards.test_reward_func import GROUP, _matrix

ROOT = Path(__file__).resolve().parents[2]


def test_online_wu_gathers_a_group_split_across_two_processes(tmp_path):
    pytest.importorskip("torch.distributed")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.rewards.dist_worker", str(tmp_path / "pg"), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    w = whitened_uniform_weights(_matrix(GROUP)).weights
    # rank 0 holds only 2 rows (alone it would fall back to stored 0.25 weights); gathered, both ranks use WU
    assert r0 == pytest.approx([w[:3].sum(), w[3]])
    assert r1 == pytest.approx([w[:3].sum() + w[3], 0.0, w[:3].sum(), w[3]])
