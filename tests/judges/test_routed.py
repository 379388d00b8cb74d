"""RoutedBackend: verdicts to one engine, generation to the other, one cache entry per answering engine.

Control flow only, over scripted backends; the engines themselves are tested in test_local_backend.py and
test_llamacpp_backend.py."""

from __future__ import annotations

import pytest

from judges import Judge, JudgeConfig
from judges.backends.routed import RoutedBackend
from judges.cache import CompletionCache
from judges.types import Request, SamplingParams
from tests.fakes import ScriptedBackend


class Engine(ScriptedBackend):
    def __init__(self, name: str):
        super().__init__(lambda req: f"{name} answers", model="local:m")
        self.cache_id = f"local:m@{name}"


def routed() -> tuple[RoutedBackend, Engine, Engine]:
    short, long = Engine("transformers"), Engine("llama.cpp")
    return RoutedBackend(short, long, short_max_tokens=64), short, long


async def test_short_answers_and_long_answers_go_to_their_engines_in_order() -> None:
    backend, short, long = routed()
    msgs = [{"role": "user", "content": "x"}]
    reqs = [Request(msgs, SamplingParams(max_tokens=n)) for n in (2, 1024, 64, 65, 8)]
    out = await backend.complete(reqs)
    assert [c.text for c in out] == ["transformers answers", "llama.cpp answers", "transformers answers",
                                     "llama.cpp answers", "transformers answers"]
    assert [r.params.max_tokens for r in short.requests] == [2, 64, 8]
    assert [r.params.max_tokens for r in long.requests] == [1024, 65]


async def test_judge_caches_each_answer_under_the_engine_that_gave_it(tmp_path) -> None:
    cache = CompletionCache(tmp_path / "c.sqlite")
    backend, _, _ = routed()
    judge = Judge(JudgeConfig(model="local:m"), backend=backend, cache=cache)
    verdict = Request([{"role": "user", "content": "grade"}], SamplingParams(max_tokens=2))
    sample = Request([{"role": "user", "content": "write"}], SamplingParams(max_tokens=512))
    await judge.run([verdict, sample])
    # a run on transformers alone finds the verdict, not the sample (llama.cpp wrote that one)
    alone = Engine("transformers")
    judge2 = Judge(JudgeConfig(model="local:m"), backend=alone, cache=cache)
    out = await judge2.run([verdict, sample])
    assert out[0].text == "transformers answers" and out[1].text == "transformers answers"
    assert [r.messages[0]["content"] for r in alone.requests] == ["write"]  # only the miss was sent


def test_engines_of_different_models_are_refused() -> None:
    other = ScriptedBackend(lambda req: "", model="local:other")
    with pytest.raises(ValueError, match="one model on two engines"):
        RoutedBackend(Engine("transformers"), other)
