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
from tests.fakes import ScriptedBackend, last_user

PROMPT = "Explain why the sky is blue."


def kind(req: Request) -> str:
    """Which step of RRD a request belongs to."""
    text = last_user(req)
    system = req.messages[0]["content"] if req.messages[0]["role"] == "system" else ""
    if "strict, impartial grader" in system:
        return "grade"
    if "low-effort" in system:
        return "weak"
    if "This rubric is too coarse" in text:
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
            criterion = re.search(r"Criterion: (.*)\n", text).group(1)  # type: ignore[union-attr]
            return word(satisfies(criterion, response))
        if k == "decompose":
            rubric = re.search(r"Rubric: (.*)\n", text).group(1)  # type: ignore[union-attr]
            if marker(rubric, "baddecomp") is not None:
                return "I would split it into a few parts."
            name, j = rubric.split()[0], marker(rubric, "kids", "0")
            return json.dumps([f"{name}.{n} [c={j}] [kids={j}]" for n in (1, 2)])
        if k in ("overlap", "conflict"):
            candidate = re.search(r"Candidate rubric: (.*)\n", text).group(1)  # type: ignore[union-attr]
            accepted = re.findall(r"^(\d+)\. (\S+)", text, re.M)
            target = marker(candidate, k)
            hit = next((int(n) for n, name in accepted if name == target), None)
            return json.dumps({"overlaps" if k == "overlap" else "conflicts": hit})
        if k == "weights":
            n = len(re.findall(r"^\d+\. ", text, re.M))
            return json.dumps(list(range(1, n + 1)))
        raise AssertionError(f"unexpected request: {text[:200]}")

    return script


def make_judge(initial: Sequence[str], **judge_kw) -> tuple[Judge, ScriptedBackend]:
    acc = Accounting()
    backend = ScriptedBackend(make_script(initial), accounting=acc)
    return Judge(JudgeConfig(model="x", cache=False, **judge_kw), backend=backend, accounting=acc), backend


async def run(initial: Sequence[str], judge_kw: dict | None = None, **cfg) -> tuple[RubricSet, ScriptedBackend]:
    judge, backend = make_judge(initial, **(judge_kw or {}))
    config = RefineConfig(**{"n_samples": 8, "weight_scheme": "uniform", **cfg})
    return await refine_prompt(PROMPT, judge, judge, config, prompt_id="p1"), backend


def by_name(rs: RubricSet) -> dict[str, object]:
    return {r.text.split()[0]: r for r in rs.tree}


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
        ]
    )
    t = {r.text: r for r in rs.tree}
    assert normalise("keep [c=1]") == normalise("Keep  [c=1]!")
    assert t["keep [c=1]"].status == "accepted"
    expected = {
        "Keep  [c=1]!": "duplicate",
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
    assert rs.stats["rejections"] == 5
    assert rs.tree[1].id != rs.tree[0].id  # ids stay unique within a tree


async def test_duplicate_of_a_rejected_rubric_is_still_a_duplicate():
    rs, _ = await run(["a [c=1] [weak]", "A [c=1] [weak]"])
    assert [r.reason for r in rs.tree] == ["misaligned", "duplicate"]


async def test_overlap_and_conflict_checks_are_not_called_while_A_is_empty():
    rs, backend = await run(["first [c=1] [weak]", "second [c=1]"])
    assert not calls(backend, "overlap") and not calls(backend, "conflict")
    assert [r.status for r in rs.tree] == ["rejected", "accepted"]
    rs, backend = await run(["first [c=1]", "second [c=1]"])
    assert len(calls(backend, "overlap")) == 1 and len(calls(backend, "conflict")) == 1


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
    rs, backend = await run(["a [c=1] [weak]", "b [c=1] [weak]", "c [c=1]", "d [c=1]"], max_rejections=2)
    assert rs.stopped == "rejection_budget"
    assert [r.status for r in rs.tree] == ["rejected", "rejected", "pending", "pending"]
    assert all("rejection budget" in r.detail for r in rs.tree[2:])
    assert rs.rubrics == [] and rs.weights == []
    assert rs.stats["processed"] == 2


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

    async def complete(self, requests):
        async def one(req: Request) -> Completion:
            await asyncio.sleep(self.rng.random() / 1000)
            return (await super(JitteryBackend, self).complete([req]))[0]

        return list(await asyncio.gather(*(one(r) for r in requests)))


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
    backend = ScriptedBackend(lambda r: "no idea" if kind(r) == "initial" else base(r), accounting=acc)
    judge = Judge(JudgeConfig(model="x", cache=False), backend=backend, accounting=acc)
    rs = await refine_prompt(PROMPT, judge, judge, RefineConfig())
    assert rs.stopped == "failed" and "unparseable initial rubrics" in rs.failure
    assert rs.rubrics == [] and rs.weights == [] and len(rs.samples) == 8
