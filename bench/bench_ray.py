"""Calls per second on a Ray cluster (rrd.cluster) against one process, and the CPU each call costs.

The work is `rrd judge`'s: items of K criteria graded against a loopback OpenAI-compatible server (its own process)
with a fixed latency, the cache on (one SQLite file: in the process, or the cluster's CacheServer actor). Printed
per setup: calls, seconds, calls/s, and CPU milliseconds per call of the clients (the one process, or the
workers together), of the driver and of the CacheServer. The ceiling of one process is about 1000 / (client CPU
ms per call) calls/s; a cluster adds workers' cores, and the cache actor's CPU per call is what a single shared
cache costs.

    python bench/bench_ray.py [--latency 0.05] [--items 200] [--criteria 8] [--concurrency 32] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from judges import Accounting, Judge, JudgeConfig  # noqa: E402
from judges.backends.layout import cpu_model  # noqa: E402
from tests.loopback_server import LoopbackServer, Reply  # noqa: E402


@dataclass
class GradeJob:
    """One item = K criteria graded against one response (what judge_pair does per response). Each result says
    the CPU its process has spent, and the calls it has made, since its first item finished: the imports and
    connections of a cold process are not per-call cost."""

    judge: JudgeConfig
    criteria: int

    def setup(self, accounting: Accounting, cache: Any) -> None:
        self._judge = Judge(self.judge, accounting=accounting, cache=cache)
        self._base: float | None = None
        self._calls = 0

    async def run(self, item: int) -> dict[str, Any]:
        verdicts = await self._judge.grade([f"Criterion {item}.{k}: the response mentions item {k}."
                                            for k in range(self.criteria)], "A fixed response to grade. " * 20)
        assert all(v.met is True for v in verdicts)
        if self._base is None:
            self._base = time.process_time()
        else:
            self._calls += len(verdicts)
        return {"pid": os.getpid(), "cpu_s": time.process_time() - self._base, "calls": self._calls,
                "t": time.perf_counter()}

    async def close(self) -> None:
        await self._judge.aclose()


@dataclass
class Measured:
    calls_per_s: float  # steady state: from the first item finished to the last
    client_cpu_ms: float  # per call after each client's first item, the client processes together
    driver_cpu_ms: float | None = None


def steady(done_at: list[float], criteria: int) -> float:
    done_at = sorted(done_at)
    return (len(done_at) - 1) * criteria / (done_at[-1] - done_at[0])


def one_process(job: GradeJob, items: list[int], item_concurrency: int, cache_path: str) -> Measured:
    results: list[dict[str, Any]] = []

    async def go() -> None:
        from judges.cache import CompletionCache

        job.setup(Accounting(), CompletionCache(cache_path))
        sem = asyncio.Semaphore(item_concurrency)

        async def one(i: int) -> None:
            async with sem:
                results.append(await job.run(i))

        await asyncio.gather(*(one(i) for i in items))
        await job.close()

    asyncio.run(go())
    last = max(results, key=lambda r: r["calls"])
    return Measured(steady([r["t"] for r in results], job.criteria), 1000 * last["cpu_s"] / last["calls"])


def on_cluster(job: GradeJob, items: list[int], workers: int, item_concurrency: int, cache_path: str) -> Measured:
    from rrd.cluster import ClusterConfig, run_on_cluster

    results: list[dict[str, Any]] = []
    done_at: list[float] = []

    def record(item: int, out: dict[str, Any]) -> None:
        results.append(out)
        done_at.append(time.perf_counter())  # the driver's clock: workers' clocks are other processes'

    c0 = time.process_time()
    run_on_cluster(job, items, record, ClusterConfig(workers=workers, concurrency=item_concurrency),
                   cache_path=cache_path, budget_usd=None)
    driver = time.process_time() - c0
    last: dict[int, dict[str, Any]] = {}  # each worker's latest figures
    for r in results:
        if r["calls"] >= last.get(r["pid"], {"calls": -1})["calls"]:
            last[r["pid"]] = r
    calls = sum(r["calls"] for r in last.values())
    return Measured(steady(done_at, job.criteria), 1000 * sum(r["cpu_s"] for r in last.values()) / calls,
                    1000 * driver / (len(items) * job.criteria))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--criteria", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=32, help="calls in flight per client process")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray worker counts to measure")
    args = ap.parse_args()
    import ray

    item_concurrency = max(1, args.concurrency // args.criteria)
    n_calls = args.items * args.criteria
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; latency {args.latency * 1000:.0f} ms; {args.items} items x "
          f"{args.criteria} criteria = {n_calls} calls; {args.concurrency} calls in flight per client; cache on")
    print(f"{'setup':<22} {'calls/s':>8} {'ideal/s':>8} {'client CPU ms/call':>19} {'driver CPU ms/call':>19}")
    with LoopbackServer(lambda n, req: Reply(text="YES", delay_s=args.latency), process=True) as server, \
            tempfile.TemporaryDirectory() as tmp:
        judge = JudgeConfig(model="loopback-model", api_base=server.api_base, concurrency=args.concurrency,
                            max_retries=0, logprobs=False)
        job = GradeJob(judge, args.criteria)
        one = one_process(job, list(range(args.items)), item_concurrency, f"{tmp}/one.sqlite")
        print(f"{'1 process':<22} {one.calls_per_s:>8.1f} {args.concurrency / args.latency:>8.1f} "
              f"{one.client_cpu_ms:>19.2f} {'-':>19}")
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
        try:
            for n in args.workers:
                cl = on_cluster(GradeJob(judge, args.criteria), list(range(args.items)), n, item_concurrency,
                                f"{tmp}/ray{n}.sqlite")
                print(f"{f'{n} Ray worker' + ('s' if n > 1 else ''):<22} {cl.calls_per_s:>8.1f} "
                      f"{n * args.concurrency / args.latency:>8.1f} {cl.client_cpu_ms:>19.2f} "
                      f"{cl.driver_cpu_ms:>19.2f}")
        finally:
            ray.shutdown()

if __name__ == "__main__":
    main()
