"""Control flow of the RRD loop against a scripted model (no real model: verdicts are dictated by markers).

The script reads markers written into each rubric's text:
    NAME [c=K]        the first K samples satisfy it (samples are "[sample 0]" .. "[sample N-1]")
    [kids=J]          its decomposition returns "NAME.1 [c=J] [kids=J]" and "NAME.2 [c=J] [kids=J]"
    [baddecomp]       its decomposition answer is not a list of 2 strings
    [weak]            the weak reference satisfies it and the strong one does not (misaligned)
    [unscored=J]      the judge's answer on the first J samples is unreadable
    [overlap=NAME]    the overlap check names the accepted rubric NAME ([conflict=NAME] likewise)
By default the strong reference satisfies every rubric and the weak one none.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Sequence

import pytest

from judges.accounting import Accounting
from judges.judge import Judge, JudgeConfig
from judges.types import Completion, Request
from rrd import RefineConfig, RubricSet, refine_prompt
from rrd.records import normalise
from rrd.summaries import refine_summary, stage_times
from tests.fakes import ScriptedBackend, last_user

PROMPT = "Explain why the sky is blue."


def kind(req: Request) -> str:
    """Which step of RRD a request belongs to ("repair-decompose"/"repair-initial" for a re-ask)."""
    text = last_user(req)
    if text.startswith("Your answer cannot be used"):
        first = req.messages[1]["content"]
        return "repair-decompose" if "is too coarse: all of the responses" in first else "repair-initial"
    system = req.messages[0]["content"] if req.messages[0]["role"] == "system" else ""
    if "strict, impartial grader" in system:
        return "grade"
    if "low-effort" in system:
        return "weak"
    if "is too coarse: all of the responses" in text:
        return "decompose"
    if "substantially overlap" in text:
        return "overlap"
    if "conflict with one of the accepted" in text:
        return "conflict"
    if "Write a list of rubrics" in text:
        return "initial"
    if "Rate how important" in text:
        return "weights"
    return "sample" if req.params.temperature > 0 else "strong"


def marker(text: str, name: str, default: str | None = None) -> str | None:
    m = re.search(rf"\[{name}(?:=([^\]]*))?\]", text)
    if not m:
        return default
    return m.group(1) if m.group(1) is not None else ""


def satisfies(criterion: str, response: str) -> bool | None:
    if response.startswith("STRONG"):
        return marker(criterion, "weak") is None
    if response.startswith("WEAK"):
        return marker(criterion, "weak") is not None
    i = int(re.match(r"\[sample (\d+)\]", response).group(1))  # type: ignore[union-attr]
    if i < int(marker(criterion, "unscored", "0")):  # type: ignore[arg-type]
        return None
    return i < int(marker(criterion, "c", "0"))  # type: ignore[arg-type]


def word(v: bool | None) -> str:
    return "maybe" if v is None else "YES" if v else "NO"


def make_script(initial: Sequence[str]):
    def script(req: Request) -> str:
        text, k = last_user(req), kind(req)
        if k.startswith("repair-"):  # a re-ask gets the answer the original request would get
            text, k = req.messages[1]["content"], k.removeprefix("repair-")
        if k == "sample":
            return f"[sample {req.params.sample_index}] Rayleigh scattering."
        if k in ("strong", "weak"):
            return f"{k.upper()} reference answer."
        if k == "initial":
            return "Here are the rubrics:\n```json\n" + json.dumps(list(initial)) + "\n```"
        if k == "grade":
            response = re.search(r"<response>\n(.*?)\n</response>", text, re.S).group(1)  # type: ignore[union-attr]
            if "Criteria:\n" in text:  # batch grading: numbered criteria, JSON list answer
                crits = re.findall(r"^\d+\. (.*)$", text.split("Criteria:\n")[1].split("\n\n")[0], re.M)
                return json.dumps([word(satisfies(c, response)) for c in crits])
            criterion = re.search(r"Criterion: (.*)$", text, re.M).group(1)  # type: ignore[union-attr]
            return word(satisfies(criterion, response))
        if k == "decompose":
            rubric = re.search(r"Rubric: (.*)\n", text).group(1)  # type: ignore[union-attr]
            if marker(rubric, "baddecomp") is not None:
                return "I would split it into a few parts."
            name, j = rubric.split()[0], marker(rubric, "kids", "0")
            return json.dumps([f"{name}.{n} [c={j}] [kids={j}]" for n in (1, 2)])
        if k in ("overlap", "conflict"):
            candidate = re.search(r"Candidate rubric: (.*)", text).group(1)  # type: ignore[union-attr]
            accepted = re.findall(r"^(\d+)\. (\S+)", text, re.M)
            target = marker(candidate, k)
            hit = next((int(n) for n, name in accepted if name == target), None)
            return json.dumps({"overlaps" if k == "overlap" else "conflicts": hit})
        if k == "weights":
            n = len(re.findall(r"^\d+\. ", text, re.M))
            return json.dumps(list(range(1, n + 1)))
        raise AssertionError(f"unexpected request: {text[:200]}")

    return script


def make_judge(initial: Sequence[str], script=None, **judge_kw) -> tuple[Judge, ScriptedBackend]:
    acc = Accounting()
    backend = ScriptedBackend(script or make_script(initial), accounting=acc)
    return Judge(JudgeConfig(model="x", cache=False, **judge_kw), backend=backend, accounting=acc), backend


async def run(
    initial: Sequence[str], judge_kw: dict | None = None, script=None, **cfg
) -> tuple[RubricSet, ScriptedBackend]:
    judge, backend = make_judge(initial, script, **(judge_kw or {}))
    config = RefineConfig(**{"n_samples": 8, "weight_scheme": "uniform", **cfg})
    return await refine_prompt(PROMPT, judge, judge, config, prompt_id="p1"), backend


def by_name(rs: RubricSet) -> dict[str, object]:
    """The tree by marker name, without the dropped repeats (which share their original's name)."""
    return {r.text.split()[0]: r for r in rs.tree if r.status != "dropped"}


def calls(backend: ScriptedBackend, k: str) -> list[Request]:
    return [r for r in backend.requests if kind(r) == k]


# -- decomposition ---------------------------------------------------------------------------------------------


async def test_decomposes_exactly_when_c_exceeds_n():
    rs, _ = await run(["at [c=2]", "above [c=3]"], satisfy_threshold=2)
    t = by_name(rs)
    assert t["at"].satisfied == 2 and t["at"].status == "accepted"
    assert t["above"].satisfied == 3 and t["above"].status == "decomposed"
    assert {r.text.split()[0] for r in rs.rubrics} == {"at", "above.1", "above.2"}


async def test_children_replace_the_parent():
    rs, _ = await run(["p [c=5] [kids=1]"])
    parent = rs.tree[0]
    assert parent.status == "decomposed" and parent not in rs.rubrics
    assert [r.parent for r in rs.rubrics] == [parent.id, parent.id]
    assert [r.depth for r in rs.rubrics] == [1, 1]
    assert [r.origin for r in rs.rubrics] == ["decomposed", "decomposed"]
    assert parent.children == [r.id for r in rs.rubrics]
    assert rs.weights == pytest.approx([0.5, 0.5])


async def test_depth_cap_stops_recursion_and_the_capped_rubric_goes_to_the_filters():
    rs, backend = await run(["d [c=5] [kids=5]"], max_depth=2, max_rejections=100)
    assert max(r.depth for r in rs.tree) == 2
    assert len(calls(backend, "decompose")) == 1 + 2  # depth 0 and both depth-1 rubrics
    assert len(rs.rubrics) == 4 and all(r.depth == 2 for r in rs.rubrics)
    assert all("depth cap 2" in r.detail for r in rs.rubrics)


async def test_max_depth_zero_never_decomposes():
    rs, backend = await run(["d [c=8]"], max_depth=0)
    assert not calls(backend, "decompose") and rs.rubrics[0].status == "accepted"


async def test_decompose_switch_off_sends_coarse_rubrics_to_the_filters():
    rs, backend = await run(["d [c=8]"], decompose=False)
    assert not calls(backend, "decompose") and [r.status for r in rs.tree] == ["accepted"]


async def test_decomposition_prompt_shows_only_satisfying_samples_and_other_rubrics():
    _, backend = await run(["x [c=4] [unscored=1]", "other [c=0]"])
    (req,) = calls(backend, "decompose")
    text = last_user(req)
    # sample 0 is unscored, samples 1..3 are YES (c = 3 > n), the rest NO
    assert all(f"[sample {i}]" in text for i in (1, 2, 3))
    for i in (0, *range(4, 8)):
        assert f"[sample {i}]" not in text
    assert "other [c=0]" in text.split("Other rubrics already in use")[1]


async def test_children_position_front_processes_the_subtree_first():
    back, _ = await run(["p [c=5]", "q [c=0]"])
    front, _ = await run(["p [c=5]", "q [c=0]"], children_position="front")
    assert [r.text.split()[0] for r in back.rubrics] == ["q", "p.1", "p.2"]
    assert [r.text.split()[0] for r in front.rubrics] == ["p.1", "p.2", "q"]


# -- filters -----------------------------------------------------------------------------------------------------


async def test_each_filter_rejects_with_its_reason():
    rs, _ = await run(
        [
            "keep [c=1]",
            "Keep  [c=1]!",  # same normalised text
            "mis [c=1] [weak]",
            "over [c=1] [overlap=keep]",
            "con [c=1] [conflict=keep]",
            "bad [c=6] [baddecomp]",
        ],
        on_failed_decomposition="reject",
    )
    t = {r.text: r for r in rs.tree}
    assert (t["Keep  [c=1]!"].status, t["Keep  [c=1]!"].reason) == ("dropped", "duplicate")
    assert normalise("keep [c=1]") == normalise("Keep  [c=1]!")
    assert t["keep [c=1]"].status == "accepted"
    expected = {
        "mis [c=1] [weak]": "misaligned",
        "over [c=1] [overlap=keep]": "overlap",
        "con [c=1] [conflict=keep]": "conflict",
        "bad [c=6] [baddecomp]": "failed_decomposition",
    }
    for text, reason in expected.items():
        assert (t[text].status, t[text].reason) == ("rejected", reason), text
    assert t["keep [c=1]"].id in t["over [c=1] [overlap=keep]"].detail
    assert t["keep [c=1]"].id in t["con [c=1] [conflict=keep]"].detail
    assert t["mis [c=1] [weak]"].weak is True and t["mis [c=1] [weak]"].strong is False
    assert rs.stats["rejections"] == 4  # the duplicate was dropped before grading, outside T
    assert rs.stats["dropped"] == 1
    assert len({r.id for r in rs.tree}) == len(rs.tree)  # ids stay unique within a tree


async def test_overlap_and_conflict_checks_are_not_called_while_A_is_empty():
    rs, backend = await run(["first [c=1] [weak]", "second [c=1]"])
    assert not calls(backend, "overlap") and not calls(backend, "conflict")
    assert [r.status for r in rs.tree] == ["rejected", "accepted"]
    rs, backend = await run(["first [c=1]", "second [c=1]"])
    assert len(calls(backend, "overlap")) == 1 and len(calls(backend, "conflict")) == 1


async def test_checks_hand_the_engine_their_json_opening_and_closing_and_nothing_else_does():
    """Overlap and conflict checks send the opening of the JSON they ask for as the answer's known start (a local
    engine evaluates it instead of decoding it), its closing brace as the stop string (the answer ends there,
    not a decoded end-of-turn token later) and its whole values as final words; the answer, which then starts with the one and lacks the other (the
    scripted backend cuts it as a real one does), is read as before."""
    rs, backend = await run(["keep [c=1]", "over [c=1] [overlap=keep]", "con [c=1] [conflict=keep]"])
    for k, key in (("overlap", "overlaps"), ("conflict", "conflicts")):
        asked = calls(backend, k)
        assert asked and {r.params.answer_prefix for r in asked} == {f'{{"{key}":'}
        assert {r.params.stop for r in asked} == {("}",)}
        assert {r.params.final_words for r in asked} == {("null", "1")}  # one rubric accepted when they ran
    others = [r for r in backend.requests if kind(r) not in ("overlap", "conflict")]
    assert {r.params.answer_prefix for r in others} == {""} and {r.params.stop for r in others} == {()}
    assert {(kind(r) == "grade", r.params.final_words) for r in others} == {(True, ("YES", "NO")), (False, ())}
    assert [(r.status, r.reason) for r in rs.tree] == [("accepted", None), ("rejected", "overlap"),
                                                        ("rejected", "conflict")]


async def test_stage_switches_skip_their_checks():
    rs, backend = await run(
        ["a [c=1]", "b [c=1] [weak] [overlap=a] [conflict=a]"], misalignment=False, overlap=False, conflict=False
    )
    assert all(r.status == "accepted" for r in rs.tree)
    assert not {kind(r) for r in backend.requests} & {"overlap", "conflict", "strong", "weak"}


async def test_unparseable_overlap_answer_keeps_the_rubric_and_says_so():
    acc = Accounting()
    base = make_script(["a [c=1]", "b [c=1]"])
    backend = ScriptedBackend(lambda r: "hmm, hard to say" if kind(r) == "overlap" else base(r), accounting=acc)
    judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
    rs = await refine_prompt(PROMPT, judge, judge, RefineConfig(weight_scheme="uniform"))
    b = rs.tree[1]
    assert b.status == "accepted" and "unparseable overlap check" in b.detail


async def test_rejection_budget_stops_the_loop_and_flags_the_rest():
    initial = ["a [c=1] [weak]", "b [c=1] [weak]", "c [c=1]", "d [c=1]"]
    rs, backend = await run(initial, max_rejections=2, fallback="none")
    assert rs.stopped == "rejection_budget"
    assert [r.status for r in rs.tree] == ["rejected", "rejected", "pending", "pending"]
    assert all("rejection budget" in r.detail for r in rs.tree[2:])
    assert rs.rubrics == [] and rs.weights == [] and rs.fallback is None
    assert rs.stats["processed"] == 2
    # the default falls back to the initial rubrics that passed the misalignment check (graded, never decided)
    rs, _ = await run(initial, max_rejections=2)
    assert [r.text for r in rs.rubrics] == ["c [c=1]", "d [c=1]"] and "stopped: rejection_budget" in rs.fallback
    assert [r.status for r in rs.tree] == ["rejected", "rejected", "pending", "pending"]


async def test_max_queue_is_a_safety_cap():
    rs, _ = await run(["a [c=1]", "b [c=1]", "c [c=1]"], max_queue=2)
    assert rs.stopped == "max_queue" and [r.status for r in rs.tree] == ["accepted", "accepted", "pending"]


# -- verdict handling ----------------------------------------------------------------------------------------------


async def test_unscored_verdicts_are_not_yes():
    rs, backend = await run(["u [c=5] [unscored=3]"])
    (r,) = rs.tree
    assert r.verdicts == [None, None, None, True, True, False, False, False]
    assert r.satisfied == 2 and r.status == "accepted"  # c = 2 = n: not decomposed
    assert not calls(backend, "decompose")
    assert "3 of 8 sample verdicts unscored" in r.detail


async def test_whitened_weights_from_the_verdict_matrix():
    rs, _ = await run(["a [c=1]", "b [c=2]", "c [c=2] [unscored=1]"], weight_scheme="whitened")
    assert len(rs.weights) == 3 and sum(rs.weights) == pytest.approx(1.0)
    assert rs.weight_scheme == "whitened_uniform"
    assert rs.verdicts[2][0] is None and "1 unscored cells imputed" in rs.weight_note


async def test_llm_weights_use_one_proposer_call():
    rs, backend = await run(["a [c=1]", "b [c=1]", "c [c=1]"], weight_scheme="llm")
    assert len(calls(backend, "weights")) == 1
    assert rs.weights == pytest.approx([1 / 6, 2 / 6, 3 / 6]) and rs.weight_scheme == "llm"


async def test_judge_calls_are_attributed_per_rubric():
    rs, backend = await run(["a [c=1]", "b [c=1]"])
    a, b = rs.tree
    assert a.judge_calls == 8 + 2  # N samples + 2 references, single mode
    assert b.judge_calls == 8 + 2 + 2  # plus its overlap and conflict checks
    assert rs.stats["calls"] == len(backend.requests)
    assert rs.stats["stages"]["grading"]["calls"] == 20


async def test_call_counts_stay_per_prompt_when_prompts_share_a_judge():
    judge, backend = make_judge(["a [c=1]", "b [c=3]"])
    config = RefineConfig(weight_scheme="uniform")
    one, two = await asyncio.gather(
        refine_prompt("first prompt", judge, judge, config), refine_prompt("second prompt", judge, judge, config)
    )
    assert one.stats["calls"] + two.stats["calls"] == len(backend.requests) == judge.accounting.calls
    assert one.stats["calls"] == two.stats["calls"]  # the same script, so the same amount of work each


async def test_one_grading_wave_per_generation_of_rubrics():
    rs, backend = await run(["p [c=5]", "q [c=0]", "r [c=0]"])
    assert rs.stats["waves"] == 2  # initial rubrics, then p's children


# -- determinism and persistence --------------------------------------------------------------------------------


class JitteryBackend(ScriptedBackend):
    """Answers the same as ScriptedBackend but finishes requests in a random order, like a real API."""

    def __init__(self, script, accounting, seed: int):
        super().__init__(script, accounting=accounting)
        self.rng = random.Random(seed)

    async def complete(self, requests, on_done=None):
        async def one(i: int, req: Request) -> Completion:
            await asyncio.sleep(self.rng.random() / 1000)
            completion = (await super(JitteryBackend, self).complete([req]))[0]
            if on_done is not None:
                on_done(i, completion)
            return completion

        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))


