"""A real 3-step GRPO run on CPU: tiny random Llama policy, SmolLM2 judge through the rubric reward function."""

from __future__ import annotations

import math

from rft.config import config_from_dict
from rft.curves import read_log
from rft.train import FINAL_DIR, train
from tests.rft.conftest import tiny_config


def _finite_or_none(v) -> bool:
    return v is None or (isinstance(v, float) and math.isfinite(v))


def test_three_step_grpo_run(tmp_path, tiny_policy):
    cfg = config_from_dict(tiny_config(tmp_path, tiny_policy))
    result = train(cfg)

    assert result.steps == 3 and result.prompts == 4
    records = [r for r in read_log(result.train_log) if "reward" in r]
    assert [r["step"] for r in records] == [1, 2, 3]
    rewards = [r["reward"] for r in records]
    assert all(_finite_or_none(v) for v in rewards) and any(v is not None for v in rewards)
    assert all(_finite_or_none(r.get("rewards/rubric_reward/mean")) for r in records)
    assert all(r["rubric/no_rubric_set_frac"] == 0 for r in records)  # every prompt found its rubric set
    assert sum(r["rubric/judge_calls"] + r["rubric/judge_cache_hits"] for r in records) > 0  # the judge was called
    assert all(math.isfinite(r["loss"]) for r in records)
    assert (result.output_dir / "checkpoint-3" / "model.safetensors").is_file()
    assert (result.output_dir / FINAL_DIR / "model.safetensors").is_file()
    assert (result.output_dir / FINAL_DIR / "tokenizer_config.json").is_file()
    assert result.reward_curve.read_bytes()[:4] == b"\x89PNG"
    assert (result.output_dir / "train_config.yaml").is_file()
    assert result.seconds_per_step and result.seconds_per_step > 0 and result.peak_rss_mb > 0


def test_per_criterion_rewards_one_step(tmp_path, tiny_policy):
    raw = tiny_config(tmp_path, tiny_policy, max_steps=1, save_steps=10)
    raw["reward"] = {"per_criterion": True, "log_criteria": 2}
    result = train(config_from_dict(raw))
    (rec,) = [r for r in read_log(result.train_log) if "reward" in r]
    assert "rewards/rubric_0/mean" in rec and "rewards/rubric_1/mean" in rec  # K = the max rubric count (2)
    assert "rewards/rubric_2/mean" not in rec


async def test_trained_checkpoint_is_evaluated_as_a_policy(tmp_path, tiny_policy):
    """After training, `rrd eval biggen --policy local:OUTPUT/checkpoint-final` generates with the checkpoint
    (in-process transformers backend) and grades with a fixed grader; both models are recorded."""
    import json
    from pathlib import Path

    from eval.runner import EvalConfig, EvalRun, load_items
    from judges import Accounting, Judge, JudgeConfig
    from rrd.pool import Models
    from rrd.io import JsonlAppender
    from tests.fakes import ScriptedBackend

    result = train(config_from_dict(tiny_config(tmp_path, tiny_policy, max_steps=1, save_steps=10)))
    checkpoint = result.output_dir / FINAL_DIR
    policy = Judge(JudgeConfig(model=f"local:{checkpoint}", cache=False, local_dtype="float32"))
    grader = Judge(JudgeConfig(model="grader", cache=False),
                   backend=ScriptedBackend(lambda r: "Fine. [RESULT] 3", model="grader"), accounting=Accounting())
    data = tmp_path / "biggen.jsonl"
    rubric = {"criteria": "Is it good?", **{f"score{k}_description": f"level {k}" for k in range(1, 6)}}
    data.write_text(json.dumps({"id": "x_0", "capability": "planning", "task": "t", "instance_idx": 0,
                                "system_prompt": "Be brief.", "input": "Plan a picnic.",
                                "reference_answer": "Bring food.", "score_rubric": rubric}) + "\n")
    config = EvalConfig(bench="biggen", out_dir=tmp_path / "eval", data=str(data))
    config.policy.max_tokens = 8
    with JsonlAppender(config.out_dir / "results.jsonl") as out:
        summary = await EvalRun(config, Models(grader, grader, {}), policy).run(load_items(config), out)
    await policy.aclose()
    assert summary.written == 1 and not summary.errors
    (rec,) = [json.loads(x) for x in Path(config.out_dir / "results.jsonl").read_text().splitlines()]
    assert rec["policy"] == f"local:{checkpoint}" and rec["judge"] == "grader" and rec["score"] == 3
    (resp,) = [json.loads(x) for x in Path(config.out_dir / "responses.jsonl").read_text().splitlines()]
    assert resp["response"] is not None and resp["usage"]["completion_tokens"] > 0
