"""Reward latency per GRPO step: one `await reward_func(...)` call, timed the way TRL makes it.

A step is P prompts x G generations x R rubrics (default 8 x 8 x 20 = 1,280 grading calls, one criterion per
call). The reward function is called with keyword arguments exactly as trl's GRPOTrainer._calculate_rewards does
(prompts, completions, completion_ids, the dataset column prompt_id, trainer_state, log_extra, log_metric), as a
coroutine submitted from the main thread to an event loop on a daemon thread (TRL's async-reward path), and the
wall time is taken around that submission. Then the same batch is scored again (a later step, same rollouts) and
the cache hit rate of that repeat is reported (goal: 100%, no call sent).

Two judges:

* loopback (default): an OpenAI-compatible server on 127.0.0.1 (tests/loopback_server.py) in its own process,
  answering every call after a fixed latency L with a deterministic YES/NO (a hash of criterion and response)
  plus logprobs. Ideal wall = distinct calls x L / C at judge concurrency C; goal wall / ideal <= 1.2. Calls
  sent are counted by the server itself. A judge-only run (Judge.grade_many of the same items, fresh cache)
  separates the reward layer from the judge and server.
* local: the in-process transformers judge (default local:smollm2-135m). Its "ideal" is the wall time of the
  same gradings sent straight to Judge.grade_many with a fresh cache, so the ratio is the reward layer's
  overhead on top of the local backend.

Every measured call uses a fresh temporary SQLite cache. The breakdown (on by default) wraps the judge's cache
get/put and backend.complete to show where the wall time goes; its own cost is a few microseconds per call.

    python bench/bench_reward_latency.py loopback [--latency 0.05] [--concurrency 16 64]
        [--weights stored online_wu] [--prompts 8] [--generations 8] [--rubrics 20] [--distinct 8]
        [--repeats 1] [--out FILE.json]
    python bench/bench_reward_latency.py local [--model local:smollm2-135m] [--prompts 2] [--generations 4]
        [--rubrics 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_local_judge import CRITERIA, PROMPTS_AND_RESPONSES  # noqa: E402
from judges.judge import GradeItem, Judge, JudgeConfig  # noqa: E402
from rewards.rubric_reward import RubricReward, RubricRewardConfig  # noqa: E402
from rrd.records import RubricSet  # noqa: E402


# ------------------------------------------------------------------------------------------------- the batch
@dataclass
class Batch:
    """One GRPO step's reward inputs, TRL layout: a prompt's G generations are consecutive."""

    prompts: list[list[dict]]
    completions: list[list[dict]]
    completion_ids: list[list[int]]
    prompt_id: list[str]
    sets: dict[str, RubricSet]
    items: list[GradeItem]  # what the reward will ask the judge to grade, in the same order
    distinct_calls: int


def _variant(response: str, g: int) -> str:
    """A distinct generation: a different cut of the reference response plus a tag (all share a long prefix)."""
    cut = int(len(response) * (0.55 + 0.05 * (g % 10)))
    return f"{response[:cut].rstrip()}\n\n(Generation {g}.)"


def build_batch(n_prompts: int, n_gen: int, n_rubrics: int, distinct: int) -> Batch:
    prompts, completions, ids, pids, items = [], [], [], [], []
    sets: dict[str, RubricSet] = {}
    for p in range(n_prompts):
        prompt, response = PROMPTS_AND_RESPONSES[p % len(PROMPTS_AND_RESPONSES)]
        if p >= len(PROMPTS_AND_RESPONSES):
            prompt = f"{prompt} (variant {p})"
        pid = f"p{p:03d}"
        texts = [CRITERIA[(p + k) % len(CRITERIA)] for k in range(n_rubrics)]
        texts = [t if k < len(CRITERIA) else f"{t} (check {k})" for k, t in enumerate(texts)]
        sets[pid] = RubricSet.provided(prompt, texts, prompt_id=pid)
        for g in range(n_gen):
            text = _variant(response, g % distinct)
            prompts.append([{"role": "user", "content": prompt}])
            completions.append([{"role": "assistant", "content": text}])
            ids.append(list(range(len(text) // 4)))
            pids.append(pid)
            items.append(GradeItem(texts, text, prompt))
    distinct_calls = n_prompts * min(distinct, n_gen) * n_rubrics
    return Batch(prompts, completions, ids, pids, sets, items, distinct_calls)


class Recorder:
    """Stands in for GRPOTrainer._log_completion_extra / _log_metric."""

    def __init__(self) -> None:
        self.extra: dict[str, list] = {}
        self.metrics: dict[str, float] = {}

    def log_extra(self, column: str, values: list) -> None:
        self.extra.setdefault(column, []).extend(values)

    def log_metric(self, name: str, value: float) -> None:
        self.metrics[name] = self.metrics.get(name, 0.0) + value


def trainer_state(step: int) -> Any:
    try:
        from transformers import TrainerState

        return TrainerState(global_step=step)
    except ImportError:  # pragma: no cover
        from types import SimpleNamespace

        return SimpleNamespace(global_step=step)


# ------------------------------------------------------------------------------------------ TRL's event loop
class DaemonLoop:
    """What trl.trainer.utils.start_event_loop_in_daemon does: a loop on a daemon thread; coroutines are
    submitted with asyncio.run_coroutine_threadsafe(...).result() from the training thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True, name="reward-loop")
        self.thread.start()
        ready.wait()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ----------------------------------------------------------------------------------------------- breakdown