INITIAL = ["a [c=1]", "b [c=4] [kids=1]", "c [c=1] [weak]", "d [c=2] [overlap=a]", "e [c=3] [kids=2]"]


async def test_same_seed_same_result_regardless_of_timing():
    hashes, trees = [], []
    for seed in (1, 2):
        acc = Accounting()
        judge = Judge(
            JudgeConfig(model="x", cache=False), backend=JitteryBackend(make_script(INITIAL), acc, seed), accounting=acc
        )
        rs = await refine_prompt(PROMPT, judge, judge, RefineConfig(seed=7))
        hashes.append(rs.content_hash)
        trees.append([r.to_dict() for r in rs.tree])
    assert hashes[0] == hashes[1] and trees[0] == trees[1]
    assert len(hashes[0]) == 64


class SlowDecompositions(ScriptedBackend):
    """Answers as ScriptedBackend; a decomposition request takes DELAY seconds, anything else no time."""

    DELAY = 0.05

    async def complete(self, requests, on_done=None):
        if any(kind(r) == "decompose" for r in requests):
            await asyncio.sleep(self.DELAY)
        return await super().complete(requests, on_done)


async def test_each_stage_is_timed_and_the_summary_says_where_the_time_went():
    acc = Accounting()
    backend = SlowDecompositions(make_script(INITIAL), accounting=acc)
    judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
    rs = await refine_prompt(PROMPT, judge, judge, RefineConfig(seed=7))
    stages = rs.stats["stages"]
    decompositions = stages["decompose"]["calls"]
    assert decompositions >= 2
    assert stages["decompose"]["seconds"] >= SlowDecompositions.DELAY * decompositions
    assert stages["grading"]["seconds"] < SlowDecompositions.DELAY and stages["grading"]["seconds"] > 0
    assert rs.stats["seconds"] == pytest.approx(sum(t["seconds"] for t in stages.values()))
    assert rs.stats["seconds"] <= rs.stats["elapsed_s"]
    times = stage_times([rs.to_dict()])
    assert next(iter(times)) == "decompose"  # most seconds first
    line = next(x for x in refine_summary([rs.to_dict()], acc).splitlines() if x.startswith("time waiting"))
    assert f"decompose {stages['decompose']['seconds']:.0f} s" in line
    assert stage_times([{"stats": {"stages": {"grading": {"calls": 3}}}}]) == {}  # a set from before timing


