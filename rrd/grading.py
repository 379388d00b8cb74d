"""Grading responses against a RubricSet: the one scorer of `rrd judge`, `rrd eval` and anything else that scores
responses or a pair with rubrics.

Each response is graded on its own, one verdict per rubric (rrd.scoring says how verdicts become scores and a pair
verdict), and read in both score modes, hard (0/1) and soft (P(YES)), so a record keeps both and a report can show
either without a new call. `Graded.record()` is the one record shape of a rubric-scored item; `rrd judge` adds its
pair's fields (label, credit, tie-break) around it, `rrd eval` its method's. `upgrade_pair_record` reads the
verdict files `rrd judge` wrote before this shape.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from judges.judge import GradeItem, Judge
from judges.types import ScoreMode, Usage, Verdict, verdict_value

from .records import RubricSet
from .scoring import PairVerdict

MODES: tuple[ScoreMode, ScoreMode] = ("hard", "soft")
#: why a pair has no verdict although its set has rubrics
NO_COMMON_RUBRIC = "no rubric scored for both responses"


def no_rubrics_reason(rs: RubricSet) -> str:
    """Why a set cannot score anything: its refinement's failure or stop reason."""
    return f"no rubrics: {rs.failure or rs.stopped}"


USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "cost_usd")


def usage(spent: Sequence[Any], calls: int | float = 0) -> dict[str, float]:
    """A record's usage: the calls sent and the tokens and dollars that verdicts, pairwise games or completions
    spent (cache hits carry zero usage), summed as judges.types.Usage sums them."""
    total = Usage()
    for v in spent:
        total.add(v.usage)
    return {"calls": float(calls), "prompt_tokens": float(total.prompt_tokens),
            "completion_tokens": float(total.completion_tokens), "cost_usd": float(total.cost_usd)}


def add_usage(*parts: Mapping[str, float]) -> dict[str, float]:
    """The sum of records' usages (a missing key counts 0)."""
    return {k: float(sum(p.get(k, 0.0) for p in parts)) for k in USAGE_KEYS}


@dataclass
class Graded:
    """The verdicts of K responses against one rubric set, and what they say in either score mode."""

    rs: RubricSet
    verdicts: list[list[Verdict]]  # per response, per rubric (empty lists when the set has no rubrics)
    score: ScoreMode = "soft"
    tie_margin: float = 0.0
    calls: int = 0  # calls actually sent (cache hits are free)

    def values(self, mode: ScoreMode | None = None) -> list[list[float | None]]:
        """g_k per response in `mode` (default: the run's), None where unscored."""
        soft = (mode or self.score) == "soft"
        return [[verdict_value(v, soft) for v in vs] for vs in self.verdicts]

    @property
    def flat(self) -> list[Verdict]:
        return [v for vs in self.verdicts for v in vs]

    def kinds(self) -> Counter[str]:
        """Unscored verdicts by kind ("call failed", "unreadable", ...)."""
        return Counter(v.kind for v in self.flat if v.kind)

    def record(self) -> dict[str, Any]:
        """The one record shape of a rubric-scored item: the set (hash, size, weights), the scores and per-rubric
        values in the run's mode, each verdict's (met, P(YES)) and unscored reason (so both modes can be
        recomputed and a re-run knows what to retry), the unscored counts by kind, the calls and their usage, and
        for a pair its verdict in both modes (`games`: [verdict], as a pairwise method's games read: the higher
        score wins, within tie_margin a tie, None when no rubric was scored for both responses or the set has none)."""
        rs = self.rs
        record: dict[str, Any] = {"rubric_set": rs.content_hash, "n_rubrics": len(rs.rubrics), "weights": rs.weights,
                                  "weight_scheme": rs.weight_scheme, "score_mode": self.score}
        if not rs.rubrics:
            record.update(scores=[None] * len(self.verdicts), verdicts=None, games=[None],
                          games_by_mode={m: [None] for m in MODES}, reasons=[no_rubrics_reason(rs)], unscored=0,
                          usage=usage([], 0))
            return record
        by_mode = {m: self.values(m) for m in MODES}
        values = by_mode[self.score]
        record.update(
            scores=[rs.score(v) for v in values], verdicts=values,
            unscored=sum(v.met is None for v in self.flat), unscored_kinds=dict(self.kinds()),
            graded=[[[v.met, v.p_yes] for v in vs] for vs in self.verdicts],
            unscored_reasons=[[v.reason if v.met is None else None for v in vs] for vs in self.verdicts],
            usage=usage(self.flat, self.calls),
        )
        if len(self.verdicts) == 2:
            games = {m: [rs.compare(a, b, tie_margin=self.tie_margin)] for m, (a, b) in by_mode.items()}
            record.update(games=games[self.score], games_by_mode=games,
                          reasons=[None if games[self.score][0] is not None else NO_COMMON_RUBRIC])
        return record


async def grade(judge: Judge, rs: RubricSet, prompt: str, responses: Sequence[str], *, score: ScoreMode = "soft",
                tie_margin: float = 0.0) -> Graded:
    """Every response graded against every rubric of `rs` (one grade_many batch; none when the set is empty)."""
    if not rs.rubrics:
        return Graded(rs, [[] for _ in responses], score, tie_margin)
    graded = await judge.grade_many([GradeItem(rs.texts, r, prompt) for r in responses])
    return Graded(rs, [list(vs) for vs in graded], score, tie_margin,
                  calls=sum(judge.fresh_calls(vs) for vs in graded))


def upgrade_pair_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict record of `rrd judge` in the one shape: records written before it (score_A/score_B, verdict,
    verdicts_A/B, reasons_A/B, calls) are translated; current ones come back as they are."""
    r = dict(record)
    if "score_A" not in r:
        return r
    by_mode = r.pop("verdict_by_mode", None)
    verdict = r.pop("verdict", None)
    r["scores"] = [r.pop("score_A", None), r.pop("score_B", None)]
    r["games"] = [verdict]
    if by_mode is not None:
        r["games_by_mode"] = {m: [v] for m, v in by_mode.items()}
    r["graded"] = [r.pop("verdicts_A", None) or [], r.pop("verdicts_B", None) or []]
    r["unscored_reasons"] = [r.pop("reasons_A", None) or [], r.pop("reasons_B", None) or []]
    r.setdefault("usage", {"calls": float(r.pop("calls", 0) or 0)})
    return r


def pair_verdict_of(record: Mapping[str, Any], mode: Literal["hard", "soft"] | None = None) -> PairVerdict | None:
    """The pair verdict a record holds, in its own mode or in `mode` (None where the record lacks it)."""
    if mode is None:
        return (record.get("games") or [None])[0]
    return ((record.get("games_by_mode") or {}).get(mode) or [None])[0]
