"""Rubric scores as reward functions for TRL GRPOTrainer and other trainers (built on rrd and judges)."""

from .rubric_reward import (
    RubricReward,
    RubricRewardConfig,
    StepGrading,
    completion_text,
    per_criterion_reward_funcs,
    prompt_text,
    rubric_reward_func,
    sync_reward,
)

__all__ = [
    "RubricReward",
    "RubricRewardConfig",
    "StepGrading",
    "completion_text",
    "per_criterion_reward_funcs",
    "prompt_text",
    "rubric_reward_func",
    "sync_reward",
]