async def test_batch_grading_mode_gives_the_same_decisions():
    single, _ = await run(INITIAL)
    batch, backend = await run(INITIAL, judge_kw={"grading_mode": "batch", "batch_size": 4})
    strip = lambda rs: [(r.text, r.status, r.reason, r.verdicts) for r in rs.tree]  # noqa: E731
    assert strip(single) == strip(batch)
    assert single.content_hash != batch.content_hash  # the grading mode is part of the provenance
    stages = batch.stats["stages"]
    per_prompt = sum(stages[s]["calls"] for s in ("sampling", "references", "initial"))
    assert sum(r.judge_calls for r in batch.tree) == pytest.approx(batch.stats["calls"] - per_prompt)


async def test_rubric_set_json_round_trip():
    rs, _ = await run(INITIAL, weight_scheme="whitened")
    again = RubricSet.from_json(rs.to_json())
    assert again == rs
    assert again.to_json() == rs.to_json()
    assert again.rubrics[0] is next(r for r in again.tree if r.id == again.rubrics[0].id)
    assert again.compute_hash() == rs.content_hash


async def test_score_and_compare_delegate_to_scoring():
    rs, _ = await run(["a [c=1]", "b [c=1]"])
    assert rs.score([True, False]) == pytest.approx(0.5)
    assert rs.score([True, None]) == pytest.approx(1.0)
    assert rs.compare([True, True], [True, False]) == "A"
    assert rs.compare([None, None], [True, False]) is None


