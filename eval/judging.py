"""Judging one benchmark item with one method: pairwise games, or rubric scoring with a (stored) RubricSet.

Every record carries what the report needs and nothing it must recompute: the games (verdicts in the pair's
original order), the scores, the per-rubric verdicts and weights (for edges and correlations), the calls this
item actually sent (cache hits cost none) and their tokens and dollars, and the models.

Rubric sets are refined once per (method, key) and appended to `rubrics/<method>.jsonl` in the output folder
as they finish, so an interrupted run re-uses them. The key is the prompt when rubrics are conditioned on
sampled responses, and the item when they are conditioned on the item's own responses (`rubric_samples="item"`):
then the set depends on that item's responses, not only on its prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from judges.judge import Judge
from judges.types import PairVerdict, ScoreMode, flip
from rrd.config import RefineConfig
from rrd.grading import USAGE_KEYS, add_usage, grade
from rrd.grading import usage as spent
from rrd.io import JsonlAppender
from rrd.pool import Models
from rrd.on_demand import RefineOnce
from rrd.records import RubricSet, prompt_key
from rrd.refine import refine_prompt

from .methods import Method
from .report_figures import sets_path

RubricSamples = Literal["sampled", "item"]
GameVerdict = Literal["A", "B", "tie"] | None


@dataclass
class ItemResponses:
    """What any judge method sees of an item: the prompt and the responses (2 for a pair, K for best-of-K), and
    for a pairwise method the (i, j) response pairs to play (None: the item is one pair, (0, 1))."""

    item_id: str
    prompt: str
    responses: Sequence[str]
    comparisons: Sequence[tuple[int, int]] | None = None


def soft_pair_verdict(g1: PairVerdict, g2: PairVerdict) -> GameVerdict:
    """The two-game protocol with the soft tie-break (judges.parsing.pairwise_p_a): the games' verdict where they
    agree on a winner (their counter is not 0), else the side with the higher P(A) averaged over the two orders
    (g2 is the swapped game, so its P(A) is the second response's), else a tie; None when both games failed.
    The direct judge gets the same chance as the soft rubric scores: a tie only where it has no opinion."""
    winners = [g1.winner, flip(g2.winner)]
    if all(w is None for w in winners):
        return None
    counter = sum({"A": 1, "B": -1}.get(w or "", 0) for w in winners)
    if counter:
        return "A" if counter > 0 else "B"
    ps = [p for p in (g1.p_a, None if g2.p_a is None else 1 - g2.p_a) if p is not None]
    if not ps or abs(sum(ps) / len(ps) - 0.5) < 1e-9:
        return "tie"
    return "A" if sum(ps) / len(ps) > 0.5 else "B"


def set_key(item: ItemResponses, rubric_samples: RubricSamples) -> str:
    """The key of the rubric set an item is scored with: its prompt, or the item itself when the set is
    conditioned on the item's own responses."""
    return f"item:{item.item_id}" if rubric_samples == "item" else prompt_key(item.prompt)


class MethodJudge:
    """Runs the methods of one evaluation against shared models, a shared cache and stored rubric sets."""

    def __init__(self, models: Models, refine: RefineConfig, out_dir: Path | None, *,
                 rubric_samples: RubricSamples = "sampled", score: ScoreMode = "soft", tie_margin: float = 0.0,
                 refine_progress: Callable[[Any], None] | None = None,
                 known_sets: dict[str, dict[str, RubricSet]] | None = None):
        """out_dir None: sets are not written but kept in `new_sets` for the caller to store (a Ray worker's
        judge, whose driver writes the files); `known_sets` (method -> key -> set) are the sets stored so far."""
        self.models = models
        self.refine_progress = refine_progress
        self.refine = refine
        self.out_dir = out_dir
        self.rubric_samples = rubric_samples
        self.score = score
        self.tie_margin = tie_margin
        self._stores: dict[str, JsonlAppender] = {}
        self._known = {m: dict(sets) for m, sets in (known_sets or {}).items()}
        self._sets: dict[str, RefineOnce] = {}  # method -> its sets by key, refined once per key
        self.new_sets: dict[tuple[str, str], RubricSet] = {}  # (method, key) -> set refined here, when not stored

    @property
    def judge(self) -> Judge:
        return self.models.judge

    # -- rubric sets ---------------------------------------------------------------------------------------
    def _sets_of(self, method: Method) -> RefineOnce:
        """The method's sets: those stored in its file (opened for appending) or known, plus the ones refined."""
        if method.name not in self._sets:
            store = None
            if self.out_dir is None:
                sets = self._known.get(method.name, {})
            else:
                store = self._stores[method.name] = JsonlAppender(sets_path(self.out_dir, method.name))
                sets = {d["prompt_id"]: RubricSet.from_dict(d) for d in store.existing}

            def keep(key: str, rs: RubricSet) -> None:
                if store is None:
                    self.new_sets[(method.name, key)] = rs
                else:
                    store.append(rs.to_dict())
            self._sets[method.name] = RefineOnce(sets, on_new=keep)
        return self._sets[method.name]

    def set_key(self, item: ItemResponses) -> str:
        return set_key(item, self.rubric_samples)

    async def rubric_set(self, method: Method, item: ItemResponses) -> tuple[RubricSet, bool]:
        """(set, fresh): the stored set for this method and key, or a new refinement (fresh=True)."""
        key = self.set_key(item)
        responses = list(item.responses) if self.rubric_samples == "item" else None
        return await self._sets_of(method).get(key, lambda: refine_prompt(
            item.prompt, self.judge, self.models.proposer, method.refine_config(self.refine), prompt_id=key,
            responses=responses, samplers=self.models.samplers, progress=self.refine_progress))

    # -- methods ---------------------------------------------------------------------------------------------
    async def direct(self, item: ItemResponses) -> dict[str, Any]:
        """Two games per pair: (A, B), then (B, A) flipped back to the original order. A pair item keeps its
        games at the top level; a multi-response item lists [i, j, game1, game2] per comparison."""
        pairs = list(item.comparisons) if item.comparisons is not None else [(0, 1)]
        if not pairs:
            return {"skipped": "no pairs for a pairwise judge (the protocol needs pointwise ratings)",
                    "usage": add_usage()}
        r = item.responses
        games = await self.judge.pairwise_many([g for i, j in pairs for g in ((item.prompt, r[i], r[j]),
                                                                              (item.prompt, r[j], r[i]))])
        usage = spent(games, sum(not g.cached for g in games))
        firsts, seconds = games[0::2], games[1::2]
        if item.comparisons is None:
            g1, g2 = firsts[0], seconds[0]
            hard = [g1.winner, flip(g2.winner)]
            soft = [soft_pair_verdict(g1, g2)]
            return {"games": soft if self.score == "soft" else hard, "games_by_mode": {"hard": hard, "soft": soft},
                    "p_a": [g1.p_a, None if g2.p_a is None else 1 - g2.p_a], "score_mode": self.score,
                    "reasons": [g1.reason, g2.reason], "usage": usage}
        return {"comparisons": [[i, j, g1.winner, flip(g2.winner)] for (i, j), g1, g2 in zip(pairs, firsts, seconds)],
                "reasons": [[g1.reason, g2.reason] for g1, g2 in zip(firsts, seconds)], "usage": usage}


    async def rubric(self, method: Method, item: ItemResponses) -> dict[str, Any]:
        """Pointwise scores of every response against the method's rubric set (rrd.grading's record; for a pair,
        one game), charged with the set's refinement when this item refined it."""
        rs, fresh = await self.rubric_set(method, item)
        graded = await grade(self.judge, rs, item.prompt, item.responses, score=self.score,
                             tie_margin=self.tie_margin)
        record = graded.record()
        if fresh:
            record["usage"] = add_usage(record["usage"], {k: float(rs.stats.get(k, 0.0)) for k in USAGE_KEYS})
        return record

    async def run(self, method: Method, item: ItemResponses) -> dict[str, Any]:
        t0 = time.monotonic()
        if method.kind == "pairwise":
            if item.comparisons is None and len(item.responses) != 2:
                raise ValueError(f"method {method.name!r} judges pairs; item {item.item_id} has "
                                 f"{len(item.responses)} responses")
            record = await self.direct(item)
        else:
            record = await self.rubric(method, item)
        record["elapsed_s"] = round(time.monotonic() - t0, 3)
        return record

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
