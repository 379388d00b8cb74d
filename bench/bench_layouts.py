"""What one llama_decode call costs in each weight layout, by batch size: the figures behind `--local-weights auto`
(judges/backends/layout.py) and behind equal shares in a batch (LlamaCppBackend._run_group).

    python bench/bench_layouts.py [--model qwen2.5-coder-1.5b] [--json OUT]

For each layout (llama.cpp's repacked CPU layout, the file's own "plain" one): milliseconds for a batch of n tokens
of one sequence after a 300-token context (the best of 3), then 8 sequences holding a 300-token prefix each
evaluating 20 tokens, in equal shares and in shares of 12 to 25 tokens (160 in all: llama.cpp cuts unequal shares
into several micro-batches), and what the calibration measures. About a minute for the 1.5B judge on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges.backends.layout import cpu_model, probe, time_layout  # noqa: E402
from judges.backends.llamacpp import gguf_path  # noqa: E402

SIZES = (1, 2, 4, 6, 8, 12, 16, 32, 64, 128)
UNEQUAL = (12, 15, 18, 20, 22, 24, 25, 24)


def _costs(path: Path, threads: int, repacked: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with probe(path, threads, repacked, seq_ctx=1024, n_batch=512) as one:
        one.decode([(k, 0) for k in range(300)])
        best = {}
        for n in SIZES:
            times = []
            for _ in range(3):
                one.llama_cpp.llama_memory_seq_rm(one.ctx.memory, 0, 300, -1)
                times.append(one.decode([(300 + k, 0) for k in range(n)]))
            best[n] = round(min(times) * 1000, 1)
        out["batch_ms"] = best
    with probe(path, threads, repacked, n_seq=8, seq_ctx=1024, n_batch=512) as eight:
        for name, shares in (("equal", (20,) * 8), ("unequal", UNEQUAL)):
            eight.llama_cpp.llama_memory_clear(eight.ctx.memory, True)
            eight.decode([(k, 0) for k in range(300)])
            for s in range(1, 8):
                eight.llama_cpp.llama_memory_seq_cp(eight.ctx.memory, 0, s, -1, -1)
            dt = eight.decode([(300 + k, s) for s, n in enumerate(shares) for k in range(n)])
            out[f"8_seqs_{name}"] = {"tokens": sum(shares), "ms": round(dt * 1000),
                                     "tok_per_s": round(sum(shares) / dt, 1)}
    t = time_layout(path, threads, repacked)
    out["calibration"] = {"prompt_ms_per_token": round(t.prompt_s * 1000, 2), "step_ms": round(t.step_s * 1000, 1),
                          "mix_ms": round(t.mix_s * 1000, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    path, threads = gguf_path(args.model), os.cpu_count() or 1
    result = {"cpu": cpu_model(), "cpus": threads, "model": args.model,
              "layouts": {name: _costs(path, threads, name == "repacked") for name in ("repacked", "plain")}}
    print(f"{'batch':>6} " + " ".join(f"{n:>6}" for n in SIZES) + "   (ms per llama_decode call)")
    for name, r in result["layouts"].items():
        print(f"{name:>8} " + " ".join(f"{r['batch_ms'][n]:>6.0f}" for n in SIZES))
        print(f"{'':>8} 8 sequences x 20 tokens: {r['8_seqs_equal']['tok_per_s']} tok/s equal shares, "
              f"{r['8_seqs_unequal']['tok_per_s']} unequal; calibration {r['calibration']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