async def test_supplied_responses_and_references_skip_generation():
    acc = Accounting()
    backend = ScriptedBackend(make_script(["a [c=2]"]), accounting=acc)
    judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
    responses = [f"[sample {i}] given" for i in range(4)]
    rs = await refine_prompt(
        PROMPT, judge, judge, RefineConfig(), responses=responses, references={"strong": "STRONG", "weak": "WEAK"}
    )
    assert not {kind(r) for r in backend.requests} & {"sample", "strong", "weak"}
    assert [s.model for s in rs.samples] == ["provided"] * 4
    assert rs.rubrics[0].verdicts == [True, True, False, False]


async def test_samples_are_distinct_and_split_over_samplers():
    acc = Accounting()
    seen: list[tuple[str, int]] = []

    def sampler_judge(name: str) -> Judge:
        def script(req: Request) -> str:
            seen.append((name, req.params.sample_index))
            return f"[sample {len(seen) - 1}] from {name}"

        backend = ScriptedBackend(script, accounting=acc)
        return Judge(JudgeConfig(model=name, cache=False), backend=backend, accounting=acc)

    proposer, _ = make_judge(["a [c=1]"])
    samplers = {"m1": sampler_judge("m1"), "m2": sampler_judge("m2")}
    config = RefineConfig(n_samples=5, samplers=["m1", "m2"], misalignment=False, weight_scheme="uniform")
    rs = await refine_prompt(PROMPT, proposer, proposer, config, samplers=samplers)
    assert [s.model for s in rs.samples] == ["m1", "m1", "m1", "m2", "m2"]
    assert sorted(seen) == [("m1", 0), ("m1", 1), ("m1", 2), ("m2", 0), ("m2", 1)]