@dataclass
class Phases:
    """Wall seconds spent in the judge's phases during one measured call (serial parts sum exactly)."""

    grade_many: float = 0.0
    cache_get: float = 0.0
    cache_put: float = 0.0
    backend: float = 0.0
    gc_pause: float = 0.0  # cyclic garbage collector pauses (any thread)
    cache_gets: int = 0
    cache_puts: int = 0
    backend_requests: int = 0
    backend_calls: int = 0

    def reset(self) -> None:
        for f in self.__dataclass_fields__:
            setattr(self, f, type(getattr(self, f))())


_GC_STATE: dict[str, Any] = {"phases": None, "t": 0.0}


def _gc_callback(phase: str, info: dict) -> None:
    ph = _GC_STATE["phases"]
    if ph is None:
        return
    if phase == "start":
        _GC_STATE["t"] = time.perf_counter()
    else:
        ph.gc_pause += time.perf_counter() - _GC_STATE["t"]


gc.callbacks.append(_gc_callback)


def instrument(judge: Judge, ph: Phases) -> None:
    """Wrap (per instance) grade_many, cache.get/put and backend.complete with wall-time accumulators."""
    grade_many = judge.grade_many

    async def timed_grade_many(items):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return await grade_many(items)
        finally:
            ph.grade_many += time.perf_counter() - t

    judge.grade_many = timed_grade_many  # type: ignore[method-assign]
    assert judge.backend is not None
    complete = judge.backend.complete

    async def timed_complete(requests):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return await complete(requests)
        finally:
            ph.backend += time.perf_counter() - t
            ph.backend_requests += len(requests)
            ph.backend_calls += 1

    judge.backend.complete = timed_complete  # type: ignore[method-assign]
    if judge.cache is not None:
        cache = judge.cache
        get, put = cache.get, cache.put

        def timed_get(model, request):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return get(model, request)
            finally:
                ph.cache_get += time.perf_counter() - t
                ph.cache_gets += 1

        def timed_put(model, request, completion):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return put(model, request, completion)
            finally:
                ph.cache_put += time.perf_counter() - t
                ph.cache_puts += 1

        cache.get, cache.put = timed_get, timed_put  # type: ignore[method-assign]


