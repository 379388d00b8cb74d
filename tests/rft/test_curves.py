"""The reward-curve callback: JSONL log lines and an atomically replaced PNG, from synthetic TRL logs."""

from __future__ import annotations

import json
import math

from transformers import TrainerControl, TrainerState, TrainingArguments

from rft.curves import LOG_NAME, PLOT_NAME, RewardCurveCallback, plot_curves, read_log


def _logs(step: int) -> dict:
    return {
        "loss": 0.1, "reward": 0.5 + 0.01 * step, "reward_std": 0.2, "rewards/rubric_reward/mean": 0.5,
        "rubric/pass_rate": 0.4, "rubric/pass_rate_c0": 0.3, "rubric/pass_rate_c1": 0.6, "kl": float("nan"),
    }


def test_callback_writes_log_and_png(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    cb = RewardCurveCallback(tmp_path, title="synthetic")
    cb.on_train_begin(args, state, control)
    for step in range(1, 6):
        state.global_step = step
        cb.on_log(args, state, control, logs=_logs(step))
    state.global_step = 5
    cb.on_log(args, state, control, logs={"train_runtime": 12.0})  # the end-of-training summary has no reward
    cb.on_train_end(args, state, control)

    records = read_log(tmp_path / LOG_NAME)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 5]
    assert all(r["kl"] is None for r in records[:5])  # NaN is not JSON: written as null
    assert records[2]["reward"] == 0.53 and records[0]["peak_rss_mb"] > 0
    assert all("step_time_s" in r for r in records[:5]) and len(cb.step_times) == 5
    png = tmp_path / PLOT_NAME
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_non_main_process_writes_nothing(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    state = TrainerState(is_world_process_zero=False)
    cb = RewardCurveCallback(tmp_path)
    cb.on_log(args, state, TrainerControl(), logs=_logs(1))
    cb.on_train_end(args, state, TrainerControl())
    assert not (tmp_path / LOG_NAME).exists() and not (tmp_path / PLOT_NAME).exists()


def test_plot_needs_a_reward_and_tolerates_torn_lines(tmp_path):
    assert plot_curves([{"step": 1, "loss": 0.3}], tmp_path / "a.png") is False
    log = tmp_path / LOG_NAME
    log.write_text(json.dumps({"step": 1, "reward": 0.2, "reward_std": 0.1}) + "\n" + '{"step": 2, "rew')
    records = read_log(log)
    assert len(records) == 1 and math.isclose(records[0]["reward"], 0.2)
    assert plot_curves(records, tmp_path / "b.png") is True
