"""The content-addressed SQLite cache: keys cover everything that determines an answer; concurrent writers from
several processes and a writer killed mid-run leave a consistent, usable database."""

import multiprocessing as mp
import os
import signal
import time

from judges.cache import CompletionCache, cache_key
from judges.types import Completion, Request, SamplingParams, Usage


def _req(text: str, **params) -> Request:
    return Request([{"role": "user", "content": text}], SamplingParams(**params), "t1")


def test_key_covers_model_params_template_and_messages():
    base = cache_key("m", _req("hi"))
    assert cache_key("m", _req("hi")) == base
    assert cache_key("m2", _req("hi")) != base
    assert cache_key("m", _req("hi", temperature=0.7)) != base
    assert cache_key("m", _req("hi", sample_index=1)) != base
    assert cache_key("m", _req("hi!")) != base
    assert cache_key("m", _req("hi", answer_prefix='{"overlaps":')) != base
    assert cache_key("m", _req("hi", final_words=("YES", "NO"))) != base
    other_template = _req("hi")
    other_template.template_version = "t2"
    assert cache_key("m", other_template) != base


def test_keys_of_requests_without_an_answer_prefix_are_those_before_the_field_existed():
    # computed before SamplingParams had answer_prefix: every cache written then still answers
    assert cache_key("m", _req("hi")) == "2588065aa19f49ee92ab5678a57ec0c971a76d6b42ec8350f89b1e9ce14764d0"


def test_round_trip_and_failures_not_stored(tmp_path):
    cache = CompletionCache(tmp_path / "c.sqlite")
    cache.put("m", _req("a"), Completion(text="YES", usage=Usage(5, 1, 0.01)))
    cache.put("m", _req("b"), Completion(error="HTTP 500"))
    hit = cache.get("m", _req("a"))
    assert hit is not None and hit.text == "YES" and hit.cached and hit.usage.cost_usd == 0.01
    assert cache.get("m", _req("b")) is None
    assert len(CompletionCache(tmp_path / "c.sqlite")) == 1  # persisted


def _writer(path: str, worker: int, n: int) -> None:
    cache = CompletionCache(path)
    for i in range(n):
        cache.put("m", _req(f"{worker}-{i}"), Completion(text=f"{worker}-{i}"))


def test_concurrent_writers_from_several_processes(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CompletionCache(path)
    procs = [mp.get_context("spawn").Process(target=_writer, args=(path, w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = CompletionCache(path)
    assert len(cache) == 400
    assert cache.get("m", _req("3-99")).text == "3-99"


def _opener(path: str, barrier, errors) -> None:
    barrier.wait()
    try:
        CompletionCache(path).put("m", _req("same"), Completion(text="ok"))
    except Exception as exc:  # reported to the parent: an exit code alone would not say why
        errors.put(repr(exc))


def test_processes_opening_a_cache_at_once(tmp_path):
    # The processes of a distributed run open the same cache together. Setting WAL mode (and the first open of a
    # WAL database whose other connections have all closed) takes locks that SQLite's busy timeout does not wait
    # for: two readers escalating at once get SQLITE_BUSY at once. An opener must retry, not crash.
    for attempt in range(10):
        path = str(tmp_path / f"c{attempt}.sqlite")
        if attempt % 2:
            CompletionCache(path)  # an existing cache, every connection closed again
        ctx = mp.get_context("fork")
        barrier, errors = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_opener, args=(path, barrier, errors)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert errors.empty(), errors.get()
        assert [p.exitcode for p in procs] == [0] * 8
        assert len(CompletionCache(path)) == 1


def _endless_writer(path: str) -> None:
    cache = CompletionCache(path)
    i = 0
    while True:
        cache.put("m", _req(f"k{i}"), Completion(text="x" * 1000))
        i += 1


def test_writer_killed_mid_run_leaves_a_usable_cache(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CompletionCache(path)
    p = mp.get_context("spawn").Process(target=_endless_writer, args=(path,))
    p.start()
    time.sleep(3.0)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    cache = CompletionCache(path)
    n = len(cache)
    assert n > 0
    assert cache.get("m", _req("k0")).text == "x" * 1000
    cache.put("m", _req("after"), Completion(text="ok"))
    assert len(cache) == n + 1


async def test_a_hit_served_by_the_judge_costs_nothing(tmp_path):
    """The cache keeps the usage of the call that filled it; the Judge hands a hit out with zero usage, so every
    sum over verdicts (eval records, RubricSet stats) counts only what was sent."""
    from judges import Accounting, Judge, JudgeConfig
    from tests.fakes import ScriptedBackend

    acc = Accounting()
    backend = ScriptedBackend(lambda r: "YES", accounting=acc)
    judge = Judge(JudgeConfig(model="m", cache_path=str(tmp_path / "c.sqlite")), backend=backend, accounting=acc)
    (fresh,) = await judge.grade(["c"], "response")
    (hit,) = await judge.grade(["c"], "response")
    assert not fresh.cached and fresh.usage.prompt_tokens == 10 and len(backend.requests) == 1
    assert hit.cached and hit.met is True and hit.usage == Usage()


async def test_single_verdicts_end_at_a_verdict_word_and_batch_lists_do_not(tmp_path):
    """A one-criterion verdict asks the engine to stop at YES or NO (SamplingParams.final_words); a batch answer is a
    JSON list, which a YES inside it must not end."""
    from judges import Judge, JudgeConfig
    from judges.templates import VERDICT_WORDS
    from tests.fakes import ScriptedBackend

    for mode, answer, words in (("single", "YES", VERDICT_WORDS), ("batch", '["YES", "NO"]', ())):
        backend = ScriptedBackend(lambda r, a=answer: a)
        judge = Judge(JudgeConfig(model="m", cache=False, grading_mode=mode), backend=backend)
        verdicts = await judge.grade(["c1", "c2"], "response")
        assert [v.met for v in verdicts] == ([True, True] if mode == "single" else [True, False])
        assert {r.params.final_words for r in backend.requests} == {words}
