"""rrd.pool.Models, the one place a run's Judges are built: one accounting and budget, and one rule for a sampler
name, whether the CLI built the models or a library call (training's on-the-fly refinement) handed in two Judges."""

from __future__ import annotations

import pytest

from judges import Judge, JudgeConfig
from rrd.config import RefineConfig
from rrd.pool import Models


def test_build_shares_accounting_and_the_tighter_budget():
    models = Models.build(JudgeConfig(model="gpt-4o-mini", cache=False, budget_usd=5),
                          JudgeConfig(model="gpt-4o", cache=False, budget_usd=2),
                          RefineConfig(samplers=["gpt-4o", "claude-x"], strong_model="gpt-4o-mini"))
    assert models.judge.accounting is models.proposer.accounting
    assert models.samplers["gpt-4o"] is models.proposer and models.samplers["gpt-4o-mini"] is models.judge
    assert models.samplers["claude-x"].accounting is models.judge.accounting
    assert models.judge.accounting.budget_usd == pytest.approx(2)
    assert models.owned == [models.judge, models.proposer, models.samplers["claude-x"]]


def test_a_sampler_name_reaches_the_same_model_from_the_cli_and_from_a_library_call():
    judge_cfg = JudgeConfig(model="grader", api_base="http://127.0.0.1:9/v1", cache=False)
    proposer_cfg = JudgeConfig(model="writer", api_base="http://127.0.0.1:8/v1", cache=False, concurrency=3)
    refine = RefineConfig(samplers=["other"])
    from_cli = Models.build(judge_cfg, proposer_cfg, refine).sampler("other")
    # what refine_prompt does with the two Judges a reward function holds (rewards.sources)
    from_library = Models(Judge(judge_cfg), Judge(proposer_cfg)).sampler("other")
    for built in (from_cli, from_library):
        assert built.config.model == "other" and built.config.api_base is None and built.config.concurrency == 3


def test_samples_come_from_the_proposer_unless_samplers_are_named():
    models = Models.build(JudgeConfig(model="grader", cache=False), JudgeConfig(model="writer", cache=False),
                          RefineConfig(strong_model="strong"))
    assert "strong" in models.samplers  # built for the misalignment reference only
    assert models.sampler_names(RefineConfig(strong_model="strong")) == ["writer"]
    assert models.sampler_names(RefineConfig(samplers=["a", "b"])) == ["a", "b"]