async def test_caller_rubrics_skip_stage_one_and_go_through_the_loop():
    judge, backend = make_judge([])
    rs = await refine_prompt(
        PROMPT, judge, judge, RefineConfig(weight_scheme="uniform"), initial_rubrics=["mine [c=4]", "yours [c=1]"]
    )
    assert not calls(backend, "initial") and len(calls(backend, "decompose")) == 1
    assert [(r.text.split()[0], r.origin, r.status) for r in rs.tree] == [
        ("mine", "provided", "decomposed"),
        ("yours", "provided", "accepted"),
        ("mine.1", "decomposed", "accepted"),
        ("mine.2", "decomposed", "accepted"),
    ]


async def test_unreadable_initial_rubrics_give_an_empty_set_with_the_reason():
    acc = Accounting()
    base = make_script([])
    backend = ScriptedBackend(lambda r: "no idea" if kind(r) in ("initial", "repair-initial") else base(r),
                              accounting=acc)
    judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
    rs = await refine_prompt(PROMPT, judge, judge, RefineConfig())
    assert rs.stopped == "failed" and "no usable initial rubrics" in rs.failure and "'no idea'" in rs.failure
    assert rs.rubrics == [] and rs.weights == [] and len(rs.samples) == 8
    assert rs.fallback is None  # nothing readable to fall back to: the one way a set can still be empty
    assert len(calls(backend, "initial")) == 1 and len(calls(backend, "repair-initial")) == 1


