"""Rubric rewards for verl (https://github.com/volcengine/verl): `compute_score` for its NaiveRewardManager (one
sample a call) and `compute_score_batch` for its BatchRewardManager, scored exactly as the TRL reward scores
(rewards.RubricReward: the prompt's refined rubric set, one grading call per rubric, the same verdict rule).

verl loads a custom reward function by module path and passes `reward_kwargs` to it; point both at this module
and at a settings file (the pkg:// form imports the installed package, so this module's own imports resolve):

    custom_reward_function:             # verl's reward config (reward.custom_reward_function in recent versions)
      path: pkg://rewards.verl
      name: compute_score               # or compute_score_batch with the batch reward manager
      reward_kwargs:
        config: /path/to/rrd_reward.yaml

The settings file (YAML; `RRD_VERL_CONFIG` names it when reward_kwargs does not):

    judge: {model: gpt-4o-mini, api_key_env: OPENAI_API_KEY, cache_path: ..., ...}   # JudgeConfig fields
    rubrics: rubrics.jsonl               # rrd refine's output, relative to this file (or the short form)
    reward: {score: soft, weights: stored}                                          # RubricRewardConfig fields
    prompt_keys: [prompt, question]      # where in extra_info the prompt is (verl passes no prompt of its own)
    unscored_score: 0.0                  # the float verl gets where no rubric could be scored

verl needs a float for every sample. Where the TRL reward returns None (every verdict of the sample unscored: the
judge failed or could not be read), this returns `unscored_score`, never raises, and counts it (a warning every
100). A spent budget (BudgetExceeded) is raised: training on made-up rewards would be worse than stopping. A
sample whose prompt has no rubric set, or whose extra_info holds no prompt, is a data error and raises.

One RubricReward is kept per settings file in each process that scores (verl calls a plain function, so there is
no object of ours to hold it): judges, cache and event loop live as long as the process.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from judges.judge import Judge, judge_config_from_mapping
from judges.settings import ConfigError, check_keys, config_from_mapping, yaml_load

from rrd.records import prompt_key

from .config import RubricRewardConfig
from .rubric_reward import RubricReward
from .text import prompt_text

log = logging.getLogger(__name__)
CONFIG_ENV = "RRD_VERL_CONFIG"


@dataclass
class VerlRewardSettings:
    """What rewards.verl reads from its settings file."""

    judge: Any
    rubrics: str
    reward: RubricRewardConfig = field(default_factory=RubricRewardConfig)
    prompt_keys: list[str] = field(default_factory=lambda: ["prompt", "question", "problem"])
    unscored_score: float = 0.0

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VerlRewardSettings:
        source = str(path)
        try:
            raw = yaml_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source}: settings file not found") from None
        check_keys(raw, [f for f in cls.__dataclass_fields__], "top level", source)
        if not isinstance(raw.get("rubrics"), str):
            raise ConfigError(f"{source}: 'rubrics' must be the path of a rubrics file")
        keys = raw.get("prompt_keys", cls.__dataclass_fields__["prompt_keys"].default_factory())  # type: ignore[misc]
        if isinstance(keys, str):
            keys = [keys]
        rubrics = Path(raw["rubrics"])  # relative to the settings file: verl's working directory varies
        return cls(judge=judge_config_from_mapping(raw.get("judge"), "judge", source),
                   rubrics=str(rubrics if rubrics.is_absolute() else Path(source).parent / rubrics),
                   reward=config_from_mapping(RubricRewardConfig, raw.get("reward"), "reward", source),
                   prompt_keys=list(keys), unscored_score=float(raw.get("unscored_score", 0.0)))


class VerlReward:
    """The scorer behind compute_score: a RubricReward over the settings' judge and rubric sets."""

    def __init__(self, settings: VerlRewardSettings):
        self.settings = settings
        self.judge = Judge(settings.judge)
        self.reward = RubricReward(self.judge, settings.rubrics, settings.reward)
        self.scored = 0
        self.unscored = 0
        self._lock = threading.Lock()

    def prompt_of(self, extra_info: Any, index: int = 0) -> str:
        info = extra_info if isinstance(extra_info, dict) else {}
        for key in self.settings.prompt_keys:
            value = info.get(key)
            if isinstance(value, str) and value.strip():
                return value
            if isinstance(value, list) and value:  # a chat prompt: the reward reads its last user turn
                return value  # type: ignore[return-value]
        raise ValueError(f"rewards.verl: sample {index} has no prompt in extra_info (looked for "
                         f"{self.settings.prompt_keys}; set prompt_keys in the settings file, and put the prompt "
                         f"in extra_info when preparing the data)")

    def scores(self, solution_strs: Sequence[str], extra_infos: Sequence[Any]) -> list[float]:
        prompts = [self.prompt_of(info, i) for i, info in enumerate(extra_infos)]
        missing = [i for i, p in enumerate(prompts) if prompt_key(prompt_text(p)) not in self.reward.sets]
        if missing:  # before any call: a prompt with no set could only ever get unscored_score
            raise ValueError(f"rewards.verl: no rubric set for the prompt of sample {missing[0]} in "
                             f"{self.settings.rubrics} ({len(missing)} of {len(prompts)} samples); refine them "
                             "first with `rrd refine`")
        rewards = self.reward.sync_reward(prompts, list(solution_strs))
        out = [self.settings.unscored_score if r is None else float(r) for r in rewards]
        with self._lock:
            before = self.unscored // 100
            self.unscored += sum(r is None for r in rewards)
            self.scored += sum(r is not None for r in rewards)
            if self.unscored // 100 > before:
                log.warning("rewards.verl: %d of %d samples so far had no scored rubric (judge failures or "
                            "unreadable answers) and got unscored_score=%s", self.unscored,
                            self.unscored + self.scored, self.settings.unscored_score)
        return out


_REWARDS: dict[str, VerlReward] = {}
_REWARDS_LOCK = threading.Lock()


def reward_for(config: str | os.PathLike[str] | None = None) -> VerlReward:
    """The process's VerlReward for a settings file (`config`, else $RRD_VERL_CONFIG), built on first use."""
    path = config or os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"rewards.verl needs its settings file: reward_kwargs {{config: PATH}} or ${CONFIG_ENV}")
    key = str(Path(path).resolve())
    with _REWARDS_LOCK:
        if key not in _REWARDS:
            _REWARDS[key] = VerlReward(VerlRewardSettings.load(path))
        return _REWARDS[key]


def compute_score(data_source: Any, solution_str: str, ground_truth: Any, extra_info: Any = None, *,
                  config: str | None = None, **_: Any) -> float:
    """verl's per-sample reward function (NaiveRewardManager): the rubric score of `solution_str` for the prompt
    in `extra_info`. data_source and ground_truth are verl's and not used: rubrics stand in for a reference."""
    return reward_for(config).scores([solution_str], [extra_info])[0]


def compute_score_batch(data_sources: Sequence[Any], solution_strs: Sequence[str], ground_truths: Sequence[Any],
                        extra_infos: Sequence[Any] | None = None, *, config: str | None = None,
                        **_: Any) -> list[float]:
    """verl's batch reward function (BatchRewardManager): one float per sample, graded in one batch of calls."""
    infos = list(extra_infos) if extra_infos is not None else [{} for _ in solution_strs]
    return reward_for(config).scores(list(solution_strs), infos)
