"""GRPO training with rubric rewards: configs, prompt-set preparation, rubric precompute, reward curves.

Names load lazily so `rrd --help` (which imports rft.cli) does not pull in torch, trl or datasets.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "TrainConfig": "config", "PolicyConfig": "config", "DataConfig": "config", "RubricsConfig": "config",
    "RewardConfig": "config", "ConfigError": "config", "DR_GRPO_DEFAULTS": "config", "load_config": "config",
    "config_from_dict": "config", "apply_overrides": "config",
    "PromptSet": "prompts", "prepare_prompts": "prompts", "select_prompts": "prompts",
    "RubricIndex": "precompute", "ensure_rubric_sets": "precompute",
    "RewardCurveCallback": "curves", "plot_curves": "curves",
    "TrainResult": "train", "resolve_grpo_args": "train",  # the entry point itself: rft.train.train
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