# -- robustness: a proposer that repeats itself (the failure seen with the embedded 1.5B model) -------------------


def listed_others(request_text: str) -> list[str]:
    """The rubrics a decomposition request lists as already in use ([] when it lists none)."""
    _, found, rest = request_text.partition("Other rubrics already in use")
    return re.findall(r"^\d+\. (.*)$", rest, re.M) if found else []


def echo_script(initial: Sequence[str], repaired: Sequence[str] | None = None, initial_repair=None):
    """Like make_script, but every decomposition echoes the parent and the first rubric "already in use" (or the
    parent twice), also when re-asked, unless `repaired` gives the answer to a re-ask."""
    base = make_script(initial)

    def script(req: Request) -> str:
        k = kind(req)
        if k in ("decompose", "repair-decompose"):
            first = req.messages[1]["content"]
            rubric = re.search(r"Rubric: (.*)\n", first).group(1)  # type: ignore[union-attr]
            if k == "repair-decompose" and repaired is not None:
                return json.dumps(list(repaired))
            if k == "decompose" and marker(rubric, "baddecomp") is not None:
                return "I would split it into a few parts."
            others = listed_others(first)
            return json.dumps([rubric, others[0] if others else f"**{rubric}**"])
        if k == "repair-initial":
            return initial_repair if initial_repair is not None else base(req)
        return base(req)

    return script


ECHO_INITIAL = ["p [c=5]", "q [c=4]", "r [c=1]", "s [c=6] [weak]"]


