"""RubricRewardConfig (how verdicts become a reward) and StepGrading (one call's grading, shared by every reward
function built from one RubricReward)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from judges.settings import validate
from judges.types import ScoreMode, Verdict
from rrd.records import RubricSet
from rrd.weights import WhiteningConfig

WeightMode = Literal["stored", "uniform", "online_wu"]
Reward = float | None
LogExtra = Callable[[str, list], None]
LogMetric = Callable[[str, float], None]


@dataclass
class RubricRewardConfig:
    """How rubric verdicts become a reward. Every field has a sensible default for GRPO."""

    #: "soft" (default): P(yes), falling back to the hard verdict when there is none; "hard": 0/1 verdicts (the
    #: paper). An unreadable verdict is unscored either way (judges.verdict_value). Soft rewards vary within a
    #: group where hard ones tie, so fewer GRPO steps have zero reward variance
    score: ScoreMode = "soft"
    #: "stored": the RubricSet's weights; "uniform"; "online_wu": whitened-uniform over the rollout group
    weights: WeightMode = "stored"
    #: online_wu needs at least this many rows (completions of the prompt) or it falls back to stored weights
    wu_min_rows: int = 3
    whitening: WhiteningConfig = field(default_factory=WhiteningConfig)
    #: gather online-WU verdict rows across processes when torch.distributed is initialised
    distributed_gather: bool = True
    #: refine a prompt with RRD when it has no rubric set (needs a proposer Judge)
    refine_missing: bool = False
    #: rrd.config.RefineConfig for on-the-fly refinement (None: the paper's defaults)
    refine_config: Any = None
    #: bound on concurrent grade_many calls issued by this object (None: unbounded; the backend bounds calls)
    max_concurrency: int | None = None
    #: dataset column holding the rubric set per row (None: never read a column)
    rubric_column: str | None = "rubrics"
    #: dataset column holding the prompt id used to look up `sets` (falls back to prompt_key(prompt text))
    prompt_id_column: str | None = "prompt_id"
    #: dataset column whose text replaces the prompt text for lookup, refinement and include_prompt
    prompt_column: str | None = None
    #: name TRL logs the reward under (rewards/<name>/mean)
    name: str = "rubric_reward"
    #: per-criterion functions: how many (rubric_0 .. rubric_{K-1}); prompts with fewer rubrics get None
    max_criteria: int = 16
    #: log per-criterion-index pass rates as metrics rubric/pass_rate_c{k} for k < this (0: none)
    log_criteria: int = 8

    def __post_init__(self) -> None:
        validate(self)  # the Literal fields (judges.settings)
        if self.wu_min_rows < 2:
            raise ValueError(f"wu_min_rows must be >= 2, got {self.wu_min_rows}")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 or None, got {self.max_concurrency}")


@dataclass
class StepGrading:
    """One call's grading, shared by the aggregate reward and the per-criterion functions."""

    sets: list[RubricSet | None]  # per completion
    verdicts: list[list[Verdict]]  # per completion, aligned with sets[i].texts ([] where no set)
    values: list[list[float | None]]  # g_k per completion (hard or soft), None = unscored
    weights: list[list[float] | None]  # the weights actually used, per completion
    scores: list[Reward]
    wu_used: int = 0  # groups scored with online WU weights
    wu_fallback: int = 0  # groups that asked for online WU but used stored weights
