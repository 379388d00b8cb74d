"""Stage 3 of the method: the weights of the accepted rubrics (uniform, LLM importance scores, or whitened-uniform
over their verdicts on the samples)."""

from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from judges.types import Completion, Message

from . import prompts
from .config import RefineConfig
from .records import Rubric
from .weights import impute_unscored, llm_weights, uniform_weights, whitened_uniform_weights

Ask = Callable[[list[Message], int], Awaitable[Completion]]


async def accepted_weights(prompt: str, accepted: Sequence[Rubric], config: RefineConfig,
                           ask: Ask) -> tuple[list[float], str, str | None]:
    """(weights, scheme actually used, note) over the accepted rubrics; `ask(messages, max_tokens)` is the
    proposer call the "llm" scheme makes (an unreadable answer falls back to uniform, with the reason)."""
    m = len(accepted)
    if m == 0:
        return [], config.weight_scheme, "no accepted rubrics"
    scheme = config.weight_scheme
    if scheme == "uniform":
        return uniform_weights(m).tolist(), "uniform", None
    if scheme == "llm":
        completion = await ask(prompts.importance_weights(prompt, [r.text for r in accepted]),
                               config.check_max_tokens + 8 * m)
        scores = prompts.parse_scores(completion.text, m) if completion.ok else None
        if scores is None:
            why = completion.error or f"unparseable importance scores: {completion.text[:200]!r}"
            return uniform_weights(m).tolist(), "uniform", f"llm weights fell back to uniform: {why}"
        return llm_weights(scores).tolist(), "llm", None
    X, missing = impute_unscored(list(zip(*(r.verdicts for r in accepted))), empty_fill=0.0)
    result = whitened_uniform_weights(X, config.whitening)
    notes = [n for n in (result.fallback_reason, f"{missing} unscored cells imputed" if missing else None) if n]
    return result.weights.tolist(), result.scheme, "; ".join(notes) or None