async def test_echoing_proposer_keep_mode_never_empties_the_set():
    rs, backend = await run(ECHO_INITIAL, script=echo_script(ECHO_INITIAL), on_failed_decomposition="keep")
    t = by_name(rs)
    assert rs.rubrics and rs.fallback is None
    # p and q cannot be decomposed: kept as atomic, filtered, accepted; the misaligned s is still rejected
    assert {r.text.split()[0] for r in rs.rubrics} == {"p", "q", "r"}
    for name in ("p", "q"):
        assert t[name].status == "accepted" and "decomposition failed after 1 repair(s)" in t[name].detail
        assert "kept as atomic" in t[name].detail
    assert t["s"].reason == "misaligned"
    dropped = [r for r in rs.tree if r.status == "dropped"]
    assert dropped and all(r.reason in ("duplicate", "near_duplicate") and r.detail for r in dropped)
    assert any("the rubric being refined" in r.detail for r in dropped)
    assert any("already proposed" in r.detail for r in dropped)
    assert all(r.parent is not None and r.origin == "decomposed" for r in dropped)
    assert rs.stats["rejections"] == 1  # the misaligned rubric only: repeats spend no part of T
    assert rs.stats["failed_decompositions"] == rs.stats["kept_after_failed_decomposition"] == 3  # p, q, s
    assert rs.stats["repairs"] == 3 and rs.stats["repaired"] == 0
    assert len(calls(backend, "repair-decompose")) == 3
    feedback = last_user(calls(backend, "repair-decompose")[0])
    assert "rubric 1 ('p [c=5]') is a copy of the rubric being refined" in feedback


async def test_echoing_proposer_reject_mode_is_the_paper_strict_behaviour():
    rs, _ = await run(ECHO_INITIAL, script=echo_script(ECHO_INITIAL), on_failed_decomposition="reject",
                      fallback="none")
    t = by_name(rs)
    assert [r.text.split()[0] for r in rs.rubrics] == ["r"]
    assert {t[n].reason for n in ("p", "q", "s")} == {"failed_decomposition"}
    assert rs.stats["rejections"] == 3
    # every initial rubric coarse and misaligned: nothing survives, and with fallback off the set is empty
    everything_coarse = ["p [c=5]", "q [c=4]"]
    rs, _ = await run(everything_coarse, script=echo_script(everything_coarse), on_failed_decomposition="reject",
                      fallback="none")
    assert rs.rubrics == [] and rs.fallback is None and rs.stopped == "queue_empty"


async def test_fallback_to_the_initial_rubrics_that_passed_the_misalignment_check():
    initial = ["p [c=5]", "q [c=4] [weak]", "u [c=3]"]
    rs, _ = await run(initial, script=echo_script(initial), on_failed_decomposition="reject")
    assert [r.text for r in rs.rubrics] == ["p [c=5]", "u [c=3]"]
    assert "fell back to the 2 initial rubrics that passed the misalignment check" in rs.fallback
    assert all("fallback" in r.detail for r in rs.rubrics)
    assert len(rs.weights) == 2 and len(rs.verdicts) == 2
    again = RubricSet.from_json(rs.to_json())
    assert again.fallback == rs.fallback and again.texts == rs.texts
    # all misaligned: all initial rubrics, and the reason says so
    initial = ["p [c=5] [weak]", "q [c=4] [weak]"]
    rs, _ = await run(initial, script=echo_script(initial), on_failed_decomposition="reject")
    assert len(rs.rubrics) == 2 and "none passed the misalignment check" in rs.fallback


async def test_a_repair_that_works_replaces_the_parent():
    initial = ["p [c=5]", "q [c=1]"]
    rs, backend = await run(initial, script=echo_script(initial, repaired=["p.a [c=1]", "p.b [c=2]"]))
    t = by_name(rs)
    assert t["p"].status == "decomposed" and t["p"].children == [t["p.a"].id, t["p.b"].id]
    assert {r.text.split()[0] for r in rs.rubrics} == {"q", "p.a", "p.b"}
    assert rs.stats["repairs"] == 1 and rs.stats["repaired"] == 1
    assert rs.stats["stages"]["repair"]["calls"] == 1
    assert t["p"].judge_calls == 8 + 2 + 2  # grading, the decomposition and its repair
    # the repair turn carries the failed answer and the feedback
    (req,) = calls(backend, "repair-decompose")
    assert [m["role"] for m in req.messages] == ["system", "user", "assistant", "user"]


async def test_one_new_child_after_repair_is_kept_and_the_repeat_is_dropped():
    initial = ["p [c=5]", "q [c=1]"]
    rs, _ = await run(initial, script=echo_script(initial, repaired=["q [c=1]", "p.new [c=1]"]))
    t = by_name(rs)
    assert t["p"].status == "decomposed" and t["p"].children == [t["p.new"].id]
    assert "into 1 new rubric" in t["p"].detail
    assert {r.text.split()[0] for r in rs.rubrics} == {"q", "p.new"}


async def test_a_child_repeating_a_rejected_rubric_is_still_a_repeat():
    initial = ["a [c=1] [weak]", "p [c=5]"]
    rs, _ = await run(initial, script=echo_script(initial, repaired=["A [c=1] [weak]!", "p.x [c=1]"]))
    dropped = [r for r in rs.tree if r.status == "dropped" and r.text == "A [c=1] [weak]!"]
    assert len(dropped) == 1 and dropped[0].reason == "duplicate"
    assert "already proposed ('a [c=1] [weak]')" in dropped[0].detail


