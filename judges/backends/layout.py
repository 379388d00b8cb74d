"""Which weight layout llama.cpp runs a GGUF fastest in on this machine: measured once, remembered with the model.

llama.cpp can repack a Q4_K model's weights at load into interleaved blocks for its CPU kernels ("extra buffer
types"). Whether that pays depends on the CPU and on the work: on a 2-core AMD EPYC (Zen 4) the repacked weights
decode 1.1-1.4x faster but evaluate prompts up to 1.4x slower than the file's own layout, and an `rrd refine`
evaluates about 14 prompt tokens per decode step (docs/results/local_engines/, bench/bench_layouts.py). Which way a machine
goes cannot be read off its CPU flags, so `auto` times both layouts on one short prompt and a few decode steps
(a few seconds, once) and keeps the one that would run that mix faster. The choice is stored under the model
cache, keyed by CPU, thread count, llama-cpp-python version and the GGUF file, so every later load reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..files import atomic_file
from ..models import models_dir

Layout = Literal["repacked", "plain"]
#: prompt tokens evaluated per decode step in the quickstart refine (13,207 and 901 on 2 cores, tenth round)
PROMPT_PER_DECODE = 14
_PROMPT = 128  # tokens in the timed prompt: the size of a grading batch (8 criteria of ~16 new tokens)
_STEPS = 16  # single-token decode steps timed


def cpu_model() -> str:
    """The CPU's model name (every benchmark figure carries it; the calibration is keyed by it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class Timing:
    """Seconds per prompt token (in a _PROMPT-token batch) and per decode step of one layout."""

    prompt_s: float
    step_s: float

    @property
    def mix_s(self) -> float:
        """Seconds for PROMPT_PER_DECODE prompt tokens and one decode step: a refine's work in its proportions."""
        return PROMPT_PER_DECODE * self.prompt_s + self.step_s


def pick(timings: dict[Layout, Timing]) -> Layout:
    """The layout that runs a refine's mix of work faster (ties keep the repacked layout, llama.cpp's default)."""
    return min(timings, key=lambda k: (timings[k].mix_s, k != "repacked"))


def _record_path(gguf: Path, threads: int, cache_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    import llama_cpp

    st = gguf.stat()
    key = {"cpu": cpu_model(), "threads": threads, "llama_cpp": llama_cpp.__version__, "gguf": str(gguf),
           "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return models_dir(cache_dir) / "layout" / f"{digest}.json", key


def remembered(gguf: Path, threads: int, cache_dir: Path | None) -> Layout | None:
    """The layout measured earlier for this machine and file, or None."""
    path, key = _record_path(gguf, threads, cache_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    choice = data.get("layout") if isinstance(data, dict) and data.get("key") == key else None
    return choice if choice in ("repacked", "plain") else None


def remember(gguf: Path, threads: int, cache_dir: Path | None, choice: Layout, timings: dict[Layout, Timing]) -> None:
    path, key = _record_path(gguf, threads, cache_dir)
    record = {"key": key, "layout": choice, "prompt_per_decode": PROMPT_PER_DECODE,
              "timings": {k: asdict(v) for k, v in timings.items()}}
    with atomic_file(path) as fh:
        json.dump(record, fh, indent=1, sort_keys=True)


@dataclass
class Probe:
    """A model loaded in one layout with a context to time llama_decode calls in (see `probe`)."""

    llama_cpp: Any
    ctx: Any  # _internals.LlamaContext
    batch: Any  # llama_batch
    n_vocab: int

    def decode(self, entries: list[tuple[int, int]]) -> float:
        """One llama_decode call of (position, sequence) entries, logits at the last; its seconds. Any tokens do:
        the cost of a forward pass does not depend on which."""
        b = self.batch
        b.n_tokens = len(entries)
        for j, (pos, seq) in enumerate(entries):
            b.token[j] = pos * 7919 % self.n_vocab
            b.pos[j] = pos
            b.n_seq_id[j] = 1
            b.seq_id[j][0] = seq
            b.logits[j] = j == len(entries) - 1
        t = time.perf_counter()
        if self.llama_cpp.llama_decode(self.ctx.ctx, b) != 0:
            raise RuntimeError("llama_decode failed while timing a weight layout")
        return time.perf_counter() - t


@contextlib.contextmanager
def probe(gguf: Path, threads: int, repacked: bool, *, n_seq: int = 1, seq_ctx: int = 512,
          n_batch: int = _PROMPT) -> Iterator[Probe]:
    """`gguf` loaded in one layout, with a context of `n_seq` KV streams of `seq_ctx` cells, as LlamaCppBackend
    makes them (no flash attention, one stream per sequence); freed on exit."""
    import llama_cpp
    from llama_cpp import _internals
    from llama_cpp._logger import set_verbose

    set_verbose(False)  # llama.cpp logs every tensor at load otherwise
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.use_extra_bufts = repacked
    model = _internals.LlamaModel(path_model=str(gguf), params=mparams, verbose=False)
    p = llama_cpp.llama_context_default_params()
    p.n_ctx = n_seq * seq_ctx
    p.n_batch = p.n_ubatch = n_batch
    p.n_seq_max = n_seq
    p.kv_unified = False
    p.n_threads = p.n_threads_batch = threads
    p.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    p.no_perf = True
    ctx = _internals.LlamaContext(model=model, params=p, verbose=False)
    batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
    try:
        yield Probe(llama_cpp, ctx, batch, model.n_vocab())
    finally:
        llama_cpp.llama_batch_free(batch)
        ctx.close()
        model.close()


def time_layout(gguf: Path, threads: int, repacked: bool) -> Timing:
    """Load the model in one layout and time a fresh _PROMPT-token prompt and _STEPS decode steps after it."""
    with probe(gguf, threads, repacked) as pr:
        pr.decode([(k, 0) for k in range(16)])  # warm-up: first-call allocations and page faults are not the layout's
        pr.llama_cpp.llama_memory_clear(pr.ctx.memory, True)
        prompt_s = pr.decode([(k, 0) for k in range(_PROMPT)]) / _PROMPT
        step_s = sum(pr.decode([(_PROMPT + k, 0)]) for k in range(_STEPS)) / _STEPS
    return Timing(prompt_s, step_s)


def amx_build() -> bool:
    """True when the installed llama.cpp was compiled with AMX kernels (see `choose`)."""
    import llama_cpp

    return b"AMX_INT8 = 1" in (llama_cpp.llama_print_system_info() or b"")


def choose(weights: Literal["auto", "repacked", "plain"], gguf: Path, threads: int, cache_dir: Path | None) -> Layout:
    """The layout to load `gguf` in. Repacking (llama.cpp's extra buffer types) in a build with AMX kernels
    (-march=native on a Sapphire Rapids or newer CPU) also routes matmuls to its AMX buffer, which crashed (SIGSEGV
    in ggml_backend_amx_mul_mat) on the 2-core machines we test on: such a build runs the plain layout whatever was
    asked (build with AMX off, README, to have the choice). `auto` is `calibrate`'s choice."""
    if amx_build():
        return "plain"
    if weights != "auto":
        return weights
    return calibrate(gguf, threads, cache_dir)


def calibrate(gguf: Path, threads: int, cache_dir: Path | None) -> Layout:
    """The remembered layout for this machine and file, or both timed now, the faster one remembered."""
    known = remembered(gguf, threads, cache_dir)
    if known is not None:
        return known
    timings: dict[Layout, Timing] = {"repacked": time_layout(gguf, threads, True),
                                     "plain": time_layout(gguf, threads, False)}
    choice = pick(timings)
    remember(gguf, threads, cache_dir, choice, timings)
    return choice
