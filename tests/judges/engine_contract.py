"""Behaviour every in-process engine owes its callers, checked the same way on each (llama.cpp, transformers)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from judges.backends.base import Backend
from judges.types import Request, SamplingParams


def assert_an_answer_prefix_continues_the_greedy_answer(backend: Backend) -> None:
    """The answer's known start, evaluated with the prompt, gives the answer decoding it would have given: the
    same text, the start counted as prompt, and its tokens penalised as the answer's own (the prompt repeats
    "good", so an unpenalised start would change what follows)."""
    msgs = [{"role": "user", "content": "Repeat after me: " + ", ".join(["good"] * 12)}]
    params = SamplingParams(max_tokens=16, repetition_penalty=1.3, logprobs=True)
    (whole,) = asyncio.run(backend.complete([Request(msgs, params)]))
    start = "".join(t.token for t in whole.logprobs[:4])
    (rest,) = asyncio.run(backend.complete([Request(msgs, replace(params, max_tokens=12, answer_prefix=start))]))
    assert whole.ok and rest.ok and rest.text.startswith(start)
    assert rest.usage.prompt_tokens == whole.usage.prompt_tokens + 4  # the start is 4 tokens of prompt now
    assert rest.usage.completion_tokens == whole.usage.completion_tokens - 4
    assert rest.text == whole.text
    assert [t.token for t in rest.logprobs] == [t.token for t in whole.logprobs[4:]]


def assert_a_stop_string_ends_the_answer(backend: Backend) -> None:
    """A stop string ends the answer where it first appears: the text is the unstopped answer's up to it (the stop
    string left out, as OpenAI does), and no token is decoded after the one that completed it."""
    msgs = [{"role": "user", "content": "Count from one to twenty in words, separated by commas."}]
    params = SamplingParams(max_tokens=24, logprobs=True)
    (whole,) = asyncio.run(backend.complete([Request(msgs, params)]))
    assert whole.ok and len(whole.logprobs) >= 8, whole
    tokens = [t.token for t in whole.logprobs]
    stop = tokens[5]  # a piece the greedy answer reaches after a few tokens
    assert stop.strip(), tokens
    (cut,) = asyncio.run(backend.complete([Request(msgs, replace(params, stop=(stop,)))]))
    at = whole.text.find(stop)
    assert cut.ok and cut.text == whole.text[:at]
    ended = next(n for n in range(1, len(tokens) + 1) if stop in "".join(tokens[:n]))
    assert cut.usage.completion_tokens == ended < whole.usage.completion_tokens


def assert_a_final_word_ends_the_answer(backend: Backend) -> None:
    """An answer whose text is one of its final words ends there, case aside: one token where the unstopped answer
    goes on. A final word the answer only starts, or never is, changes nothing."""
    msgs = [{"role": "user", "content": "Count from one to twenty in words, separated by commas."}]
    params = SamplingParams(max_tokens=8, logprobs=True)
    (whole,) = asyncio.run(backend.complete([Request(msgs, params)]))
    first = whole.logprobs[0].token
    assert whole.ok and first.strip().isalpha() and whole.usage.completion_tokens > 1, whole
    (ended,) = asyncio.run(backend.complete([Request(msgs, replace(params, final_words=(first.strip().swapcase(),)))]))
    assert ended.ok and ended.text == first and ended.usage.completion_tokens == 1
    (unended,) = asyncio.run(backend.complete([Request(msgs, replace(params, final_words=(first.strip() + "s", "zz")))]))
    assert unended.text == whole.text and unended.usage.completion_tokens == whole.usage.completion_tokens