async def test_repeats_inside_the_initial_list_are_dropped_once_outside_T():
    initial = ["a [c=1]", "A [c=1]!", "b [c=1]", "**b** [c=1]"]
    rs, backend = await run(initial, max_rejections=1)
    assert [r.text for r in rs.rubrics] == ["a [c=1]", "b [c=1]"]
    dropped = [r for r in rs.tree if r.status == "dropped"]
    assert [r.text for r in dropped] == ["A [c=1]!", "**b** [c=1]"]
    assert all("another rubric of the same answer" in r.detail and r.judge_calls == 0 for r in dropped)
    assert rs.stats["rejections"] == 0 and rs.stopped == "queue_empty"
    assert not calls(backend, "repair-initial")  # two repeats are not a decoding loop (degenerate_repeats=3)


async def test_a_degenerate_initial_list_is_re_asked():
    loop = ["w [c=1] well organized"] * 12 + ["x [c=1]"]
    fixed = json.dumps(["w [c=1] well organized", "y [c=2]", "z [c=0]"])
    rs, backend = await run(loop, script=echo_script(loop, initial_repair=fixed))
    assert [r.text.split()[0] for r in rs.rubrics] == ["w", "y", "z"]
    assert "repeats the rubric 'w [c=1] well organized' 12 times" in last_user(calls(backend, "repair-initial")[0])
    assert rs.stats["repaired"] == 1 and rs.stats["dropped"] == 11
    # still degenerate after the repair: the distinct rubrics are kept and the run says so
    rs, _ = await run(loop, script=echo_script(loop, initial_repair=json.dumps(["w [c=1] well organized"] * 5)))
    assert [r.text.split()[0] for r in rs.rubrics] == ["w", "x"]
    assert "kept the 2 distinct ones" in rs.stats["errors"][0]


async def test_an_unreadable_decomposition_is_repaired():
    initial = ["p [c=5] [baddecomp]"]
    rs, backend = await run(initial, script=echo_script(initial, repaired=["p.1 [c=1]", "p.2 [c=1]"]))
    assert [r.text for r in rs.rubrics] == ["p.1 [c=1]", "p.2 [c=1]"]
    feedback = last_user(calls(backend, "repair-decompose")[0])
    assert "it is not a JSON list of exactly 2 strings" in feedback


async def test_repair_attempts_zero_asks_once():
    rs, backend = await run(ECHO_INITIAL, script=echo_script(ECHO_INITIAL), repair_attempts=0,
                            on_failed_decomposition="keep")
    assert not calls(backend, "repair-decompose") and rs.stats["repairs"] == 0
    assert "after 0 repair(s)" in by_name(rs)["p"].detail


async def test_proposer_calls_carry_the_repetition_penalty_and_grading_does_not():
    _, backend = await run(["p [c=5] [kids=1]"], proposer_repetition_penalty=1.3)
    assert {r.params.repetition_penalty for r in calls(backend, "decompose")} == {1.3}
    assert {r.params.repetition_penalty for r in calls(backend, "initial")} == {1.3}
    assert {r.params.repetition_penalty for r in calls(backend, "grade")} == {1.0}


async def test_progress_reports_stages_and_counts():
    seen = []
    judge, _ = make_judge(INITIAL)
    rs = await refine_prompt(PROMPT, judge, judge, RefineConfig(weight_scheme="uniform"), prompt_id="p9",
                             progress=seen.append)
    stages = [p.stage for p in seen]
    assert stages[0] == "sampling" and stages[-1] == "done"
    assert {"initial", "decompose", "deciding"} <= set(stages)
    assert any(s.startswith("grading ") for s in stages)
    assert all(p.prompt_id == "p9" for p in seen)
    last = seen[-1]
    assert (last.accepted, last.rejected, last.queue) == (len(rs.rubrics), rs.stats["rejections"], 0)
    assert last.calls == rs.stats["calls"]
    assert max(p.queue for p in seen) >= len(INITIAL)


async def test_echo_runs_are_deterministic_under_random_completion_order():
    trees = []
    for seed in (3, 4):
        acc = Accounting()
        backend = JitteryBackend(echo_script(ECHO_INITIAL), acc, seed)
        judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
        rs = await refine_prompt(PROMPT, judge, judge, RefineConfig(seed=7))
        trees.append((rs.content_hash, [r.to_dict() for r in rs.tree]))
    assert trees[0] == trees[1]
