"""The llama.cpp engine on a fixed workload: the request batches one refine handed it, replayed in order.

    python bench/bench_engine_replay.py record OUT.json [--prompts N] [-- REFINE FLAGS]
    python bench/bench_engine_replay.py replay OUT.json [--checkout DIR] [--parallel N] [--json RESULT]

A refine's work follows its greedy answers, and any change to how the engine batches moves its logits by a
rounding, so two engines running the quickstart can take different paths (9 rubrics and 245 calls, or 16 and 263)
and their wall times compare two workloads, not two engines. `record` runs the README's refine once and keeps every
batch of requests the engine was given, in the order it ran them; `replay` runs those batches through the engine
of this checkout (or of `--checkout DIR`, e.g. a worktree of an earlier commit) and prints its seconds, the tokens
it evaluated and decoded, and the CPU. Settings an older engine does not know (e.g. stop strings) are left out for
it, so it does what it did before they existed. Replays of two checkouts taking turns compare engines on the same
work.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def record(out: Path, prompts: int, flags: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from judges.backends.llamacpp import LlamaCppBackend
    from rrd.cli import main as cli

    batches: list[dict[str, Any]] = []
    compute = LlamaCppBackend._compute

    def recording(self: LlamaCppBackend, requests: list[Any]) -> list[Any]:
        batches.append({"model": self.spec, "requests": [{"messages": r.messages,
                                                          "params": dataclasses.asdict(r.params)}
                                                         for r in requests]})
        return compute(self, requests)

    LlamaCppBackend._compute = recording  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rc = cli(["refine", str(ROOT / "examples/pairs.jsonl"), "--limit", str(prompts), "--out",
                      f"{tmp}/r.jsonl", "--cache-path", f"{tmp}/c.db", *flags])
    finally:
        LlamaCppBackend._compute = compute  # type: ignore[method-assign]
    if rc:
        raise SystemExit(f"the refine failed (exit status {rc})")
    out.write_text(json.dumps({"prompts": prompts, "flags": flags, "batches": batches}) + "\n")
    print(f"{len(batches)} batches, {sum(len(b['requests']) for b in batches)} requests -> {out}", file=sys.stderr)


def replay(path: Path, checkout: Path, parallel: int = 8) -> dict[str, Any]:
    sys.path.insert(0, str(checkout))
    from judges.backends.layout import cpu_model
    from judges.backends.llamacpp import LlamaCppBackend
    from judges.types import Request, SamplingParams

    known = set(inspect.signature(SamplingParams).parameters)
    batches = json.loads(path.read_text())["batches"]
    backends = {m: LlamaCppBackend(m, n_seq=parallel) for m in {b["model"] for b in batches}}
    for backend in backends.values():
        backend.load()  # loading is not the engine's speed
    evaluated = decoded = 0
    t = time.perf_counter()
    for batch in batches:
        requests = [Request(r["messages"], SamplingParams(**{k: tuple(v) if isinstance(v, list) else v
                                                             for k, v in r["params"].items() if k in known}))
                    for r in batch["requests"]]
        for c in backends[batch["model"]]._run_locked(requests):
            evaluated += c.usage.prompt_tokens - c.usage.cached_tokens
            decoded += c.usage.completion_tokens
    seconds = time.perf_counter() - t
    layouts = sorted({str(b.layout) for b in backends.values()})
    for backend in backends.values():
        backend._unload_locked()
    return {"checkout": str(checkout), "cpu": cpu_model(), "cpus": os.cpu_count(), "layout": ", ".join(layouts),
            "parallel": parallel,
            "batches": len(batches), "seconds": round(seconds, 1), "evaluated_tokens": evaluated,
            "decoded_tokens": decoded}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="run the quickstart refine and keep the engine's batches")
    rec.add_argument("out", type=Path)
    rec.add_argument("--prompts", type=int, default=1)
    rec.add_argument("flags", nargs=argparse.REMAINDER, help="after --: flags for `rrd refine`")
    rep = sub.add_parser("replay", help="time the recorded batches on one checkout's engine")
    rep.add_argument("batches", type=Path)
    rep.add_argument("--checkout", type=Path, default=ROOT)
    rep.add_argument("--parallel", type=int, default=8, help="sequences decoded together (--local-parallel)")
    rep.add_argument("--json", type=Path, default=None, help="append the figures here (one JSON line)")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.cmd == "record":
        record(args.out, args.prompts, [f for f in args.flags if f != "--"])
        return
    result = replay(args.batches, args.checkout.resolve(), args.parallel)
    print(json.dumps(result))
    if args.json:
        with args.json.open("a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
