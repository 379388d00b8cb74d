"""rrd.on_demand.RefineOnce: one refinement per key however many callers ask at once, its error reaching each of
them, and a result that is not kept refined again by the next caller."""

from __future__ import annotations

import asyncio

import pytest

from rrd.on_demand import RefineOnce, usable
from rrd.records import RubricSet


async def test_concurrent_callers_share_one_refinement_and_only_the_runner_is_fresh():
    runs: list[str] = []
    stored: list[str] = []

    async def refine() -> RubricSet:
        runs.append("p")
        await asyncio.sleep(0.01)
        return RubricSet.provided("prompt", ["The response is polite."])

    once = RefineOnce(on_new=lambda key, rs: stored.append(key))
    got = await asyncio.gather(*(once.get("p", refine) for _ in range(5)))
    assert runs == ["p"] and stored == ["p"]
    assert len({id(rs) for rs, _ in got}) == 1 and [fresh for _, fresh in got].count(True) == 1
    assert (await once.get("p", refine)) == (got[0][0], False) and runs == ["p"]


async def test_an_error_reaches_every_waiting_caller_and_the_next_call_tries_again():
    calls = 0

    async def failing() -> RubricSet:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("proposer down")

    once = RefineOnce()
    results = await asyncio.gather(*(once.get("p", failing) for _ in range(3)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results)
    with pytest.raises(RuntimeError):
        await once.get("p", failing)
    assert calls == 2 and "p" not in once.sets


async def test_a_result_not_kept_is_refined_again():
    empty = RubricSet.provided("prompt", [])
    calls = 0

    async def refine() -> RubricSet:
        nonlocal calls
        calls += 1
        return empty

    once = RefineOnce(keep=usable)
    assert (await once.get("p", refine))[0] is empty
    assert (await once.get("p", refine))[0] is empty
    assert calls == 2 and once.sets == {}
