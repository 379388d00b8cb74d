"""Two CPU processes under `accelerate launch` (gloo): a GRPO run whose rollout group straddles both processes,
with online whitened-uniform weights pooled across them.

Why `--multi_gpu` on a CPU-only machine: `accelerate launch --cpu --num_processes 2` starts ONE process unless it is
given an MPI hostfile (its CPU multi-process path is mpirun); `--multi_gpu` goes through torchrun, and with no GPU
visible (GRPOConfig use_cpu=auto -> True) accelerate sets up MULTI_CPU with the gloo backend.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rft.curves import read_log
from tests.rft.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_online_wu(tmp_path, tiny_policy):
    pytest.importorskip("torch.distributed")
    # 4 rollouts per prompt, 2 per process: each process alone has 2 rows (< wu_min_rows 3, so it would fall back
    # to stored weights); only the gathered group of 4 can be whitened.
    raw = tiny_config(tmp_path, tiny_policy, per_device_train_batch_size=2, max_steps=2, save_steps=10)
    raw["torch_threads"] = 1
    raw["reward"] = {"weights": "online_wu", "wu_min_rows": 3, "log_criteria": 2}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "CUDA_VISIBLE_DEVICES": "",  # CPU processes (gloo) even on a GPU machine
           "HF_HOME": str(tmp_path / "hf")}  # no user accelerate default_config.yaml: only the flags below count
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "--main_process_port", str(_free_port()),
         "-m", "tests.rft.dist_train_worker", str(cfg), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["finished"] and rank["steps"] == 2
        assert len(rank["calls"]) == 2  # one reward call per step
        for call in rank["calls"]:
            assert call["world"] == 2
            assert list(call["local"].values()) == [2]  # this process's half of the group
            assert list(call["pooled"].values()) == [4]  # the whole group after the gather
    records = [r for r in read_log(tmp_path / "out" / "train_log.jsonl") if "reward" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert all("rubric/wu_fallback_frac" in r for r in records)
    assert (tmp_path / "out" / "checkpoint-final" / "model.safetensors").is_file()
