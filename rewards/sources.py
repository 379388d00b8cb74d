"""Where a completion's rubric set comes from, in this order: a dataset column (`rubric_column`: a RubricSet
dict, the short form {"rubrics": [...], "weights": [...]}, a list of rubric strings, or any of these as a JSON
string); the `sets` mapping by the `prompt_id_column` value; the `sets` mapping by rrd.records.prompt_key
(prompt text); finally, with refine_missing and a proposer Judge, RRD refinement of the prompt on the fly (once
per prompt; the result is kept in `sets`). A prompt with no usable set (none found, refinement off, or
refinement failed or empty) gets None."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from judges.judge import Judge
from rrd.on_demand import RefineOnce, usable
from rrd.records import RubricSet, prompt_key

from .config import RubricRewardConfig


def column_value(kwargs: dict, name: str | None, i: int) -> Any:
    """Row i of dataset column `name` as TRL passes it (None when the column or the row is absent)."""
    if not name or name not in kwargs:
        return None
    try:
        return kwargs[name][i]
    except (IndexError, KeyError, TypeError):
        return None


def rubric_set_from_value(value: Any, prompt: str) -> RubricSet | None:
    """A dataset-column value as a RubricSet, or None when the row has none."""
    if value is None:
        return None
    if isinstance(value, RubricSet):
        return value
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        value = json.loads(value)
    if isinstance(value, dict):
        if "tree" in value:
            return RubricSet.from_dict(value)
        texts = list(value.get("rubrics") or value.get("texts") or [])
        return RubricSet.provided(value.get("prompt", prompt), texts, value.get("weights"), value.get("prompt_id"))
    if isinstance(value, (list, tuple)):
        return RubricSet.provided(prompt, [str(t) for t in value])
    raise TypeError(f"cannot read a rubric set from a {type(value).__name__}")


class RubricSets:
    """The rubric sets of a reward: `sets` (prompt id or prompt key -> RubricSet, grown by refinement)."""

    def __init__(self, sets: dict[str, RubricSet], config: RubricRewardConfig, judge: Judge,
                 proposer: Judge | None):
        self.sets, self.config, self.judge, self.proposer = sets, config, judge, proposer
        self._once = RefineOnce(sets, keep=usable)  # a failed or empty refinement is not kept: a later step retries

    async def resolve(self, texts: list[str], kwargs: dict) -> list[RubricSet | None]:
        """One set (or None) per completion, by prompt text and the dataset columns of this call."""
        out: list[RubricSet | None] = []
        missing: dict[str, str] = {}  # lookup key -> prompt text
        keys: list[str | None] = []
        for i, text in enumerate(texts):
            rs = rubric_set_from_value(column_value(kwargs, self.config.rubric_column, i), text)
            key = None
            if rs is None:
                pid = column_value(kwargs, self.config.prompt_id_column, i)
                if pid is not None and str(pid) in self.sets:
                    rs = self.sets[str(pid)]
                else:
                    key = prompt_key(text)
                    rs = self.sets.get(key)
                    if rs is None:
                        key = str(pid) if pid is not None else key
                        missing.setdefault(key, text)
            out.append(rs)
            keys.append(key if rs is None else None)
        if missing and self.config.refine_missing and self.proposer is not None:
            refined = await asyncio.gather(*(self.refine(k, t) for k, t in missing.items()))
            found = dict(zip(missing, refined))
            out = [rs if rs is not None else found.get(k) for rs, k in zip(out, keys)]  # type: ignore[arg-type]
        return [rs if rs is not None and rs.texts else None for rs in out]

    async def refine(self, key: str, text: str) -> RubricSet | None:
        """RRD on one prompt, once (rrd.on_demand): concurrent callers for the same prompt await the same
        refinement; None when it failed or gave no rubric."""
        from rrd.refine import refine_prompt  # the loop's machinery loads only when refinement is used

        assert self.proposer is not None
        rs, _ = await self._once.get(key, lambda: refine_prompt(text, self.judge, self.proposer,
                                                                self.config.refine_config, prompt_id=key))
        return rs if usable(rs) else None
