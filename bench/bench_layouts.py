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
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges.backends.layout import cpu_model, time_layout  # noqa: E402
from judges.backends.llamacpp import gguf_path  # noqa: E402

SIZES = (1, 2, 4, 6, 8, 12, 16, 32, 64, 128)
UNEQUAL = (12, 15, 18, 20, 22, 24, 25, 24)


def _costs(path: Path, threads: int, repacked: bool) -> dict[str, Any]:
    import llama_cpp
    from llama_cpp import _internals

    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.use_extra_bufts = repacked
    model = _internals.LlamaModel(path_model=str(path), params=mparams, verbose=False)
    batch = llama_cpp.llama_batch_init(512, 0, 1)

    def context(n_seq: int) -> Any:
        p = llama_cpp.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max, p.kv_unified = 1024 * n_seq, 512, 512, n_seq, False
        p.n_threads = p.n_threads_batch = threads
        p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        return _internals.LlamaContext(model=model, params=p, verbose=False)

    def decode(ctx: Any, entries: list[tuple[int, int]]) -> float:
        """(position, sequence) entries, one call; its seconds."""
        batch.n_tokens = len(entries)
        for j, (pos, seq) in enumerate(entries):
            batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.seq_id[j][0] = 100 + pos % 5000, pos, 1, seq
            batch.logits[j] = j == len(entries) - 1
        t = time.perf_counter()
        if llama_cpp.llama_decode(ctx.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return time.perf_counter() - t

    out: dict[str, Any] = {}
    one = context(1)
    decode(one, [(k, 0) for k in range(300)])
    best = {}
    for n in SIZES:
        times = []
        for _ in range(3):
            llama_cpp.llama_memory_seq_rm(one.memory, 0, 300, -1)
            times.append(decode(one, [(300 + k, 0) for k in range(n)]))
        best[n] = round(min(times) * 1000, 1)
    out["batch_ms"] = best
    eight = context(8)
    for name, shares in (("equal", (20,) * 8), ("unequal", UNEQUAL)):
        llama_cpp.llama_memory_clear(eight.memory, True)
        decode(eight, [(k, 0) for k in range(300)])
        for s in range(1, 8):
            llama_cpp.llama_memory_seq_cp(eight.memory, 0, s, -1, -1)
        dt = decode(eight, [(300 + k, s) for s, n in enumerate(shares) for k in range(n)])
        out[f"8_seqs_{name}"] = {"tokens": sum(shares), "ms": round(dt * 1000), "tok_per_s": round(sum(shares) / dt, 1)}
    llama_cpp.llama_batch_free(batch)
    one.close()
    eight.close()
    model.close()
    t = time_layout(path, threads, repacked)
    out["calibration"] = {"prompt_ms_per_token": round(t.prompt_s * 1000, 2), "step_ms": round(t.step_s * 1000, 1),
                          "mix_ms": round(t.mix_s * 1000, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from llama_cpp._logger import set_verbose

    set_verbose(False)
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
