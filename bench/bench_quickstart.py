"""The README's quickstart refine, timed: wall time, peak RSS, calls, rubrics, prompt tokens evaluated, and where
the time went by stage, for the default settings and for each variant given (issue 27 asks for <= 150 s and
<= 3 GB on 2 cores).

    python bench/bench_quickstart.py [--variant NAME="FLAGS" ...] [--rounds R] [--prompts N] [--json OUT]

Each run is the README's `rrd refine examples/pairs.jsonl --limit 1` with the variant's flags added, in a process
of its own, with an empty judge cache (the model cache stays warm). Variants take turns, R rounds of them, so a
machine whose speed drifts during the benchmark shifts every variant alike. `--prompts N` refines the first N
example prompts in each run instead of one (figures summed, rubrics listed per prompt): what a refine costs and
yields follows its greedy answers, which a change of batching moves, so one prompt can gain or lose rubrics by
chance; N prompts show whether a change does so systematically.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from judges.backends.layout import cpu_model  # noqa: E402
from rrd.io import latest_by, read_jsonl  # noqa: E402
from rrd.summaries import stage_times  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["refine", "examples/pairs.jsonl", "--limit", "1"]


def run_once(flags: list[str], prompts: int = 1) -> dict[str, Any]:
    """One quickstart refine with `flags` (of the first `prompts` example prompts), in its own process and judge
    cache; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rubrics.jsonl"
        cmd = [sys.executable, "-m", "rrd.cli", *COMMAND[:-1], str(prompts), "--out", str(out),
               "--cache-path", str(Path(tmp) / "c.db"), *flags]
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        log = Path(tmp) / "stderr.log"  # a file, not a pipe: nothing is read until the child has exited
        t = time.monotonic()
        with log.open("w") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest child's so far
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        wall = time.monotonic() - t
        if proc.returncode != 0:
            raise SystemExit(f"{shlex.join(cmd)} failed:\n{log.read_text()[-2000:]}")
        sets = list(latest_by(read_jsonl(out), "prompt_id").values())
    if len(sets) != prompts:
        raise SystemExit(f"{shlex.join(cmd)} wrote {len(sets)} rubric sets, not {prompts}")

    def total(key: str) -> float:
        return sum(rs["stats"].get(key, 0) for rs in sets)

    counts = [len(rs["accepted"]) for rs in sets]
    return {
        "wall_s": round(wall, 1), "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2),
        "calls": total("calls"), "rubrics": sum(counts),
        **({"rubrics_per_prompt": counts} if prompts > 1 else {}),
        "prompt_tokens": total("prompt_tokens"), "evaluated_tokens": total("prompt_tokens") - total("cached_tokens"),
        "completion_tokens": total("completion_tokens"), "unconfirmed_checks": total("unconfirmed_checks"),
        "stages": {k: {"seconds": round(s, 1), "evaluated_tokens": e} for k, (s, e) in stage_times(sets).items()},
    }


def per_prompt(run: dict[str, Any]) -> str:
    counts = run.get("rubrics_per_prompt")
    return f" ({'+'.join(map(str, counts))})" if counts else ""


def table(runs: list[dict[str, Any]]) -> str:
    head = ["variant", "wall", "calls", "rubrics", "prompt tokens evaluated of sent", "peak RSS GB",
            "seconds by stage (tokens evaluated)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        stages = ", ".join(f"{k} {v['seconds']:.0f} ({v['evaluated_tokens']:,})" for k, v in r["stages"].items())
        lines.append(f"| {r['variant']} | {r['wall_s'] // 60:.0f}:{r['wall_s'] % 60:04.1f} | {r['calls']:.0f} | "
                     f"{r['rubrics']}{per_prompt(r)} | {r['evaluated_tokens']:,.0f} of {r['prompt_tokens']:,.0f} | "
                     f"{r['peak_rss_gb']:.2f} | {stages} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], metavar='NAME="FLAGS"',
                    help="`rrd refine` flags to add, under a name (the defaults run first as 'default')")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=1, help="refine the first N example prompts in each run")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    variants = {"default": []}
    for spec in args.variant:
        name, sep, flags = spec.partition("=")
        if not sep:
            raise SystemExit(f"--variant {spec!r}: expected NAME=\"FLAGS\"")
        variants[name] = shlex.split(flags)
    runs = []
    for round_ in range(args.rounds):
        for name, flags in variants.items():
            runs.append({"variant": name, "flags": flags, "round": round_, **run_once(flags, args.prompts)})
            print(table(runs[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(runs))
    if args.json:
        command = [*COMMAND[:-1], str(args.prompts)]
        args.json.write_text(json.dumps({"cpu": cpu_model(), "cpus": os.cpu_count(), "command": "rrd " + shlex.join(
            command), "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
