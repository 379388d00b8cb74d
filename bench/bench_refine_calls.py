"""Judge calls per prompt for an RRD refine run: paper-faithful grading (one criterion per call) vs k criteria per
call vs a warm cache, on a fixed set of 5 prompts with the local judge.

Prints calls, tokens and wall time per mode, and the agreement of verdicts between the two grading modes on the
(rubric, sample) cells both runs graded. Goal: k-per-call cuts calls >= 5x with >= 90% agreement; a warm
re-run makes zero calls. Sampling and proposer calls are identical in both modes (same requests, so the second
mode gets them from the cache); the grading calls are what differ, and they are counted separately.

    python bench/bench_refine_calls.py [--judge local:qwen2.5-coder-1.5b] [--k 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges import Accounting, Judge, JudgeConfig  # noqa: E402
from rrd import RefineConfig, RubricSet, refine_prompt  # noqa: E402

# Fixed prompts with fixed responses of mixed quality (4 samples, a strong and a weak reference), so every run
# grades the same text and only the grading mode differs; sampling cost is not what this benchmark measures.
PROMPTS: list[dict] = [
    {
        "prompt": "How do I reverse a list in Python? Show two ways.",
        "samples": [
            "Use slicing: `rev = my_list[::-1]` makes a reversed copy. Or call `my_list.reverse()` to reverse it "
            "in place (it returns None).",
            "You can use `reversed(my_list)`, which gives an iterator; wrap it in `list()` to get a list.",
            "my_list.sort(reverse=True) reverses the list.",
            "Two ways: `my_list[::-1]` (new list) and `list(reversed(my_list))` (also a new list).",
        ],
        "strong": "1) `new = old[::-1]` returns a reversed copy. 2) `old.reverse()` reverses in place and returns "
                  "None. `list(reversed(old))` is a third option.",
        "weak": "Just use reverse.",
    },
    {
        "prompt": "Explain in a short paragraph why the sky is blue.",
        "samples": [
            "Sunlight is scattered by air molecules; shorter (blue) wavelengths scatter much more than red "
            "(Rayleigh scattering, roughly 1/wavelength^4), so blue light reaches our eyes from all directions.",
            "The sky is blue because it reflects the oceans.",
            "Blue light scatters more in the atmosphere, which is why the sky looks blue during the day.",
            "Because of Rayleigh scattering: molecules of nitrogen and oxygen scatter short wavelengths more. "
            "Violet scatters even more, but our eyes are less sensitive to it and some is absorbed high up.",
        ],
        "strong": "Air molecules scatter short wavelengths far more strongly than long ones (Rayleigh scattering, "
                  "proportional to 1/lambda^4), so scattered blue light fills the sky; violet is weaker in "
                  "sunlight and our eyes are less sensitive to it.",
        "weak": "It is blue because of the color of space.",
    },
    {
        "prompt": "Give me three tips for a job interview at a software company.",
        "samples": [
            "1. Practise coding problems aloud. 2. Research the company's products. 3. Prepare questions to ask.",
            "Dress nicely and be on time.",
            "Review data structures, explain your reasoning while you code, and have a story ready about a project "
            "you are proud of.",
            "1. Be confident. 2. Be yourself. 3. Smile.",
        ],
        "strong": "1) Practise live coding and talk through your reasoning. 2) Prepare two project stories with "
                  "your role and the measurable result. 3) Ask specific questions about the team's stack and "
                  "review process.",
        "weak": "Good luck, just relax.",
    },
    {
        "prompt": "What is the difference between a virus and a bacterium?",
        "samples": [
            "Bacteria are single-celled living organisms that can reproduce on their own; viruses are much smaller, "
            "are not cells, and can only replicate inside a host cell. Antibiotics work on bacteria, not viruses.",
            "A virus is a small bacterium.",
            "Viruses need a host cell to reproduce while bacteria can live independently.",
            "Bacteria have cell walls and ribosomes; viruses are genetic material in a protein coat.",
        ],
        "strong": "Bacteria are free-living single cells with their own metabolism and ribosomes, and most can be "
                  "treated with antibiotics. Viruses are not cells: a genome in a protein coat that replicates "
                  "only inside host cells; antibiotics do not affect them.",
        "weak": "They are both germs, basically the same.",
    },
    {
        "prompt": "Write a haiku about autumn rain.",
        "samples": [
            "Cold rain on red leaves\nthe gutter hums a low song\nsummer washes out",
            "Autumn rain is falling down on the ground today.",
            "Grey sky, soft drizzle\nmaple leaves stick to the road\nthe year exhales slow",
            "Rain\nleaves\nautumn",
        ],
        "strong": "Evening autumn rain\nmaple leaves float down the street\nlamplight on wet stone",
        "weak": "rain rain autumn",
    },
]


async def refine_all(judge_cfg: JudgeConfig, cfg: RefineConfig, cache_path: str) -> tuple[list[RubricSet], dict]:
    acc = Accounting()
    judge = Judge(JudgeConfig(**{**judge_cfg.__dict__, "cache_path": cache_path}), accounting=acc)
    start = time.perf_counter()
    sets = []
    for i, item in enumerate(PROMPTS):
        refs = {"strong": item["strong"], "weak": item["weak"]}
        sets.append(await refine_prompt(item["prompt"], judge, judge, cfg, prompt_id=f"bench-{i}",
                                        responses=item["samples"], references=refs))
        print(f"  [{judge_cfg.grading_mode}] prompt {i + 1}/{len(PROMPTS)}: {acc.calls} calls, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - start
    await judge.aclose()
    grading = sum(rs.stats.get("stages", {}).get("grading", {}).get("calls", 0) for rs in sets)
    return sets, {"calls": acc.calls, "grading_calls": grading, "hits": acc.cache_hits,
                  "tokens": acc.prompt_tokens + acc.completion_tokens, "wall_s": wall}


def cells(sets: list[RubricSet]) -> dict[tuple[str, str, int], bool]:
    """(prompt id, rubric text, sample index) -> verdict, for every scored cell in every tree."""
    out = {}
    for rs in sets:
        for r in rs.tree:
            for j, v in enumerate(r.verdicts or []):
                if v is not None:
                    out[(rs.prompt_id or "", r.text, j)] = bool(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--judge", default="local:qwen2.5-coder-1.5b")
    ap.add_argument("--k", type=int, default=8, help="criteria per call in batch mode")
    ap.add_argument("--max-rejections", type=int, default=15)
    ap.add_argument("--max-depth", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    cfg = RefineConfig(n_samples=4, proposer_max_tokens=400, max_rejections=args.max_rejections,
                       max_depth=args.max_depth)
    with tempfile.TemporaryDirectory() as tmp:
        cache = f"{tmp}/cache.sqlite"
        single_cfg = JudgeConfig(model=args.judge, grading_mode="single")
        batch_cfg = JudgeConfig(model=args.judge, grading_mode="batch", batch_size=args.k)
        single_sets, single = asyncio.run(refine_all(single_cfg, cfg, cache))
        batch_sets, batch = asyncio.run(refine_all(batch_cfg, cfg, cache))
        _, warm = asyncio.run(refine_all(single_cfg, cfg, cache))

    a, b = cells(single_sets), cells(batch_sets)
    common = sorted(set(a) & set(b))
    agree = sum(a[c] == b[c] for c in common) / len(common) if common else float("nan")
    n = len(PROMPTS)
    rows = [("single (paper)", single), (f"batch k={args.k}", batch), ("warm re-run", warm)]
    print(f"judge {args.judge}, {n} prompts, 4 fixed samples + 2 references each")
    print(f"{'mode':<16} {'calls':>6} {'grading':>8} {'grading/prompt':>15} {'tokens':>8} {'wall s':>8}")
    for name, r in rows:
        print(f"{name:<16} {r['calls']:>6} {r['grading_calls']:>8.0f} {r['grading_calls'] / n:>15.1f} "
              f"{r['tokens']:>8} {r['wall_s']:>8.1f}")
    ratio = single["grading_calls"] / max(batch["grading_calls"], 1e-9)
    print(f"grading calls cut by {ratio:.1f}x; verdict agreement {agree:.3f} on {len(common)} shared cells; "
          f"warm re-run calls: {warm['calls']}")
    print("accepted rubrics per prompt: single", [len(rs.rubrics) for rs in single_sets],
          "batch", [len(rs.rubrics) for rs in batch_sets])
    if args.json:
        Path(args.json).write_text(json.dumps({"single": single, "batch": batch, "warm": warm,
                                               "agreement": agree, "shared_cells": len(common)}, indent=2))


if __name__ == "__main__":
    main()
