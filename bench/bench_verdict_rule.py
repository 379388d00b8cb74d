"""How often the verdict rule matters: a judge answer with no readable YES/NO that still carries a P(YES).

Before the one rule (judges.verdict_value), `rrd judge --soft` and `rrd eval --soft` scored such an answer with
its P(YES) while the training reward dropped it. This grades the accepted rubrics of stored rubric sets against
their stored sampled responses with a real judge, and prints how many verdicts were unreadable, how many of those
carried a P(YES), and how much the soft score of a response moves between the old rule and the one rule.

    python bench/bench_verdict_rule.py docs/results/judgebench/rubrics/rrd-wu.jsonl --limit 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges import GradeItem, Judge, JudgeConfig, verdict_value  # noqa: E402
from judges.types import Verdict  # noqa: E402
from rrd.io import latest_by, read_rows  # noqa: E402
from rrd.records import RubricSet  # noqa: E402


def old_value(v: Verdict) -> float | bool | None:
    """The rule `rrd judge --soft` and `rrd eval --soft` used before: P(YES) whenever there is one."""
    return v.p_yes if v.p_yes is not None else v.met


async def main(args: argparse.Namespace) -> None:
    sets = [RubricSet.from_dict(d) for d in latest_by((r.data for r in read_rows(args.rubrics)), "prompt_id").values()]
    sets = [rs for rs in sets if rs.rubrics and rs.samples][: args.limit]
    judge = Judge(JudgeConfig(model=args.judge, cache_path=args.cache_path, verdict_max_tokens=args.max_tokens))
    items = [(rs, s.text) for rs in sets for s in rs.samples]
    rows = await judge.grade_many([GradeItem(rs.texts, text, rs.prompt) for rs, text in items])
    await judge.aclose()
    verdicts = [v for row in rows for v in row]
    unreadable = [v for v in verdicts if v.unreadable]
    with_p = [v for v in unreadable if v.p_yes is not None]
    moves = []
    for (rs, _), row in zip(items, rows):
        old, new = rs.score([old_value(v) for v in row]), rs.score([verdict_value(v, soft=True) for v in row])
        if old is not None and new is not None:
            moves.append(abs(old - new))
    changed = [m for m in moves if m > 1e-9]
    print(f"judge {args.judge} (verdict_max_tokens {args.max_tokens}), {len(sets)} rubric sets from {args.rubrics}, "
          f"{len(items)} responses, {len(verdicts)} verdicts")
    print(f"unscored: {sum(v.met is None for v in verdicts)} ({len(unreadable)} unreadable answers, "
          f"{sum(v.failed for v in verdicts)} failed calls); unreadable with a P(YES): {len(with_p)}"
          + (f", mean P(YES) {statistics.mean(v.p_yes for v in with_p):.3f}" if with_p else ""))
    print(f"responses whose soft score the old rule changed: {len(changed)} of {len(moves)}"
          + (f", mean |change| {statistics.mean(changed):.3f}, max {max(changed):.3f}" if changed else ""))
    for v in with_p[:5]:
        print(f"  e.g. {v.raw[:60]!r} -> P(YES) {v.p_yes:.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rubrics", help="a rubrics.jsonl with sampled responses (rrd refine output)")
    p.add_argument("--judge", default="local:qwen2.5-coder-1.5b")
    p.add_argument("--limit", type=int, default=20, help="rubric sets to grade")
    p.add_argument("--max-tokens", type=int, default=2, help="verdict length cap (JudgeConfig.verdict_max_tokens)")
    p.add_argument("--cache-path", default=None)
    asyncio.run(main(p.parse_args()))
