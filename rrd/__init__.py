"""RRD, the method: rubric records, the recursive decompose-filter loop, weights and scoring.

    rubric_set = await refine_prompt(prompt, judge, proposer, RefineConfig())
    score = rubric_set.score(await judge.grade(rubric_set.texts, response))

Imports judges only; nothing here knows about rewards, training or evaluation.
"""

from .config import PROFILES, RefineConfig, profile_config
from .records import Rubric, RubricSet, Sample, normalise, rubric_id
from .refine import refine_prompt
from .scoring import TieRule, compare, pair_credit, score_response
from .weights import (
    WeightResult,
    WhiteningConfig,
    edges,
    fisher_weights,
    llm_weights,
    uniform_weights,
    whitened_uniform_weights,
)

__all__ = [
    "PROFILES",
    "RefineConfig",
    "Rubric",
    "RubricSet",
    "Sample",
    "TieRule",
    "WeightResult",
    "WhiteningConfig",
    "compare",
    "edges",
    "fisher_weights",
    "llm_weights",
    "normalise",
    "pair_credit",
    "profile_config",
    "refine_prompt",
    "rubric_id",
    "score_response",
    "uniform_weights",
    "whitened_uniform_weights",
]
