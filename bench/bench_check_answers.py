"""Overlap and conflict checks answered with their JSON opening given (SamplingParams.answer_prefix, what `rrd
refine` sends) and without it (what it sent before): whether the answers agree, and what each way costs on the
local judge.

    python bench/bench_check_answers.py [--sets PATH] [--checks N] [--model NAME] [--json OUT]

The checks are replayed from committed RRD sets (default: the shipped profile's HH-RLHF sets) in the order their
refine asked them, with the local profile's decoding settings. The two ways run on two engines of their own, a
check at a time and taking turns, so both see the same sequence of prompts (and the same prefix reuse) and a
machine whose speed drifts shifts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from judges.backends.layout import cpu_model  # noqa: E402
from rrd import prompts  # noqa: E402
from rrd.io import read_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETS = ROOT / "docs/results/small_proposer/hh-after/rubrics/rrd-uniform.jsonl"
CHECKS = {"overlaps": prompts.overlap_check, "conflicts": prompts.conflict_check}


def checks(path: Path, n: int) -> list[tuple[str, list[Any], int]]:
    """Up to n (key, messages, rubrics listed) checks from the sets in `path`, in the order a refine asks them: each rubric of a
    tree that got as far as the filters, once A (the rubrics accepted before it) is not empty, is checked for
    overlap, then for conflict, against A in acceptance order (so consecutive checks share their prefix as they
    do in a refine; the confirmations of a named rubric are left out)."""
    out: list[tuple[str, list[Any], int]] = []
    for rs in read_jsonl(path):
        accepted: list[str] = []
        for r in rs["tree"]:
            if r["status"] not in ("accepted", "rejected") or r.get("reason") in ("misaligned", "failed_decomposition"):
                continue
            if accepted:
                for key, template in CHECKS.items():
                    if len(out) >= n:
                        return out
                    out.append((key, template(r["text"], accepted), len(accepted)))
            if r["status"] == "accepted":
                accepted.append(r["text"])
    return out


async def measure(model: str, items: list[tuple[str, list[Any], int]]) -> dict[str, Any]:
    from judges import Judge, JudgeConfig
    from judges.types import SamplingParams
    from rrd.config import profile_config

    config = profile_config("local")
    base = SamplingParams(temperature=config.proposer_temperature, max_tokens=config.check_max_tokens,
                          seed=config.seed, repetition_penalty=config.proposer_repetition_penalty)
    judges = {way: Judge(JudgeConfig(model=f"local:{model}", local_engine="llama.cpp", cache=False))
              for way in ("decoded", "given")}
    for j in judges.values():
        j.backend.load()
    rows = []
    for key, messages, listed in items:
        row: dict[str, Any] = {"opening": f'{{"{key}":'}
        for way, judge in judges.items():
            params = replace(base, answer_prefix=row["opening"] if way == "given" else "")
            t = time.monotonic()
            c = await judge.generate(messages, params)
            row[way] = {"s": time.monotonic() - t, "text": c.text, "completion_tokens": c.usage.completion_tokens,
                        "answer": prompts.parse_index(c.text, key, listed)}
        rows.append(row)
    for j in judges.values():
        await j.aclose()
    n = len(rows)

    def mean(way: str, field: str) -> float:
        return sum(r[way][field] for r in rows) / n

    return {
        "cpu": cpu_model(), "model": model, "checks": n,
        "same_answer": sum(r["decoded"]["answer"] == r["given"]["answer"] for r in rows) / n,
        "same_text": sum(r["decoded"]["text"] == r["given"]["text"] for r in rows) / n,
        "readable": {w: sum(r[w]["answer"][0] for r in rows) / n for w in judges},
        # what the engine owes the caller: an answer that starts with the opening it was given
        "given_start_with_opening": sum(r["given"]["text"].startswith(r["opening"]) for r in rows) / n,
        "completion_tokens_per_check": {w: round(mean(w, "completion_tokens"), 2) for w in judges},
        "seconds_per_check": {w: round(mean(w, "s"), 3) for w in judges},
        "differing": [{"decoded": r["decoded"]["text"], "given": r["given"]["text"]} for r in rows
                      if r["decoded"]["text"] != r["given"]["text"]][:10],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", type=Path, default=SETS, help="RRD sets (JSONL) to build the checks from")
    ap.add_argument("--checks", type=int, default=60)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    result = asyncio.run(measure(args.model, checks(args.sets, args.checks)))
    d, g = result["seconds_per_check"], result["completion_tokens_per_check"]
    print(f"{result['checks']} checks on {result['cpu']}: the same answer {result['same_answer']:.0%}, the same text "
          f"{result['same_text']:.0%}; decoded {g['decoded']} tokens a check in {d['decoded']:.3f} s, "
          f"with the opening given {g['given']} tokens in {d['given']:.3f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
