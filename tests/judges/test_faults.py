"""Fault handling of the API backend against a real HTTP server on loopback: retries, Retry-After, timeouts,
malformed output and the budget cap. Failures must end unscored with the reason recorded; nothing crashes."""

from __future__ import annotations

import time

import pytest

from judges import Accounting, BudgetExceeded, Judge, JudgeConfig
from tests.loopback_server import LoopbackServer, Reply


@pytest.fixture(params=["litellm", "openai"])
def transport(request) -> str:
    return request.param


def _judge(server: LoopbackServer, tmp_path, transport: str = "litellm", **overrides) -> Judge:
    cfg = JudgeConfig(
        transport=transport,  # type: ignore[arg-type]
        model=overrides.pop("model", "loopback-model"),
        api_base=server.api_base,
        cache_path=str(tmp_path / "cache.sqlite"),
        max_retries=overrides.pop("max_retries", 3),
        timeout_s=overrides.pop("timeout_s", 5.0),
        **overrides,
    )
    judge = Judge(cfg)
    judge.backend.retry.base_delay_s = 0.05  # type: ignore[union-attr]  # keep backoff short in tests
    return judge


async def test_429_then_200_honours_retry_after(tmp_path, transport):
    script = lambda n, req: Reply(status=429, headers={"Retry-After": "0.6"}) if n == 0 else Reply(text="YES")
    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport)
        start = time.perf_counter()
        [verdict] = await judge.grade(["Is it polite?"], "Thank you!")
        elapsed = time.perf_counter() - start
    assert verdict.met is True
    assert len(server.requests) == 2
    assert elapsed >= 0.6, "Retry-After must be waited out before the retry"
    assert judge.accounting.retries == 1 and judge.accounting.failures == 0


async def test_persistent_500_ends_unscored_with_reason(tmp_path, transport):
    with LoopbackServer(lambda n, req: Reply(status=500)) as server:
        judge = _judge(server, tmp_path, transport, max_retries=2)
        verdicts = await judge.grade(["A", "B"], "response")
    assert [v.met for v in verdicts] == [None, None]
    assert all("500" in (v.reason or "") for v in verdicts)
    assert len(server.requests) == 2 * 3  # first try + 2 retries, per criterion
    assert judge.accounting.failures == 2
    assert judge.cache is not None and len(judge.cache) == 0, "failures must not be cached"


async def test_non_retryable_400_is_not_retried(tmp_path, transport):
    with LoopbackServer(lambda n, req: Reply(status=400)) as server:
        judge = _judge(server, tmp_path, transport)
        [verdict] = await judge.grade(["A"], "response")
    assert verdict.met is None and "400" in (verdict.reason or "")
    assert len(server.requests) == 1


async def test_slow_response_past_timeout_is_retried_then_unscored(tmp_path, transport):
    script = lambda n, req: Reply(delay_s=3.0) if n < 2 else Reply(text="NO")
    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, timeout_s=0.5, max_retries=1)
        [verdict] = await judge.grade(["A"], "response")
        assert verdict.met is None and "Timeout" in (verdict.reason or "")
        # a later call that answers in time works: the run goes on
        [later] = await judge.grade(["B"], "response")
    assert later.met is False


async def test_malformed_outputs_are_unscored_never_no(tmp_path, transport):
    texts = iter(["I am not sure about this one.", "", "YES"])
    with LoopbackServer(lambda n, req: Reply(text=next(texts))) as server:
        judge = _judge(server, tmp_path, transport, logprobs=False, concurrency=1)
        verdicts = await judge.grade(["A", "B", "C"], "response")
    assert [v.met for v in verdicts] == [None, None, True]
    assert "unparseable" in (verdicts[0].reason or "")


async def test_malformed_http_body_is_a_recorded_failure(tmp_path, transport):
    with LoopbackServer(lambda n, req: Reply(raw_body="{not json")) as server:
        judge = _judge(server, tmp_path, transport, max_retries=0)
        [verdict] = await judge.grade(["A"], "response")
    assert verdict.met is None and verdict.reason and verdict.reason.startswith("call failed")


async def test_batch_mode_wrong_length_is_unscored(tmp_path, transport):
    with LoopbackServer(lambda n, req: Reply(text='["YES", "NO"]')) as server:
        judge = _judge(server, tmp_path, transport, grading_mode="batch", batch_size=3, logprobs=False)
        verdicts = await judge.grade(["A", "B", "C"], "response")
    assert [v.met for v in verdicts] == [None, None, None]
    assert "JSON list of 3" in (verdicts[0].reason or "")


async def test_logprob_verdicts_and_cache_hit(tmp_path, transport):
    with LoopbackServer(lambda n, req: Reply(text="YES")) as server:
        judge = _judge(server, tmp_path, transport)
        [first] = await judge.grade(["A"], "response")
        [again] = await judge.grade(["A"], "response")
    assert first.p_yes is not None and 0.9 < first.p_yes < 1.0
    assert again.cached and again.met is True and again.p_yes == first.p_yes
    assert len(server.requests) == 1
    assert server.requests[0]["logprobs"] is True and server.requests[0]["top_logprobs"] == 20


async def test_budget_cap_stops_before_spending_past_it(tmp_path, transport):
    # "gpt-4o" is priced in litellm's cost map, so every call has a dollar estimate.
    with LoopbackServer(lambda n, req: Reply(text="YES")) as server:
        judge = _judge(server, tmp_path, transport, model="gpt-4o", concurrency=1, budget_usd=0.0015)
        verdicts = await judge.grade(["A"], "a short response")
        spent = judge.accounting.cost_usd
        assert verdicts[0].met is True and 0 < spent <= 0.0015
        with pytest.raises(BudgetExceeded):
            await judge.grade([f"criterion {i}" for i in range(20)], "a short response")
    assert judge.accounting.cost_usd <= 0.0015
    sent = len(server.requests)
    assert sent < 21, "calls past the budget must not be sent"
    # what was paid for before the stop is cached: re-running serves those from the cache
    assert judge.cache is not None and len(judge.cache) == sent


async def test_concurrency_is_bounded(tmp_path, transport):
    in_flight = {"now": 0, "max": 0}

    def script(n, req):
        return Reply(text="YES", delay_s=0.1)

    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, concurrency=4)
        backend = judge.backend
        orig = backend._attempts  # type: ignore[union-attr]

        async def counting(request):
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            try:
                return await orig(request)
            finally:
                in_flight["now"] -= 1

        backend._attempts = counting  # type: ignore[union-attr]
        verdicts = await judge.grade([f"c{i}" for i in range(16)], "response")
    assert all(v.met for v in verdicts)
    assert in_flight["max"] == 4


def test_accounting_reserve_refuses_past_budget():
    acc = Accounting(budget_usd=1.0)
    acc.reserve(0.6)
    with pytest.raises(BudgetExceeded):
        acc.reserve(0.5)
