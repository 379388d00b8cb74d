"""Fault handling of the API backend against a real HTTP server on loopback: retries, Retry-After, timeouts,
malformed output and the budget cap. Failures must end unscored with the reason recorded; nothing crashes."""

from __future__ import annotations

import asyncio
import json
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
        api_base=overrides.pop("api_base", server.api_base),
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


# -- nothing lost, round two (issue 28) ---------------------------------------------------------------------------


async def test_unreadable_answers_are_not_cached(tmp_path, transport):
    # a server that answers "MAYBE" for one run must not poison the cache for the next, healthy one
    answer = {"text": "MAYBE"}
    with LoopbackServer(lambda n, req: Reply(text=answer["text"])) as server:
        judge = _judge(server, tmp_path, transport, logprobs=False)
        first = await judge.grade(["A", "B"], "response")
        [game] = await judge.pairwise_many([("q", "x", "y")])
        assert [v.met for v in first] == [None, None] and game.winner is None
        assert judge.cache is not None and len(judge.cache) == 0
        answer["text"] = "YES [[A]]"
        healthy = _judge(server, tmp_path, transport, logprobs=False)
        second = await healthy.grade(["A", "B"], "response")
        [game] = await healthy.pairwise_many([("q", "x", "y")])
    assert [v.met for v in second] == [True, True] and not any(v.cached for v in second)
    assert game.winner == "A" and healthy.accounting.calls == 3 and healthy.accounting.cache_hits == 0
    assert len(healthy.cache) == 3  # readable answers are stored


async def test_answers_are_cached_as_they_arrive(tmp_path, transport):
    # 8 criteria answer at once, 4 hang; the run is interrupted (Ctrl-C cancels the task): the 8 answers are kept
    slow = lambda req: "slow" in req["messages"][-1]["content"]
    script = lambda n, req: Reply(text="YES", delay_s=30.0 if slow(req) else 0.0)
    criteria = [f"fast {i}" for i in range(8)] + [f"slow {i}" for i in range(4)]
    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, concurrency=12, timeout_s=60.0)
        task = asyncio.ensure_future(judge.grade(criteria, "response"))
        deadline = time.monotonic() + 20
        while (judge.cache is None or len(judge.cache) < 8) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert judge.cache is not None and len(judge.cache) == 8
        again = _judge(server, tmp_path, transport)
        verdicts = await again.grade(criteria[:8], "response")
    assert all(v.cached for v in verdicts) and again.accounting.calls == 0


async def test_retry_after_is_capped_and_the_wait_is_reported(tmp_path, transport):
    script = lambda n, req: Reply(status=429, headers={"Retry-After": "3600"}) if n == 0 else Reply(text="YES")
    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, max_retry_after_s=0.5)
        start = time.perf_counter()
        [verdict] = await judge.grade(["A"], "response")
        elapsed = time.perf_counter() - start
    assert verdict.met is True and 0.5 <= elapsed < 5.0
    assert 0.5 <= judge.accounting.waited_s < 1.0
    assert "s waiting to retry" in judge.accounting.summary()


async def test_a_server_reporting_more_tokens_than_sent_cannot_push_spending_past_the_budget(tmp_path, transport):
    def script(n, req):  # a valid answer whose usage claims 50,000 prompt tokens for a few-token request
        body = {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "YES"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50000, "completion_tokens": 1, "total_tokens": 50001}}
        return Reply(raw_body=json.dumps(body))

    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, model="gpt-4o", concurrency=1, budget_usd=0.002)
        with pytest.raises(BudgetExceeded):
            await judge.grade([f"criterion {i}" for i in range(20)], "a short response")
    assert judge.accounting.cost_usd <= 0.002 and judge.accounting.overreported >= 1
    assert "reported more than they could cost" in judge.accounting.summary()


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_budget_that_is_not_finite_is_refused(value):
    import argparse

    from judges.settings import number

    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        number(float, strict=True)(value)
    with pytest.raises(ValueError, match="finite"):
        Accounting(budget_usd=float(value))


@pytest.mark.parametrize("body", ["{not json", '{"id": "x", "object": "chat.completion", "choices": []}'])
async def test_a_malformed_body_is_retried_like_a_500(tmp_path, transport, body):
    script = lambda n, req: Reply(raw_body=body) if n == 0 else Reply(text="YES")
    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, max_retries=2)
        [verdict] = await judge.grade(["A"], "response")
        assert verdict.met is True and len(server.requests) == 2
    with LoopbackServer(lambda n, req: Reply(raw_body=body)) as server:
        judge = _judge(server, tmp_path, transport, max_retries=0)
        [verdict] = await judge.grade(["B"], "response")
    assert verdict.met is None and verdict.retryable, "the default re-run (--retry failed) must redo it"


async def test_several_replicas_share_the_calls_and_a_failing_one_is_routed_around(tmp_path):
    with LoopbackServer(lambda n, req: Reply(text="YES")) as a, LoopbackServer(lambda n, req: Reply(text="YES")) as b:
        judge = _judge(a, tmp_path, "auto", api_base=f"{a.api_base},{b.api_base}", cache=False)
        verdicts = await judge.grade([f"criterion {i}" for i in range(24)], "response")
        assert all(v.met is True for v in verdicts)
        assert len(a.requests) + len(b.requests) == 24 and a.requests and b.requests  # spread over both
        assert judge.cache_id == f"loopback-model@{','.join(sorted([a.api_base, b.api_base]))}"
    with LoopbackServer(lambda n, req: Reply(status=500)) as down, \
            LoopbackServer(lambda n, req: Reply(text="NO")) as up:
        judge = _judge(down, tmp_path, "auto", api_base=f"{down.api_base},{up.api_base}", cache=False,
                       max_retries=3, concurrency=1)
        verdicts = await judge.grade([f"criterion {i}" for i in range(10)], "response")
    assert all(v.met is False for v in verdicts) and judge.accounting.failures == 0  # every call answered
    assert len(up.requests) == 10 and len(down.requests) <= 2  # the failed replica is cooled down


def test_several_replicas_need_the_router():
    with pytest.raises(ValueError, match="Router"):
        Judge(JudgeConfig(model="m", api_base="http://127.0.0.1:9/v1,http://127.0.0.1:10/v1", transport="openai"))


async def test_a_servers_prompt_cache_report_is_counted(tmp_path, transport):
    """OpenAI, vLLM and llama.cpp's server report the prompt tokens their prompt cache served
    (usage.prompt_tokens_details.cached_tokens): the run's summary counts them apart from those evaluated."""
    def script(n: int, req: dict) -> Reply:
        body = {"id": "x", "object": "chat.completion", "created": 0, "model": "loopback-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "YES"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 1, "total_tokens": 121,
                          "prompt_tokens_details": {"cached_tokens": 96 if n else 0}}}
        return Reply(raw_body=json.dumps(body))

    with LoopbackServer(script) as server:
        judge = _judge(server, tmp_path, transport, concurrency=1, logprobs=False, cache=False)
        verdicts = await judge.grade(["A", "B", "C"], "response")
    assert [v.met for v in verdicts] == [True, True, True]
    assert [v.usage.cached_tokens for v in verdicts] == [0, 96, 96]
    assert judge.accounting.prompt_tokens == 360 and judge.accounting.cached_tokens == 192
    assert "168 prompt tokens evaluated, 192 reused" in judge.accounting.summary()