def proc_cpu_s(pid: int | None) -> float:
    """utime + stime of a process (the loopback server) from /proc; 0 when unavailable."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes), from /proc/stat."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, IndexError, ValueError):
        return float("nan")


# ------------------------------------------------------------------------------------------ measurements
@dataclass
class Env:
    loop: DaemonLoop
    tmp: str
    server_count: Any = None  # multiprocessing.Value incremented by the loopback server per request
    server_pid: int | None = None
    breakdown: bool = True
    runs: int = 0

    def cache_path(self, tag: str) -> str:
        self.runs += 1
        return os.path.join(self.tmp, f"{self.runs:03d}-{tag}.sqlite")

    def served(self) -> int:
        return int(self.server_count.value) if self.server_count is not None else -1


@dataclass
class Measured:
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float
    other_cpu_s: float  # CPU the rest of the machine (other jobs) used meanwhile: contention
    calls_server: int  # requests the server answered (-1: not counted)
    calls_judge: float  # Accounting.calls delta
    hits_judge: float  # Accounting.cache_hits delta (cache + identical requests in the batch)
    phases: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        total = self.calls_judge + self.hits_judge
        return self.hits_judge / total if total else 0.0


def measure(env: Env, judge: Judge, ph: Phases, submit: Any) -> tuple[Measured, Any]:
    acc = judge.accounting
    assert acc is not None
    before = acc.snapshot()
    served0, scpu0, busy0 = env.served(), proc_cpu_s(env.server_pid), machine_busy_s()
    ph.reset()
    _GC_STATE["phases"] = ph if env.breakdown else None
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = submit()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    _GC_STATE["phases"] = None
    after = acc.snapshot()
    server_cpu = proc_cpu_s(env.server_pid) - scpu0
    m = Measured(
        wall_s=wall,
        client_cpu_s=cpu,
        server_cpu_s=server_cpu,
        other_cpu_s=max(0.0, machine_busy_s() - busy0 - cpu - server_cpu),
        calls_server=env.served() - served0 if env.server_count is not None else -1,
        calls_judge=float(after["calls"]) - float(before["calls"]),  # type: ignore[arg-type]
        hits_judge=float(after["cache_hits"]) - float(before["cache_hits"]),  # type: ignore[arg-type]
        phases={k: getattr(ph, k) for k in ph.__dataclass_fields__} if env.breakdown else {},
    )
    return m, result


def reward_step(env: Env, reward: RubricReward, batch: Batch, step: int) -> tuple[Measured, list]:
    rec = Recorder()
    kwargs = dict(
        prompts=batch.prompts,
        completions=batch.completions,
        completion_ids=batch.completion_ids,
        prompt_id=batch.prompt_id,
        trainer_state=trainer_state(step),
        log_extra=rec.log_extra,
        log_metric=rec.log_metric,
    )
    ph: Phases = reward.judge._bench_phases  # type: ignore[attr-defined]
    m, scores = measure(env, reward.judge, ph, lambda: env.loop.run(reward.reward_func(**kwargs)))
    m.metrics = dict(rec.metrics)
    assert len(scores) == len(batch.prompts)
    return m, scores


def new_judge(env: Env, cfg: JudgeConfig, tag: str, backend: Any = None, accounting: Any = None) -> Judge:
    from dataclasses import replace

    judge = Judge(replace(cfg, cache=True, cache_path=env.cache_path(tag)), backend=backend, accounting=accounting)
    ph = Phases()
    if env.breakdown:
        instrument(judge, ph)
    judge._bench_phases = ph  # type: ignore[attr-defined]
    return judge


def warm_up(env: Env, judge: Judge, n: int) -> float:
    """Imports, connection pool, first-call setup: not per-step cost. Distinct texts, so no later cache hit."""
    if n <= 0:
        return 0.0
    t = time.perf_counter()
    env.loop.run(judge.grade_many([GradeItem([f"Warm-up criterion {i}."], f"warm-up response {i}") for i in range(n)]))
    return time.perf_counter() - t


def one_reward_run(env: Env, cfg: JudgeConfig, batch: Batch, weights: str, warm: int, backend: Any = None,
                   accounting: Any = None) -> dict:
    judge = new_judge(env, cfg, f"reward-{weights}", backend, accounting)
    warm_s = warm_up(env, judge, warm)
    reward = RubricReward(judge, batch.sets, RubricRewardConfig(weights=weights))  # type: ignore[arg-type]
    first, scores = reward_step(env, reward, batch, step=1)
    repeat, scores2 = reward_step(env, reward, batch, step=2)
    if backend is None:
        env.loop.run(judge.aclose())
    n_none = sum(s is None for s in scores)
    return {
        "warmup_s": warm_s,
        "first": first,
        "repeat": repeat,
        "none_rewards": n_none,
        "repeat_same_scores": scores == scores2,
        "wu_fallback_frac": first.metrics.get("rubric/wu_fallback_frac"),
    }


def one_judge_run(env: Env, cfg: JudgeConfig, batch: Batch, warm: int, backend: Any = None,
                  accounting: Any = None) -> Measured:
    judge = new_judge(env, cfg, "judge-only", backend, accounting)
    warm_up(env, judge, warm)
    items = [GradeItem(it.criteria, it.response, it.prompt) for it in batch.items]
    ph: Phases = judge._bench_phases  # type: ignore[attr-defined]
    m, verdicts = measure(env, judge, ph, lambda: env.loop.run(judge.grade_many(items)))
    unscored = sum(v.met is None for row in verdicts for v in row)
    if unscored and env.server_count is not None:  # the local mode reports its unscored verdicts once
        print(f"  warning: {unscored} unscored verdicts in the judge-only run")
    if backend is None:
        env.loop.run(judge.aclose())
    return m


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def phase_text(ph: dict, wall: float) -> str:
    if not ph:
        return ""
    gm = ph["grade_many"]
    judge_other = gm - ph["cache_get"] - ph["backend"] - ph["cache_put"]
    return (f"reward layer {wall - gm:.3f}s | grade_many {gm:.3f}s = cache get {ph['cache_get']:.3f}s "
            f"({ph['cache_gets']}) + backend {ph['backend']:.3f}s ({ph['backend_calls']} call(s), "
            f"{ph['backend_requests']} req) + cache put "
            f"{ph['cache_put']:.3f}s ({ph['cache_puts']}) + other {judge_other:.3f}s; gc pauses {ph['gc_pause']:.3f}s")


# -------------------------------------------------------------------------------------------------- modes
def run_loopback(args: argparse.Namespace, env: Env) -> dict:
    from tests.loopback_server import LoopbackServer, Reply

    batch = build_batch(args.prompts, args.generations, args.rubrics, args.distinct)
    counter = multiprocessing.get_context("fork").Value("l", 0)
    latency = args.latency

    def script(n: int, req: dict) -> Reply:
        with counter.get_lock():
            counter.value += 1
        content = req["messages"][-1]["content"]
        h = hashlib.blake2b(content.encode(), digest_size=2).digest()[0]
        return Reply(text="YES" if h % 3 else "NO", delay_s=latency)

    rows: list[dict] = []
    with LoopbackServer(script, process=True) as server:
        env.server_count = counter
        env.server_pid = server._child.pid if server._child is not None else None
        print(f"loopback: latency {latency * 1000:.0f} ms, {args.prompts} prompts x {args.generations} generations "
              f"({args.distinct} distinct) x {args.rubrics} rubrics = {len(batch.items) * args.rubrics} gradings, "
              f"{batch.distinct_calls} distinct; transport {args.transport}; {os.cpu_count()} CPUs")
        # the first call of the process pays imports (openai's types; litellm, imported by the price lookup of the
        # first completion) and client setup: a first GRPO step pays it once; it is kept out of the step figures
        cold_judge = new_judge(env, JudgeConfig(model="loopback-model", api_base=server.api_base,
                                                transport=args.transport), "cold")  # type: ignore[arg-type]
        cold_s = warm_up(env, cold_judge, 1)
        env.loop.run(cold_judge.aclose())
        print(f"cold start: first call of the process {cold_s:.2f}s (excluded from the figures below)")
        for c in args.concurrency:
            cfg = JudgeConfig(model="loopback-model", api_base=server.api_base, concurrency=c,
                              transport=args.transport)  # type: ignore[arg-type]
            ideal = batch.distinct_calls * latency / c
            for rep in range(args.repeats):
                j = one_judge_run(env, cfg, batch, warm=c)
                row = {"mode": "loopback", "kind": "judge_only", "concurrency": c, "weights": None, "rep": rep,
                       "ideal_s": ideal, "wall_s": j.wall_s, "ratio": j.wall_s / ideal, "calls_server":
                       j.calls_server, "calls_judge": j.calls_judge, "client_cpu_s": j.client_cpu_s,
                       "server_cpu_s": j.server_cpu_s, "other_cpu_s": j.other_cpu_s,
                       "phases": j.phases}
                rows.append(row)
                print(f"C={c:<3} judge-only           wall {j.wall_s:6.3f}s ideal {ideal:6.3f}s ratio "
                      f"{j.wall_s / ideal:5.2f}  calls {j.calls_server}  cpu client {j.client_cpu_s:.2f}s "
                      f"server {j.server_cpu_s:.2f}s other {j.other_cpu_s:.2f}s")
                if j.phases:
                    print(f"      {phase_text(j.phases, j.wall_s)}")
                for w in args.weights:
                    r = one_reward_run(env, cfg, batch, w, warm=c)
                    f, rp = r["first"], r["repeat"]
                    row = {"mode": "loopback", "kind": "reward", "concurrency": c, "weights": w, "rep": rep,
                           "ideal_s": ideal, "wall_s": f.wall_s, "ratio": f.wall_s / ideal,
                           "calls_server": f.calls_server, "calls_judge": f.calls_judge,
                           "first_hit_rate": f.hit_rate, "client_cpu_s": f.client_cpu_s,
                           "server_cpu_s": f.server_cpu_s, "other_cpu_s": f.other_cpu_s,
                           "phases": f.phases,
                           "repeat_wall_s": rp.wall_s, "repeat_calls_server": rp.calls_server,
                           "repeat_hit_rate": rp.hit_rate, "repeat_phases": rp.phases,
                           "none_rewards": r["none_rewards"], "repeat_same_scores": r["repeat_same_scores"],
                           "wu_fallback_frac": r["wu_fallback_frac"], "warmup_s": r["warmup_s"],
                           "logged_judge_calls": f.metrics.get("rubric/judge_calls"),
                           "logged_cache_hits": f.metrics.get("rubric/judge_cache_hits")}
                    rows.append(row)
                    print(f"C={c:<3} reward {w:<10}    wall {f.wall_s:6.3f}s ideal {ideal:6.3f}s ratio "
                          f"{f.wall_s / ideal:5.2f}  calls {f.calls_server}  cpu client {f.client_cpu_s:.2f}s "
                          f"server {f.server_cpu_s:.2f}s other {f.other_cpu_s:.2f}s | repeat: {rp.wall_s:.3f}s, "
                          f"hit rate {rp.hit_rate:.1%}, "
                          f"calls {rp.calls_server}, same scores {r['repeat_same_scores']}"
                          + (f", wu fallback {r['wu_fallback_frac']:.2f}" if r["wu_fallback_frac"] is not None
                             else ""))
                    if f.phases:
                        print(f"      {phase_text(f.phases, f.wall_s)}")
                        print(f"      repeat: {phase_text(rp.phases, rp.wall_s)}")
    summary = []
    for c in args.concurrency:
        for w in [None, *args.weights]:
            sel = [r for r in rows if r["concurrency"] == c and r["weights"] == w]
            if sel:
                summary.append({"concurrency": c, "weights": w or "judge-only",
                                "wall_s_median": med([r["wall_s"] for r in sel]),
                                "ratio_median": med([r["ratio"] for r in sel]),
                                "ratio_min": min(r["ratio"] for r in sel),
                                "repeat_hit_rate_min": min((r.get("repeat_hit_rate", 1.0) for r in sel)),
                                "ideal_s": sel[0]["ideal_s"]})
    print("\nmedians:")
    for s in summary:
        print(f"  C={s['concurrency']:<3} {s['weights']:<11} wall {s['wall_s_median']:.3f}s / ideal "
              f"{s['ideal_s']:.3f}s = {s['ratio_median']:.2f} (best {s['ratio_min']:.2f}; goal <= 1.2: "
              f"{'met' if s['ratio_median'] <= 1.2 else 'missed'})")
    return {"batch": {"prompts": args.prompts, "generations": args.generations, "rubrics": args.rubrics,
                      "distinct_per_group": args.distinct, "gradings": len(batch.items) * args.rubrics,
                      "distinct_calls": batch.distinct_calls},
            "latency_s": latency, "transport": args.transport, "cold_start_s": cold_s, "rows": rows,
            "summary": summary}


def run_local(args: argparse.Namespace, env: Env) -> dict:
    from judges.backends.local import LocalBackend
    from judges.accounting import Accounting

    batch = build_batch(args.prompts, args.generations, args.rubrics, args.distinct)
    print(f"local: {args.model}, {args.prompts} prompts x {args.generations} generations ({args.distinct} distinct) "
          f"x {args.rubrics} rubrics = {batch.distinct_calls} distinct gradings; {os.cpu_count()} CPUs")
    acc = Accounting()
    backend = LocalBackend(args.model.removeprefix("local:"), acc, max_batch=args.max_batch, threads=args.threads)
    t = time.perf_counter()
    backend.load()
    load_s = time.perf_counter() - t
    cfg = JudgeConfig(model=args.model)
    print(f"model load {load_s:.1f}s")
    # warm-up: the whole batch once through a throwaway cache, so every tensor shape of the measured calls has
    # been seen (first-use kernel setup is not per-step cost)
    t = time.perf_counter()
    warm = new_judge(env, cfg, "warm", backend, acc)
    verdicts = env.loop.run(warm.grade_many(batch.items))
    warm_s = time.perf_counter() - t
    unscored = [v for row in verdicts for v in row if v.met is None]
    print(f"warm-up pass {warm_s:.1f}s; unscored verdicts {len(unscored)}/{batch.distinct_calls}"
          + (f" (e.g. {unscored[0].reason})" if unscored else ""))
    rows: list[dict] = []
    for rep in range(args.repeats):
        # alternate the order (isolated first on even repeats, reward first on odd ones) so drift cancels out
        order = ("judge", "reward") if rep % 2 == 0 else ("reward", "judge")
        res: dict[str, Any] = {}
        for what in order:
            if what == "judge":
                res["judge"] = one_judge_run(env, cfg, batch, warm=0, backend=backend, accounting=acc)
            else:
                res["reward"] = {w: one_reward_run(env, cfg, batch, w, warm=0, backend=backend, accounting=acc)
                                 for w in args.weights}
        j = res["judge"]
        rows.append({"mode": "local", "kind": "judge_only", "weights": None, "rep": rep, "order": order,
                     "wall_s": j.wall_s, "calls_judge": j.calls_judge, "client_cpu_s": j.client_cpu_s,
                     "other_cpu_s": j.other_cpu_s, "phases": j.phases})
        print(f"rep {rep} ({' then '.join(order)})")
        print(f"  judge-only (isolated grading)  wall {j.wall_s:7.2f}s  calls {j.calls_judge:.0f}  "
              f"{1000 * j.wall_s / max(1, j.calls_judge):.0f} ms/call  CPU {j.client_cpu_s:.1f}s, "
              f"other jobs' CPU {j.other_cpu_s:.1f}s")
        if j.phases:
            print(f"      {phase_text(j.phases, j.wall_s)}")
        for w, r in res["reward"].items():
            f, rp = r["first"], r["repeat"]
            rows.append({"mode": "local", "kind": "reward", "weights": w, "rep": rep, "order": order,
                         "wall_s": f.wall_s, "isolated_s": j.wall_s, "ratio": f.wall_s / j.wall_s,
                         "calls_judge": f.calls_judge, "first_hit_rate": f.hit_rate, "client_cpu_s": f.client_cpu_s,
                         "other_cpu_s": f.other_cpu_s, "phases": f.phases, "repeat_wall_s": rp.wall_s,
                         "repeat_calls_judge": rp.calls_judge, "repeat_hit_rate": rp.hit_rate,
                         "repeat_phases": rp.phases, "none_rewards": r["none_rewards"],
                         "repeat_same_scores": r["repeat_same_scores"], "wu_fallback_frac": r["wu_fallback_frac"]})
            print(f"  reward {w:<10}               wall {f.wall_s:7.2f}s  vs isolated {j.wall_s:.2f}s = "
                  f"{f.wall_s / j.wall_s:.3f}x  calls {f.calls_judge:.0f}  CPU {f.client_cpu_s:.1f}s, other jobs' CPU "
                  f"{f.other_cpu_s:.1f}s | repeat: "
                  f"{rp.wall_s:.3f}s, hit rate {rp.hit_rate:.1%}, calls {rp.calls_judge:.0f}, same scores "
                  f"{r['repeat_same_scores']}, None rewards {r['none_rewards']}")
            if f.phases:
                print(f"      {phase_text(f.phases, f.wall_s)}")
    for w in args.weights:
        sel = [r for r in rows if r["weights"] == w]
        layer = med([r["wall_s"] - r["phases"].get("grade_many", r["wall_s"]) for r in sel])
        print(f"median reward/isolated ({w}): {med([r['ratio'] for r in sel]):.3f}x over {len(sel)} repeats; "
              f"layer outside grade_many: {layer * 1000:.1f} ms")
    env.loop.run(backend.aclose())
    return {"model": args.model, "load_s": load_s, "warmup_pass_s": warm_s, "unscored_verdicts": len(unscored),
            "batch": {"prompts": args.prompts, "generations": args.generations, "rubrics": args.rubrics,
                      "distinct_per_group": args.distinct, "distinct_calls": batch.distinct_calls},
            "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["loopback", "local"])
    ap.add_argument("--prompts", type=int, default=None, help="default 8 (loopback) / 2 (local)")
    ap.add_argument("--generations", type=int, default=None, help="default 8 (loopback) / 4 (local)")
    ap.add_argument("--rubrics", type=int, default=None, help="default 20 (loopback) / 5 (local)")
    ap.add_argument("--distinct", type=int, default=None,
                    help="distinct completions per group (< generations: the rest repeat; default all distinct)")
    ap.add_argument("--weights", nargs="+", default=None, choices=["stored", "uniform", "online_wu"],
                    help="default: stored online_wu (loopback) / stored (local)")
    ap.add_argument("--repeats", type=int, default=1, help="repeat every measurement; medians are printed")
    ap.add_argument("--latency", type=float, default=0.05, help="loopback: seconds per call")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 64], help="loopback: judge concurrency")
    ap.add_argument("--transport", choices=["auto", "openai", "litellm"], default="openai")
    ap.add_argument("--model", default="local:smollm2-135m", help="local: e.g. local:qwen2.5-coder-1.5b")
    ap.add_argument("--max-batch", type=int, default=16, help="local: rows per forward pass")
    ap.add_argument("--threads", type=int, default=None, help="local: torch intra-op threads")
    ap.add_argument("--no-breakdown", action="store_true", help="do not wrap the judge's phases with timers")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    loop_mode = args.mode == "loopback"
    args.prompts = args.prompts or (8 if loop_mode else 2)
    args.generations = args.generations or (8 if loop_mode else 4)
    args.rubrics = args.rubrics or (20 if loop_mode else 5)
    args.distinct = min(args.distinct or args.generations, args.generations)
    args.weights = args.weights or (["stored", "online_wu"] if loop_mode else ["stored"])

    started, load0 = time.time(), os.getloadavg()
    loop = DaemonLoop()
    with tempfile.TemporaryDirectory(prefix="rrd-bench-reward-") as tmp:
        env = Env(loop=loop, tmp=tmp, breakdown=not args.no_breakdown)
        result = run_loopback(args, env) if loop_mode else run_local(args, env)
    loop.close()
    result.update(command=" ".join([Path(sys.executable).name, *sys.argv]), cpus=os.cpu_count(),
                  python=platform.python_version(), started=time.strftime("%Y-%m-%d %H:%M:%S",
                                                                          time.localtime(started)),
                  breakdown=not args.no_breakdown, loadavg_start=load0, loadavg_end=os.getloadavg())
    if args.out:

        def plain(o: Any) -> Any:
            return o.__dict__ if hasattr(o, "__dict__") else str(o)

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=plain) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
