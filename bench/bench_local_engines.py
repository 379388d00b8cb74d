"""The embedded judge on its engines: llama.cpp (the shipped Q4_K_M GGUF), transformers (bf16, dequantized), the
hybrid of both, and llama-cpp-python's own `Llama` ("raw": the library as its users call it, the yardstick).

For each engine, in a fresh subprocess (so peak RSS is that engine's alone), with the judge cache off:
  - load: seconds to a ready model (after the one-time preparation, which is timed apart and not counted)
  - prompt evaluation tokens/s: one ~1,400-token prompt never seen before, answered with one token
  - generation tokens/s: one greedy answer alone, and 8 sampled answers of the same prompt in one call (the way
    `rrd refine` asks for its N samples), up to 256 tokens each
  - grading criteria/s: 16 criteria on the longest of the 8 answers, one criterion per call with P(YES) logprobs
    (Judge.grade, the real path; prefix reuse on both engines)
  - one whole `rrd refine` of one prompt (samples, references, initial rubrics, grading, decompositions, filters)
    with the default settings of each profile asked for (--refine paper,local), with its prompt tokens sent and
    evaluated: the reuse ratio is the share served from evaluated prefixes (Usage.cached_tokens)
  - peak RSS of the process
The raw library has no batching, logprob verdicts or refine: it reports load, prompt evaluation and decoding.

    python bench/bench_local_engines.py [--engines raw,llama.cpp,hybrid,transformers] [--refine local]
        [--model qwen2.5-coder-1.5b] [--prompt TEXT] [--json docs/results/local_engines/engines.json]

Prints a table and writes every figure, with the CPU model, to --json. On 2 cores, about 6 minutes per engine
with the local refine; `--refine none` measures the engines in a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from judges.backends.layout import cpu_model  # noqa: E402

#: a prompt no engine has seen (prompt evaluation is measured on it, so no prefix of it can be reused)
LONG_PROMPT = "Summarise the following notes in one line.\n" + "\n".join(
    f"Note {i}: the shipment of item {i * 7 % 97} arrived on day {i % 28 + 1} in warehouse {i % 5}." for i in range(60))
DEFAULT_PROMPT = (
    "What is the boiling point of water at sea level in degrees Celsius, and why does it drop at high altitude?"
)
GEN_PROMPT = "Explain in detail how a refrigerator keeps food cold, step by step, for a curious teenager."
CRITERIA = [
    "The response explains that the refrigerant absorbs heat inside the fridge.",
    "The response mentions the compressor.",
    "The response mentions the condenser coils.",
    "The response mentions the evaporator.",
    "The response explains why evaporation cools.",
    "The response is written for a teenager.",
    "The response is organised in steps.",
    "The response avoids unexplained jargon.",
    "The response mentions that heat is released outside the fridge.",
    "The response is factually accurate.",
    "The response is under 500 words.",
    "The response uses an analogy.",
    "The response mentions the thermostat.",
    "The response mentions insulation.",
    "The response ends with a summary.",
    "The response is written in French.",
]


def _keeper(engine: str, partial: Path | None) -> tuple[dict[str, Any], Any]:
    """The figures of one engine, and a function that records one: every figure is written to `partial` (one
    JSON object, rewritten) as soon as it is measured, so a long run that fails late keeps what it measured."""
    out: dict[str, Any] = {"engine": engine}

    def keep(key: str, value: Any) -> None:
        out[key] = value
        print(f"{engine} {key}: {json.dumps(value)}", file=sys.stderr, flush=True)
        if partial is not None:
            partial.write_text(json.dumps(out))

    return out, keep


def _raw_worker(model: str, partial: Path | None) -> dict[str, Any]:
    """llama-cpp-python's `Llama`, as its documentation calls it, on the same GGUF and cores."""
    from llama_cpp import Llama

    from judges.backends.layout import choose
    from judges.backends.llamacpp import gguf_path

    out, keep = _keeper("raw", partial)
    path = gguf_path(model)
    layout = choose("auto", path, os.cpu_count() or 1, None)  # the weights layout our engine runs (layout.py)
    keep("layout", layout)
    t0 = time.monotonic()
    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=os.cpu_count(), verbose=False,
                use_extra_bufts=layout == "repacked")
    keep("load_s", round(time.monotonic() - t0, 2))
    t = time.monotonic()
    first = llm.create_chat_completion([{"role": "user", "content": LONG_PROMPT}], max_tokens=1)
    dt = time.monotonic() - t
    n = first["usage"]["prompt_tokens"]
    keep("prompt_eval", {"tokens": n, "s": round(dt, 2), "tok_per_s": round(n / dt, 1)})
    llm.reset()
    t = time.monotonic()
    one = llm.create_chat_completion([{"role": "user", "content": GEN_PROMPT}], max_tokens=256, temperature=0.0)
    dt = time.monotonic() - t
    n = one["usage"]["completion_tokens"]
    keep("gen_single", {"tokens": n, "s": round(dt, 2), "tok_per_s": round(n / dt, 2)})
    keep("peak_rss_gb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2))
    return out


def _worker(engine: str, model: str, prompt: str, profiles: list[str], partial: Path | None = None) -> dict[str, Any]:
    from judges import Judge, JudgeConfig
    from judges.types import SamplingParams
    from rrd.config import RefineConfig, profile_config
    from rrd.refine import refine_prompt

    if engine == "raw":
        return _raw_worker(model, partial)
    out, keep = _keeper(engine, partial)
    cfg = JudgeConfig(model=f"local:{model}", local_engine=engine, cache=False)  # type: ignore[arg-type]
    judge = Judge(cfg)
    backend: Any = judge.backend
    t0 = time.monotonic()
    backend.load()
    keep("load_s", round(time.monotonic() - t0, 2))
    if getattr(backend, "layout", None):  # llama.cpp: the weight layout its calibration chose (layout.py)
        keep("layout", backend.layout)
    msgs = [{"role": "user", "content": GEN_PROMPT}]

    def params(i: int) -> SamplingParams:
        return SamplingParams(temperature=0.7, top_p=0.95, max_tokens=256, seed=1, sample_index=i)

    async def run() -> None:
        t = time.monotonic()
        first = await judge.generate([{"role": "user", "content": LONG_PROMPT}], SamplingParams(max_tokens=1))
        dt = time.monotonic() - t
        keep("prompt_eval", {"tokens": first.usage.prompt_tokens, "s": round(dt, 2),
                             "tok_per_s": round(first.usage.prompt_tokens / dt, 1)})
        t = time.monotonic()
        # greedy: a sampled answer may stop after a dozen tokens, which would measure the prompt, not decoding
        one = await judge.generate(msgs, SamplingParams(temperature=0.0, max_tokens=256))
        dt = time.monotonic() - t
        keep("gen_single", {"tokens": one.usage.completion_tokens, "s": round(dt, 2),
                             "tok_per_s": round(one.usage.completion_tokens / dt, 2)})
        t = time.monotonic()
        eight = await judge.generate_many([(msgs, params(i)) for i in range(8)])
        dt = time.monotonic() - t
        n = sum(c.usage.completion_tokens for c in eight)
        keep("gen_batch8", {"tokens": n, "s": round(dt, 2), "tok_per_s": round(n / dt, 2)})
        longest = max(eight, key=lambda c: c.usage.completion_tokens)
        response = longest.text
        t = time.monotonic()
        verdicts = await judge.grade(CRITERIA, response)
        dt = time.monotonic() - t
        keep("grading", {"criteria": len(CRITERIA), "response_tokens": longest.usage.completion_tokens,
                          "s": round(dt, 2), "criteria_per_s": round(len(CRITERIA) / dt, 2),
                          "with_p_yes": sum(v.p_yes is not None for v in verdicts)})
        for profile in profiles:
            config: RefineConfig = profile_config(profile)
            t = time.monotonic()
            rs = await refine_prompt(prompt, judge, judge, config)
            dt = time.monotonic() - t
            keep(f"refine_{profile}", {
                "s": round(dt, 1), "calls": rs.stats.get("calls"), "accepted": len(rs.rubrics),
                "samples": len(rs.samples), "sample_chars_mean": round(
                    sum(len(s.text) for s in rs.samples) / max(1, len(rs.samples))),
                "prompt_tokens": rs.stats.get("prompt_tokens"), "cached_tokens": rs.stats.get("cached_tokens"),
                "reuse": round(rs.stats.get("cached_tokens", 0) / max(1, rs.stats.get("prompt_tokens", 0)), 3),
                "completion_tokens": rs.stats.get("completion_tokens"), "stopped": rs.stopped,
                "fallback": rs.fallback, "stages": {k: v.get("calls") for k, v in rs.stats.get("stages", {}).items()},
            })
        await judge.aclose()

    asyncio.run(run())
    keep("peak_rss_gb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2))
    return out


def _prepare(model: str, engines: list[str]) -> dict[str, float]:
    """One-time preparation (assemble + verify the GGUF; transformers also dequantizes it), timed apart."""
    from judges.models import bundled_gguf, resolve_local_model

    times = {}
    t = time.monotonic()
    bundled_gguf(model)
    times["assemble_gguf_s"] = round(time.monotonic() - t, 1)
    if "transformers" in engines:
        t = time.monotonic()
        resolve_local_model(model)
        times["dequantize_s"] = round(time.monotonic() - t, 1)
    return times


def _table(rows: list[dict[str, Any]], profiles: list[str]) -> str:
    head = ["engine", "weights", "load s", "prompt eval tok/s", "gen tok/s (1)", "gen tok/s (8-way)", "grade crit/s"]
    head += [f"refine {p}: time (calls), prompt tokens evaluated of sent (reuse)" for p in profiles]
    head += ["peak RSS GB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def get(r: dict[str, Any], key: str, field: str, fmt: str) -> str:
        return format(r[key][field], fmt) if key in r else "-"

    for r in rows:
        cells = [r["engine"], r.get("layout", "-"), f"{r['load_s']:.1f}", get(r, "prompt_eval", "tok_per_s", ".1f"),
                 get(r, "gen_single", "tok_per_s", ".1f"), get(r, "gen_batch8", "tok_per_s", ".1f"),
                 get(r, "grading", "criteria_per_s", ".2f")]
        for p in profiles:
            x = r.get(f"refine_{p}")
            cells.append(f"{x['s'] / 60:.1f} min ({x['calls']:.0f}), {x['prompt_tokens'] - x['cached_tokens']:,.0f} "
                         f"of {x['prompt_tokens']:,.0f} ({x['reuse']:.0%})" if x else "-")
        cells.append(f"{r['peak_rss_gb']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="raw,llama.cpp,hybrid,transformers")
    ap.add_argument("--refine", default="local", help="profiles to refine one prompt with (paper,local), or 'none'")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--partial", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    profiles = [] if args.refine == "none" else [p for p in args.refine.split(",") if p]
    if args.worker:
        partial = Path(args.partial) if args.partial else None
        print(json.dumps(_worker(args.worker, args.model, args.prompt, profiles, partial)))
        return
    engines = [e for e in args.engines.split(",") if e]
    result: dict[str, Any] = {
        "model": args.model, "prompt": args.prompt, "cpu": cpu_model(), "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(), "prepare": _prepare(args.model, engines), "engines": [],
    }
    for engine in engines:
        partial = Path(args.json or "local_engines.json").with_suffix(f".{engine}.partial.json")
        cmd = [sys.executable, __file__, "--worker", engine, "--model", args.model, "--prompt", args.prompt,
               "--refine", args.refine, "--partial", str(partial)]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)  # stderr: live figures
        if done.returncode != 0:
            raise SystemExit(f"{engine} worker failed ({done.returncode}); what it measured is in {partial}")
        result["engines"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        partial.unlink(missing_ok=True)
    print(_table(result["engines"], profiles))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
