"""Talking to models: one async Judge over API (litellm) and in-process (transformers) backends.

Grades plain criterion strings; knows nothing of rubrics. See judges.judge.Judge.
"""

from .accounting import Accounting, BudgetExceeded
from .cache import CompletionCache
from .judge import DEFAULT_JUDGE, GradeItem, Judge, JudgeConfig, make_backend
from .types import (Completion, Message, PairVerdict, Request, SamplingParams, TokenLogprobs, Usage, Verdict, flip,
                    verdict_value)

__all__ = [
    "Accounting",
    "BudgetExceeded",
    "Completion",
    "CompletionCache",
    "DEFAULT_JUDGE",
    "GradeItem",
    "Judge",
    "JudgeConfig",
    "Message",
    "PairVerdict",
    "Request",
    "SamplingParams",
    "TokenLogprobs",
    "Usage",
    "Verdict",
    "flip",
    "make_backend",
    "verdict_value",
]
