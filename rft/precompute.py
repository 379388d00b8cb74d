"""Rubric sets for the training prompts, refined with RRD before training where the rubrics file lacks them.

Why before and not during training: refinement costs hundreds of judge/proposer calls per prompt; done inside the
reward function it would stall every GRPO step that meets a new prompt, and a crash would lose it. Here it runs
once through `rrd refine`'s own machinery (rrd.jobs.refine_all), appending each RubricSet to the rubrics
file the moment it is done, so an interrupted precompute resumes where it stopped and the file can be reused by
`rrd judge` and evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from judges.accounting import BudgetExceeded
from judges.judge import JudgeConfig
from rrd import interrupt
from rrd.inputs import PromptTask
from rrd.jobs import BatchConfig, refine_all
from rrd.pool import Models
from rrd.config import RefineConfig
from rrd.io import JsonlAppender
from rrd.resume import Stop
from rrd.records import RubricSet, load_rubric_sets, prompt_key

from .prompts import normalise_text

log = logging.getLogger(__name__)


@dataclass
class RubricIndex:
    """Rubric sets matched to the training prompts, and the prompts left without a usable set."""

    sets: dict[str, RubricSet]  # prompt_id -> set with at least one accepted rubric
    missing: list[str] = field(default_factory=list)  # prompt ids with no set in the file
    empty: list[str] = field(default_factory=list)  # prompt ids whose set has no rubric (failed refinement)
    refined: int = 0  # sets written by this run

    @property
    def max_rubrics(self) -> int:
        return max((len(rs.texts) for rs in self.sets.values()), default=0)


def match_sets(prompt_ids: Sequence[str], texts: Sequence[str], file_sets: Mapping[str, RubricSet]) -> RubricIndex:
    """Find each prompt's set by id, else by the id of its whitespace-normalised text (a hand-written rubrics
    file's prompt may be spaced differently from the normalised training prompt)."""
    by_text: dict[str, RubricSet] = {}
    for rs in file_sets.values():
        by_text.setdefault(prompt_key(normalise_text(rs.prompt)), rs)
    out = RubricIndex({})
    for pid, text in zip(prompt_ids, texts):
        rs = file_sets.get(pid) or by_text.get(pid) or by_text.get(prompt_key(normalise_text(text)))
        if rs is None:
            out.missing.append(pid)
        elif not rs.texts:
            out.empty.append(pid)
        else:
            out.sets[pid] = rs
    return out


async def _refine(tasks: list[PromptTask], models: Models, refine: RefineConfig, path: Path,
                  prompt_concurrency: int) -> list[RubricSet]:
    from rrd.progress import progress_bar

    bar = progress_bar(len(tasks), "refine", "prompt")
    stop = Stop()
    try:
        with JsonlAppender(path) as out:
            refined = await refine_all(tasks, models, refine, out, prompt_concurrency, bar, stop=stop)
        if stop.budget is not None:  # training on a partial rubric file would silently drop prompts
            raise BudgetExceeded(stop.message("prompt"))
        return refined
    finally:
        bar.close()
        await models.aclose()


def ensure_rubric_sets(
    prompt_ids: Sequence[str],
    texts: Sequence[str],
    path: str | Path,
    *,
    refine_missing: bool,
    judge: JudgeConfig,
    proposer: JudgeConfig,
    refine: RefineConfig,
    prompt_concurrency: int = BatchConfig.prompt_concurrency,
) -> RubricIndex:
    """The rubric set of every prompt, refining (and appending to `path`) those the file does not have yet."""
    path = Path(path)
    index = match_sets(prompt_ids, texts, load_rubric_sets(str(path)))
    if index.missing and refine_missing:
        text_of = dict(zip(prompt_ids, texts))
        tasks = [PromptTask(pid, text_of[pid], None) for pid in index.missing]
        log.warning("refining rubrics for %d prompts into %s (resumable)", len(tasks), path)
        refined = interrupt.run(_refine(tasks, Models.build(judge, proposer, refine), refine, path, prompt_concurrency))
        index = match_sets(prompt_ids, texts, load_rubric_sets(str(path)))
        index.refined = len(refined)
    if index.missing or index.empty:
        log.warning("%d prompts have no rubric set and %d an empty one in %s: they are left out of training",
                    len(index.missing), len(index.empty), path)
    return index
