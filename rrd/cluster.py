"""Running a job's items on a Ray cluster: `rrd refine`, `rrd judge` and `rrd eval` with `--ray [ADDRESS]`.

Why Ray actors, one remote call per item: each worker is an async actor that builds the run's models once (a local
model loads once per worker, API clients are reused) and runs today's async loop over the items it is given,
`concurrency` at a time; the driver keeps that many calls in flight per worker and appends each record the moment
its call returns. So results stream into the same files with the same resume rules, one process (the driver)
writes them, and a worker that dies loses only the calls it had in flight: the driver sees them fail
(RayActorError) and hands those items to a live worker (a replacement is started), so no item is written twice
and none is lost. A per-item call costs about a millisecond of Ray overhead, nothing beside a judge call. Ray Data
would add a dataset layer to what is a work queue with a few long-lived stateful workers.

Shared state, each owned by one actor:
- The cache: a CacheServer actor on the driver's node owns the SQLite file (judges.cache), and every worker's
  Judge reads and writes through it (RemoteCache). SQLite's WAL gives one writer across processes of one machine
  but is unsafe on a network filesystem, so the file is never opened from another node; a re-run on the cluster
  is served from it and makes no call for work already done. Its cost is one actor round trip per lookup and per
  stored answer (bench/bench_ray.py).
- The budget: a BudgetPool actor grants each worker leases of the --budget-usd cap, and a worker's Accounting
  (LeasedAccounting) reserves every call from its own lease, asking for more when it runs out. The leases granted
  never add up to more than the cap, so the cluster cannot spend past it whatever its workers do (a dead worker's
  lease is simply never given back). When the pool has nothing left, the worker raises BudgetExceeded as a single
  process would: no new item starts, and the command exits with status 3.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

from judges.accounting import Accounting, BudgetExceeded
from judges.cache import CompletionCache, cache_key
from judges.types import Completion, Request

@dataclass
class ClusterConfig:
    """Where and how wide a run goes. address: a Ray cluster ("ray://head:10001", "auto"), or None to start a
    local Ray instance (how the tests and a single machine run it). workers: actors started (default: one per
    CPU the cluster offers, at least 1). concurrency: items each worker runs at once."""

    address: str | None = None
    workers: int | None = None
    concurrency: int = 4
    #: replacements started for workers that die, in all, before the run gives up
    max_replacements: int = 8

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.concurrency < 1 or self.max_replacements < 0:
            raise ValueError("concurrency must be >= 1 and max_replacements >= 0")


class Job(Protocol):
    """What a worker runs: built in the worker from picklable configs, then called once per item."""

    def setup(self, accounting: Accounting, cache: Any) -> None: ...

    async def run(self, item: Any) -> dict[str, Any]: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- shared state
class CacheServer:
    """The cluster's one cache (Ray actor on the driver's node): the SQLite file and nothing else."""

    def __init__(self, path: str | None) -> None:
        self.cache = CompletionCache(path)

    def get_many(self, lookups: list[tuple[str, Request]]) -> list[Completion | None]:
        return self.cache.get_many(lookups)

    def put_many(self, model: str, items: list[tuple[Request, Completion]]) -> None:
        self.cache.put_many(model, items)

    def size(self) -> int:
        return len(self.cache)


class RemoteCache:
    """A worker's view of the CacheServer with CompletionCache's interface (what Judge.run uses). A batch of
    lookups is one awaited round trip. Answers are stored in batches of `batch` per model, sent without waiting
    (the actor runs one caller's calls in order, so this worker's later lookups see them) and served from here
    until sent (a refinement asks again what it asked a stage before). The Worker sends the rest and waits for
    all (`flush`) before it returns an item: an answer is in the cache before its record is written, and a worker
    killed mid-item loses at most `batch` - 1 answers per model."""

    def __init__(self, server: Any, batch: int = 16) -> None:
        self.server = server
        self.batch = batch
        self._buffer: dict[str, list[tuple[Request, Completion]]] = {}
        self._unsent: dict[str, Completion] = {}  # cache key -> an answer still in the buffer
        self._stores: list[Any] = []

    def get_many(self, lookups: Sequence[tuple[str, Request]]) -> Any:
        """An awaitable of the completions (Judge.run awaits it): a blocking ray.get would stall the worker's
        event loop, and every item in flight on it, for each round trip."""
        local = ([self._unsent.get(cache_key(model, request)) for model, request in lookups] if self._unsent
                 else [None] * len(lookups))  # no key hashed twice when nothing waits to be sent
        ask = [lookup for lookup, hit in zip(lookups, local) if hit is None]

        async def answers() -> list[Completion | None]:
            remote = iter(await self.server.get_many.remote(ask) if ask else [])
            return [replace(hit, cached=True) if hit is not None else next(remote) for hit in local]

        return answers()

    def put(self, model: str, request: Request, completion: Completion) -> None:
        buffer = self._buffer.setdefault(model, [])
        buffer.append((request, completion))
        self._unsent[cache_key(model, request)] = completion
        if len(buffer) >= self.batch:
            self._send(model)

    def _send(self, model: str) -> None:
        items = self._buffer.pop(model, [])
        for request, _ in items:
            self._unsent.pop(cache_key(model, request), None)
        if items:
            self._stores.append(self.server.put_many.remote(model, items))

    async def flush(self) -> None:
        for model in list(self._buffer):
            self._send(model)
        stores, self._stores = self._stores, []
        if stores:
            await asyncio.gather(*stores)


class BudgetPool:
    """The --budget-usd cap of a cluster run (Ray actor): grants leases, never more than is left."""

    def __init__(self, budget_usd: float, workers: int) -> None:
        self.left = budget_usd
        self.chunk = budget_usd / max(1, 4 * workers)  # small leases: little is stranded in a dead worker

    def lease(self, at_least: float) -> float:
        grant = min(self.left, max(at_least, self.chunk))
        if grant < at_least:
            return 0.0
        self.left -= grant
        return grant

    def remaining(self) -> float:
        return self.left


class LeasedAccounting(Accounting):
    """A worker's Accounting: calls are reserved against the leases granted by the BudgetPool, not against the
    whole cap, so the workers together stay under it."""

    def __init__(self, pool: Any, budget_usd: float) -> None:
        super().__init__(budget_usd=budget_usd)  # the cap, so backends estimate and reserve every call
        self.pool = pool
        self.granted = 0.0

    def reserve(self, estimate_usd: float) -> None:
        import ray

        with self._lock:
            need = self.cost_usd + self.reserved_usd + estimate_usd - self.granted
            if need > 0:
                grant = float(ray.get(self.pool.lease.remote(need)))
                if grant <= 0:
                    raise BudgetExceeded(
                        f"budget ${self.budget_usd:.4f} reached across the cluster: this worker spent "
                        f"${self.cost_usd:.4f}, in flight ${self.reserved_usd:.4f}, next call up to "
                        f"${estimate_usd:.4f}")
                self.granted += grant
            self.reserved_usd += estimate_usd


# --------------------------------------------------------------------------------------------------- workers
class Worker:
    """One Ray actor: the job's models, built on the first item in the actor's event loop."""

    def __init__(self, job: Job, cache: Any, pool: Any, budget_usd: float | None) -> None:
        self.job = job
        self.accounting = LeasedAccounting(pool, budget_usd) if pool is not None else Accounting()
        self.cache = RemoteCache(cache) if cache is not None else None  # None: the run has no cache
        self._ready = False
        self._setup: asyncio.Lock | None = None

    async def run(self, item: Any) -> dict[str, Any]:
        if self._setup is None:
            self._setup = asyncio.Lock()  # made here: it belongs to the actor's event loop
        async with self._setup:  # the first `concurrency` items arrive together: the models are built once
            if not self._ready:
                await asyncio.to_thread(self.job.setup, self.accounting, self.cache)  # may load a local model
                self._ready = True
        try:
            record = await self.job.run(item)
        except BudgetExceeded as exc:
            await self._flush()  # what was paid for is kept
            return {"budget": str(exc), "accounting": self.accounting.snapshot()}
        await self._flush()
        return {"record": record, "accounting": self.accounting.snapshot()}

    async def _flush(self) -> None:
        if self.cache is not None:
            await self.cache.flush()

    async def close(self) -> None:
        if self._ready:
            await self.job.close()


@dataclass
class ClusterRun:
    """What a cluster run did: items written, items left (budget), worker deaths, and the summed accounting."""

    written: int = 0
    not_done: int = 0
    budget: str | None = None
    deaths: int = 0
    accounting: Accounting = field(default_factory=Accounting)


def _ray(address: str | None) -> Any:
    import ray

    if not ray.is_initialized():
        # a local instance sized to this machine, quiet, with the repository importable by the workers
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    return ray


def run_on_cluster(job: Job, items: Sequence[Any], on_record: Callable[[Any, dict[str, Any]], None],
                   config: ClusterConfig, *, cache_path: str | None, budget_usd: float | None,
                   bar: Any = None, workers_started: Callable[[list[Any]], None] | None = None) -> ClusterRun:
    """Run `job` on every item over Ray workers; `on_record(item, record)` is called on this (the driver's)
    thread for each item as it finishes, exactly once per item. Stops starting items once a worker reports the
    budget spent; items not started are counted in `not_done`. `cache_path`: the SQLite file the cluster's
    CacheServer owns, or None for no cache. `bar` (a progress bar) shows the workers' calls and spending as they
    report them; `workers_started` receives the worker handles (tests kill one)."""
    if not items:  # nothing pending: no cluster to start
        return ClusterRun()
    ray = _ray(config.address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    cache = None if cache_path is None else ray.remote(CacheServer).options(
        # on this node: the SQLite file is never opened over a network filesystem
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False)).remote(cache_path)
    if cache is not None:
        ray.get(cache.size.remote())  # a cache file that cannot be opened fails the run here, with its reason
    n = config.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = ray.remote(BudgetPool).remote(budget_usd, n) if budget_usd is not None else None
    actor = ray.remote(num_cpus=0)(Worker).options(max_concurrency=config.concurrency)
    workers = [actor.remote(job, cache, pool, budget_usd) for _ in range(n)]
    if workers_started is not None:
        workers_started(workers)
    queue: deque[tuple[int, Any]] = deque(enumerate(items))
    in_flight: dict[Any, tuple[Any, tuple[int, Any]]] = {}  # ObjectRef -> (worker, (index, item))
    load = {id(w): 0 for w in workers}
    last: dict[int, dict[str, Any]] = {}  # the latest accounting snapshot of each worker
    out = ClusterRun()
    replacements = 0
    try:
        while queue or in_flight:
            while queue and out.budget is None:
                worker = min(workers, key=lambda w: load[id(w)])
                if load[id(worker)] >= config.concurrency:
                    break
                entry = queue.popleft()
                in_flight[worker.run.remote(entry[1])] = (worker, entry)
                load[id(worker)] += 1
            if not in_flight:
                break
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                worker, entry = in_flight.pop(ref)
                load[id(worker)] = load.get(id(worker), 1) - 1
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # the worker died: its items go back to the queue
                    queue.appendleft(entry)
                    if worker in workers:
                        out.deaths += 1
                        workers.remove(worker)  # its last accounting snapshot stays: its calls were made
                        if replacements >= config.max_replacements:
                            if not workers:  # e.g. a worker that cannot import the job: say why
                                raise RuntimeError(f"{out.deaths} Ray workers died; giving up. The last one: "
                                                   f"{str(exc).strip()[-1500:]}") from None
                        else:
                            replacements += 1
                            fresh = actor.remote(job, cache, pool, budget_usd)
                            workers.append(fresh)
                            load[id(fresh)] = 0
                    continue
                last[id(worker)] = result["accounting"]
                if "budget" in result:
                    out.budget = out.budget or result["budget"]
                    out.not_done += 1
                else:
                    on_record(entry[1], result["record"])
                    out.written += 1
                if bar is not None:
                    bar.set_postfix_str(_summed(last.values()).postfix())
        out.not_done += len(queue)
        out.accounting = _summed(last.values())
        return out
    finally:
        for w in workers:
            try:
                ray.get(w.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 -- a worker that is gone has nothing left to close
                pass
            ray.kill(w)
        if cache is not None:
            ray.kill(cache)
        if pool is not None:
            ray.kill(pool)


def _summed(snapshots: Any) -> Accounting:
    total = Accounting()
    for snap in snapshots:
        total.add(snap)
    return total

