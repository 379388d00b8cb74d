"""Rubric files: the prompt id that matches rubric sets to prompts, and loading a rubrics.jsonl.

Shared by `rrd judge`, the reward functions and evaluation, so a rubric set refined once is found by all.
"""

from __future__ import annotations

import hashlib
import os

from .io import InputError, read_rows
from .records import RubricSet


def prompt_key(prompt: str) -> str:
    """Default prompt id: a hash of the text, so rubric sets and pairs match without an id column."""
    return "p-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def load_rubric_sets(path: str) -> dict[str, RubricSet]:
    """RubricSets by prompt id. Lines are full RubricSets, or the short form {"prompt", "rubrics": [...]}."""
    sets: dict[str, RubricSet] = {}
    if not os.path.exists(path):
        return sets
    for row in read_rows(path):
        d = row.data
        try:
            if "tree" in d:
                rs = RubricSet.from_dict(d)
            else:
                texts = row.get("rubrics", kind=list)
                prompt = row.get("prompt")
                rs = RubricSet.provided(prompt, texts, d.get("weights"), prompt_id=d.get("prompt_id"))
        except InputError:  # already says where and what
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, row.line, None, f"not a rubric set: {exc}") from exc
        sets[rs.prompt_id or prompt_key(rs.prompt)] = rs
    return sets
