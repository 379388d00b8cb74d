"""Integration: the litellm backend against llama-cpp-python's real OpenAI-compatible server (SmolLM2-135M; the
embedded 1.5B judge where a test needs YES/NO answers to read logprobs from).

SmolLM2 is at chance as a judge, so nothing here asserts on what it answers, only on the plumbing: verdict
shapes, logprob-derived P(YES), concurrency, the cache, pairwise and free-text generation.
"""

from __future__ import annotations

import pytest

from judges import Judge, JudgeConfig, SamplingParams

pytestmark = pytest.mark.server

CRITERIA = [
    "The response states that water boils at 100 degrees Celsius at sea level.",
    "The response mentions atmospheric pressure.",
    "The response is written in English.",
    "The response contains a numbered list.",
]
RESPONSE = "At sea level, water boils at 100 °C (212 °F); at higher altitude the lower air pressure lowers it."


@pytest.fixture(params=["litellm", "openai"])
def transport(request) -> str:
    return request.param


def _judge(api_base: str, tmp_path, model: str = "smollm2", **kw) -> Judge:
    return Judge(JudgeConfig(model=model, api_base=api_base, cache_path=str(tmp_path / "c.sqlite"), **kw))


async def test_text_verdicts(llama_server, tmp_path, transport):
    judge = _judge(llama_server, tmp_path, transport=transport, logprobs=False, verdict_max_tokens=4)
    verdicts = await judge.grade(CRITERIA, RESPONSE)
    assert [v.criterion for v in verdicts] == CRITERIA
    for v in verdicts:
        assert v.met in (True, False, None)
        assert v.p_yes is None
        assert v.met is not None or v.reason  # unscored always says why
        assert v.usage.prompt_tokens > 20
    assert judge.accounting.calls == len(CRITERIA) and judge.accounting.failures == 0


@pytest.mark.local_model
async def test_logprob_verdicts(qwen_server, tmp_path, transport):
    # the 1.5B judge: SmolLM2 often answers neither YES nor NO (it continues the criterion), leaving nothing to check
    judge = _judge(qwen_server, tmp_path, model="qwen", transport=transport)
    verdicts = await judge.grade(CRITERIA, RESPONSE)
    assert len(verdicts) == len(CRITERIA)
    scored = [v for v in verdicts if v.met is not None]
    assert scored, [v.reason for v in verdicts]
    for v in scored:
        # greedy decoding: the answer token is the argmax, so P(YES) sides with the text verdict
        assert v.p_yes is not None and 0.0 <= v.p_yes <= 1.0
        assert (v.p_yes >= 0.5) == v.met


async def test_hosted_vllm_route_and_concurrency(llama_server, tmp_path, transport):
    # hosted_vllm/<name> is how users point litellm at a vLLM server; llama.cpp speaks the same protocol.
    judge = _judge(llama_server, tmp_path, transport=transport, model="hosted_vllm/smollm2", concurrency=8)
    criteria = [f"The response mentions the number {i}." for i in range(12)]
    verdicts = await judge.grade(criteria, RESPONSE)
    assert len(verdicts) == 12 and judge.accounting.calls == 12 and judge.accounting.failures == 0


async def test_cache_hit_on_repeat_costs_no_call(llama_server, tmp_path, transport):
    judge = _judge(llama_server, tmp_path, transport=transport)
    first = await judge.grade(CRITERIA, RESPONSE)
    calls = judge.accounting.calls
    # a new Judge on the same cache file: hits come from disk, not memory
    again_judge = _judge(llama_server, tmp_path, transport=transport)
    again = await again_judge.grade(CRITERIA, RESPONSE)
    # readable answers come from disk; an unreadable one (SmolLM2 writes some) is never stored, so it is asked again
    readable = [not v.unreadable for v in first]
    assert again_judge.accounting.cache_hits == sum(readable)
    assert again_judge.accounting.calls == len(CRITERIA) - sum(readable)
    assert [v.cached for v in again] == readable and calls == len(CRITERIA)
    assert all((a.met, a.p_yes) == (f.met, f.p_yes) for a, f in zip(again, first) if a.cached)


async def test_batch_mode_and_pairwise_and_generation(llama_server, tmp_path, transport):
    judge = _judge(llama_server, tmp_path, transport=transport, grading_mode="batch", batch_size=4, pairwise_max_tokens=64)
    verdicts = await judge.grade(CRITERIA, RESPONSE)
    assert len(verdicts) == 4 and judge.accounting.calls == 1
    assert all(v.met is not None or "JSON list" in (v.reason or "") for v in verdicts)
    pv = await judge.pairwise("What is 2+2?", "4", "5")
    assert pv.winner in ("A", "B", "tie", None) and (pv.winner is not None or pv.reason)
    out = await judge.generate([{"role": "user", "content": "Say hello."}], SamplingParams(max_tokens=8))
    assert out.ok and out.text and out.usage.completion_tokens <= 8


async def test_a_stop_string_ends_the_answer(llama_server, tmp_path, transport):
    """SamplingParams.stop reaches the server, which ends the answer where the in-process engines do: before the
    first stop string, left out of the text (tests/judges/engine_contract.py)."""
    judge = _judge(llama_server, tmp_path, transport=transport)
    msgs = [{"role": "user", "content": "Count from one to twenty in words, separated by commas."}]
    whole = await judge.generate(msgs, SamplingParams(max_tokens=24))
    stop = whole.text.split()[3]
    cut = await judge.generate(msgs, SamplingParams(max_tokens=24, stop=(stop,)))
    assert whole.ok and cut.ok and cut.text == whole.text[: whole.text.find(stop)]
    assert cut.usage.completion_tokens < whole.usage.completion_tokens
