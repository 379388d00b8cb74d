"""Judge client overhead: grading calls against a loopback server with a fixed latency.

Ideal throughput at concurrency c with latency L is c / L calls per second; the figure printed is the achieved
throughput as a ratio of that ideal. Anything below 1 is overhead: our client stack (litellm/openai, retries
wrapper, semaphore, parsing, cache) and, on a small machine, the loopback server competing for the same cores.
The client's own CPU time per call is printed too: 1 / that is the most calls per second one core can issue.
Goal: >= 0.9 at concurrency 64.

    python bench/bench_judge_overhead.py [--latency 0.05] [--rounds 10] [--cache]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judges import Judge, JudgeConfig  # noqa: E402
from tests.loopback_server import LoopbackServer, Reply  # noqa: E402


async def run_level(server: LoopbackServer, concurrency: int, n_calls: int, cache_dir: str | None,
                    transport: str) -> tuple[float, float]:
    cfg = JudgeConfig(
        model="loopback-model",
        transport=transport,  # type: ignore[arg-type]
        api_base=server.api_base,
        concurrency=concurrency,
        cache=cache_dir is not None,
        cache_path=f"{cache_dir}/c{concurrency}.sqlite" if cache_dir else None,
    )
    judge = Judge(cfg)
    # warm-up: imports, connection pool, first-call setup are not per-call overhead
    await judge.grade([f"warm-up {i}" for i in range(concurrency)], "warm")
    criteria = [f"Criterion number {i}: the response mentions item {i}." for i in range(n_calls)]
    start, cpu = time.perf_counter(), time.process_time()
    verdicts = await judge.grade(criteria, "A fixed response to grade. " * 20)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(v.met is True for v in verdicts), [v.reason for v in verdicts if v.met is not True][:3]
    await judge.aclose()
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--rounds", type=int, default=10, help="calls per level = rounds x concurrency")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--cache", action="store_true", help="include the SQLite cache writes in the measurement")
    ap.add_argument("--transport", choices=["auto", "openai", "litellm"], default="auto",
                    help="auto = the openai SDK for this OpenAI-compatible server")
    args = ap.parse_args()

    with LoopbackServer(lambda n, req: Reply(text="YES", delay_s=args.latency), process=True) as server:
        print(f"latency {args.latency * 1000:.0f} ms, cache {'on' if args.cache else 'off'}, "
              f"transport {args.transport}")
        print(f"{'concurrency':>11} {'calls':>6} {'seconds':>8} {'calls/s':>8} {'ideal/s':>8} {'ratio':>6} "
              f"{'client CPU ms/call':>19}")
        with tempfile.TemporaryDirectory() as tmp:
            for c in args.levels:
                n = args.rounds * c
                elapsed, cpu = asyncio.run(run_level(server, c, n, tmp if args.cache else None, args.transport))
                achieved = n / elapsed
                ideal = c / args.latency
                print(f"{c:>11} {n:>6} {elapsed:>8.2f} {achieved:>8.1f} {ideal:>8.1f} {achieved / ideal:>6.2f} "
                      f"{1000 * cpu / n:>19.2f}")


if __name__ == "__main__":
    main()
