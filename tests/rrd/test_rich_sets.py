"""The mechanisms that keep a small proposer's rubric sets rich: the splitter inside the loop, sampled
decomposition candidates, the contrastive decomposition prompt, per-sample initial lists, soft counts and order-confirmed checks; run
against the scripted model of test_refine_loop (markers dictate verdicts)."""

from __future__ import annotations

import json
import re

import pytest

from judges.types import TokenLogprobs
from rrd.records import Rubric
from tests.fakes import last_user
from tests.rrd.test_refine_loop import calls, kind, listed_others, make_script, marker, run

COMPOUND = "covers alpha [c=2] and covers beta [c=0]"


def parrot(initial):
    """A proposer that can only hand a rubric back: every decomposition answer is the parent, twice."""
    base = make_script(initial)

    def script(req):
        k = kind(req)
        if k in ("decompose", "repair-decompose"):
            rubric = re.search(r"Rubric: (.*)\n", req.messages[1]["content"]).group(1)
            return json.dumps([rubric, rubric])
        return base(req)

    return script


async def test_the_splitter_yields_children_when_the_proposer_only_repeats_its_parent():
    cfg = dict(n_samples=2, satisfy_threshold=1, misalignment=False, script=parrot([COMPOUND]))
    rs, backend = await run([COMPOUND], split_compound="first", **cfg)
    parent = rs.tree[0]
    assert parent.status == "decomposed" and "split by its syntax" in parent.detail
    children = [r for r in rs.tree if r.parent == parent.id and r.status != "dropped"]
    assert [r.origin for r in children] == ["split", "split"] and rs.stats["splits"] >= 1
    assert not [r for r in calls(backend, "decompose") if COMPOUND in r.messages[1]["content"]]  # no proposer call
    # "covers alpha" (c=2 > n=1) is coarse again and atomic: the parrot cannot decompose it, so it is rejected
    assert [r.text for r in rs.rubrics] == ["Covers beta [c=0]"]
    assert [r.reason for r in children] == ["failed_decomposition", None]

    off, _ = await run([COMPOUND], split_compound="off", **cfg)
    assert off.tree[0].status == "rejected" and off.tree[0].reason == "failed_decomposition"

    fallback, backend = await run([COMPOUND], split_compound="fallback", **cfg)
    assert fallback.tree[0].status == "decomposed"
    assert [r for r in calls(backend, "decompose") if COMPOUND in r.messages[1]["content"]]  # asked first


async def test_sampled_candidates_are_tried_until_one_gives_a_new_child():
    base = make_script(["p [c=2]"])

    def script(req):
        if kind(req) in ("decompose", "repair-decompose"):
            if req.params.sample_index < 2:  # the greedy answer, its repair and candidate 1 repeat the parent
                return json.dumps(["p [c=2]", "p [c=2]"])
            assert req.params.temperature > 0
            return json.dumps(["p.1 [c=1]", "p.2 [c=0]"])
        return base(req)

    rs, backend = await run(["p [c=2]"], n_samples=2, satisfy_threshold=1, misalignment=False, script=script,
                            decompose_candidates=3)
    assert rs.tree[0].status == "decomposed" and "sampled candidate 2 of 2" in rs.tree[0].detail
    assert {r.text for r in rs.rubrics} == {"p.1 [c=1]", "p.2 [c=0]"}
    assert rs.stats["candidates"] == 2 and rs.stats["candidate_wins"] == 1
    assert sorted(r.params.sample_index for r in calls(backend, "decompose")) == [0, 1, 2]

    one, _ = await run(["p [c=2]"], n_samples=2, satisfy_threshold=1, misalignment=False, script=script)
    assert one.tree[0].reason == "failed_decomposition" and one.stats["candidates"] == 0  # default: greedy only


async def test_the_contrastive_prompt_asks_what_separates_the_satisfying_samples():
    _, backend = await run(["x [c=3] [kids=0]"], n_samples=4, decompose_prompt="contrastive", max_depth=1)
    (req,) = calls(backend, "decompose")
    text = last_user(req)
    assert "what concrete thing does that best response include there" in text
    assert all(f"[sample {i}]" in text for i in range(3)) and "[sample 3]" not in text
    _, backend = await run(["x [c=3] [kids=0]"], n_samples=4, max_depth=1)
    assert "the others do not" not in last_user(calls(backend, "decompose")[0])  # the paper's prompt by default


async def test_hidden_others_leave_the_rubrics_in_use_out_of_the_decomposition_request():
    """A proposer that copies from the list of rubrics in use whenever it is shown one (what the 1.5B model did
    in all 52 failed decompositions on 20 WildBench prompts, docs/method-deviations.md): hidden, it can only write
    new children."""
    initial = ["p [c=2]", "q [c=0]", "r [c=0]"]
    base = make_script(initial)

    def copier(req):
        if kind(req) in ("decompose", "repair-decompose"):
            others = listed_others(req.messages[1]["content"])
            return json.dumps(others[:2] if others else ["p.1 [c=1]", "p.2 [c=0]"])
        return base(req)

    cfg = dict(n_samples=2, satisfy_threshold=1, misalignment=False, script=copier, on_failed_decomposition="keep")
    listed, _ = await run(initial, **cfg)
    assert listed.tree[0].status == "accepted" and "decomposition failed" in listed.tree[0].detail
    assert {r.text for r in listed.rubrics} == {"p [c=2]", "q [c=0]", "r [c=0]"}

    hidden, backend = await run(initial, decompose_others="hidden", **cfg)
    (req,) = calls(backend, "decompose")
    assert "already in use" not in last_user(req) and "q [c=0]" not in last_user(req)
    assert "Rubric: p [c=2]" in last_user(req)
    assert hidden.tree[0].status == "decomposed" and hidden.stats["failed_decompositions"] == 0
    assert {r.text for r in hidden.rubrics} == {"q [c=0]", "r [c=0]", "p.1 [c=1]", "p.2 [c=0]"}


def test_a_repair_after_a_hidden_list_does_not_point_at_it():
    from rrd import prompts

    asked = prompts.decompose("P", "p", ["s"], None)
    listed = prompts.repair(asked, "[]", ["it is empty"], 2)[-1]["content"]
    hidden = prompts.repair(asked, "[]", ["it is empty"], 2, others_listed=False)[-1]["content"]
    assert "listed as already in use" in listed and "listed" not in hidden and "another rubric in use" in hidden


def per_sample_script(lists):
    """A script whose joint initial list is ["joint [c=0]"] and whose list from sample i is lists(i)."""
    base = make_script(["joint [c=0]"])

    def script(req):
        text = last_user(req)
        if kind(req) == "initial" and "Here is one response" in text:
            return json.dumps(lists(int(re.search(r"\[sample (\d+)\]", text).group(1))))
        return base(req)

    return script


async def test_per_sample_initial_lists_add_what_the_joint_list_missed():
    script = per_sample_script(lambda i: ["joint [c=0]", f"own{i} [c=0]", "shared [c=0]"])

    rs, backend = await run(["joint [c=0]"], n_samples=2, misalignment=False, script=script, initial_mode="union")
    assert [r.text for r in rs.tree if r.status != "dropped"] == ["joint [c=0]", "own0 [c=0]", "shared [c=0]",
                                                                   "own1 [c=0]"]
    assert sum(r.status == "dropped" for r in rs.tree) == 3  # joint twice, shared once: no judge call for them
    assert len(calls(backend, "initial")) == 3

    per_sample, _ = await run(["joint [c=0]"], n_samples=2, misalignment=False, script=script,
                              initial_mode="per_sample")
    assert [r.text for r in per_sample.rubrics][:2] == ["joint [c=0]", "own0 [c=0]"]
    joint, backend = await run(["joint [c=0]"], n_samples=2, misalignment=False, script=script)
    assert len(calls(backend, "initial")) == 1 and [r.text for r in joint.rubrics] == ["joint [c=0]"]


async def test_draws_and_initial_lists_are_asked_in_one_batch_each():
    """Samples with the strong and weak references, then the joint list with the per-sample lists: one backend
    call each, so an in-process model decodes them together (and the answers are what separate calls give)."""
    script = per_sample_script(lambda i: [f"own{i} [c=0]"])
    rs, backend = await run(["joint [c=0]"], n_samples=3, script=script, initial_mode="union")
    first, second = ([kind(r) for r in b] for b in backend.batches[:2])
    assert sorted(first) == ["sample"] * 3 + ["strong", "weak"]
    assert second == ["initial"] * 4 and "Here is one response" not in last_user(backend.batches[1][0])
    assert len(rs.samples) == 3 and set(rs.references) == {"strong", "weak"}
    assert {"joint", "own0", "own1", "own2"} <= {r.text.split()[0] for r in rs.tree}


def test_soft_count_is_the_sum_of_p_yes_and_the_hard_count_without_probabilities():
    r = Rubric("i", "t", verdicts=[True, False, None], p_yes=[0.9, 0.4, None])
    assert r.satisfied == 1 and abs(r.soft_satisfied - 1.3) < 1e-9
    assert Rubric("j", "t", verdicts=[True, True]).soft_satisfied == 2  # a file written before p_yes existed


def test_pairwise_p_a_reads_the_verdict_token():
    from judges.parsing import pairwise_p_a

    def tok(t, top=()):
        return TokenLogprobs(t, 0.0, list(top))

    lp = [tok("A"), tok(" is"), tok(" better"), tok(" [["), tok("B", [("B", -0.2), ("A", -1.8), ("C", -3.0)]),
          tok("]]")]
    p = pairwise_p_a(lp)
    import math
    assert math.isclose(p, math.exp(-1.8) / (math.exp(-1.8) + math.exp(-0.2)))
    assert pairwise_p_a([tok("no"), tok(" verdict")]) is None
    assert pairwise_p_a([tok("[["), tok("C", [("C", -0.01)])]) is None  # a confident tie says nothing of A vs B


def test_soft_tie_break_of_the_two_game_protocol():
    from eval.judging import soft_pair_verdict
    from judges.types import PairVerdict

    def g(winner, p_a=None):
        return PairVerdict(winner, p_a=p_a)

    assert soft_pair_verdict(g("A", 0.9), g("B", 0.2)) == "A"  # the games agree (B in swapped order = A)
    # position bias: both games say "first"; P(A) 0.7 in game 1, P(first) 0.6 in game 2 (= P(B) 0.6) -> A by 0.55
    assert soft_pair_verdict(g("A", 0.7), g("A", 0.6)) == "A"
    assert soft_pair_verdict(g("A", 0.55), g("A", 0.8)) == "B"
    assert soft_pair_verdict(g("tie", 0.3), g(None)) == "B"  # one failed game: the other's probability decides
    assert soft_pair_verdict(g("A"), g("A")) == "tie"  # no logprobs: a tie, as in the hard protocol
    assert soft_pair_verdict(g(None), g(None)) is None


async def test_the_decomposition_budget_bounds_proposer_calls_and_keeps_the_rest_for_the_filters():
    # three coarse rubrics whose decompositions all fail (the answer repeats the parent): with a budget of 3
    # proposer calls and one sampled candidate after each failure, the first two parents spend it
    initial = ["a [c=2]", "b [c=2]", "c [c=2]"]
    cfg = dict(n_samples=2, satisfy_threshold=1, misalignment=False, script=parrot(initial), overlap=False,
               conflict=False, decompose_candidates=2, repair_attempts=0, on_failed_decomposition="keep")
    rs, backend = await run(initial, max_decompose_calls=3, **cfg)
    asked = calls(backend, "decompose")
    assert len(asked) == 3 and rs.stats["decompose_calls"] == 3  # a: greedy + candidate; b: greedy only
    a, b, c = rs.tree[:3]
    assert "kept as atomic" in a.detail and "kept as atomic" in b.detail  # failed, kept (on_failed: keep)
    assert "budget (3 proposer calls) is spent" in c.detail and c.status == "accepted"
    assert rs.stats["over_budget"] == 1 and rs.stats["failed_decompositions"] == 2

    unbounded, backend = await run(initial, **cfg)
    assert len(calls(backend, "decompose")) == 6 and unbounded.stats["over_budget"] == 0

    # the splitter costs no proposer call, so it still splits once the budget is spent
    compound = ["a [c=2]", "covers x [c=2] and covers y [c=0]"]
    cfg["script"] = parrot(compound)
    split, _ = await run(compound, max_decompose_calls=0, split_compound="first", **cfg)
    assert split.tree[1].status == "decomposed" and "split by its syntax" in split.tree[1].detail
    assert split.stats["decompose_calls"] == 0 and "budget (0 proposer calls)" in split.tree[0].detail


async def test_a_whole_refine_with_a_proposer_that_only_repeats_its_parent_still_yields_split_children():
    """The local profile's settings end to end against a proposer that hands every rubric back: the splitter
    alone makes the children, and they are graded and accepted like any others."""
    from rrd.config import PROFILES

    initial = ["covers alpha [c=2] and covers beta [c=0] and covers gamma [c=2]", "atomic [c=0]"]  # c: the first
    local = {k: v for k, v in PROFILES["local"].items() if k not in ("n_samples", "satisfy_threshold")}
    rs, backend = await run(initial, n_samples=2, satisfy_threshold=1, script=parrot(initial), **local)
    parent = next(r for r in rs.tree if r.text == initial[0] and r.status != "dropped")
    assert parent.status == "decomposed" and "split by its syntax" in parent.detail
    kids = [r for r in rs.tree if r.parent == parent.id]
    assert [r.origin for r in kids] == ["split"] * 3
    assert {"Covers beta [c=0]", "atomic [c=0]"} <= {r.text for r in rs.rubrics}
    # "covers gamma" is coarse and not compound: the parrot's answers repeat it, so it is kept for the filters
    gamma = next(r for r in kids if "gamma" in r.text)
    assert gamma.status == "accepted" and "kept as atomic" in gamma.detail


async def test_overlaps_among_per_sample_initial_lists_do_not_spend_the_rejection_budget():
    # every per-sample list restates the joint rubric in other words: the overlap check names it each time
    script = per_sample_script(lambda i: [f"restated{i} [c=0] [overlap=joint]"])
    cfg = dict(n_samples=3, misalignment=False, script=script, max_rejections=2)
    rs, _ = await run(["joint [c=0]"], initial_mode="union", **cfg)
    restated = [r for r in rs.tree if r.text.startswith("restated")]
    assert [r.reason for r in restated] == ["overlap"] * 3 and rs.stopped == "queue_empty"
    assert rs.stats["rejections"] == 0 and rs.stats["initial_overlaps"] == 3
    # with one joint list (the paper), an overlap is an ordinary rejection and spends T
    joint, _ = await run(["joint [c=0]", "again [c=0] [overlap=joint]", "more [c=0] [overlap=joint]",
                          "last [c=0]"], max_rejections=2, n_samples=3, misalignment=False)
    assert joint.stats["rejections"] == 2 and joint.stopped == "rejection_budget"


def test_the_refine_summary_reports_the_budget_and_the_initial_overlaps():
    from types import SimpleNamespace

    from rrd.summaries import refine_summary

    sets = [{"accepted": ["x"], "tree": [], "stats": {"decompose_calls": 4, "over_budget": 3, "initial_overlaps": 2}},
            {"accepted": ["y", "z"], "tree": [], "stats": {"decompose_calls": 1, "initial_overlaps": 5}}]
    text = refine_summary(sets, SimpleNamespace(summary=lambda: "0 calls"))
    assert ("proposer calls on decompositions: 5   coarse rubrics left undecomposed once the budget was spent: 3"
            "   overlaps across initial lists (not counted in T): 7") in text



def named_at(initial, position):
    """A checker with a position preference: whenever several accepted rubrics are listed, an overlap check names
    the one at `position` (0: first listed, -1: last listed), except for candidates marked [overlap=NAME], a
    genuine overlap named wherever NAME is listed."""
    base = make_script(initial)

    def script(req):
        text = last_user(req)
        if kind(req) == "overlap" and marker(re.search(r"Candidate rubric: (.*)", text).group(1), "overlap") is None:
            listed = len(re.findall(r"^\d+\. ", text, re.M))
            return json.dumps({"overlaps": (position % listed) + 1 if listed > 1 else None})
        return base(req)

    return script


def first_named(initial):
    return named_at(initial, 0)


async def test_an_overlap_claim_must_survive_the_accepted_list_reversed():
    initial = ["alpha [c=0]", "beta [c=0]", "gamma [c=0]", "again [c=0] [overlap=alpha]"]
    cfg = dict(n_samples=2, misalignment=False, conflict=False, script=first_named(initial))
    one, _ = await run(initial, check_orders="one", **cfg)
    assert [r.text.split()[0] for r in one.rubrics] == ["alpha", "beta"]  # gamma lost to the position preference
    both, backend = await run(initial, check_orders="both", **cfg)
    names = {r.text.split()[0]: r for r in both.tree}
    assert [r.text.split()[0] for r in both.rubrics] == ["alpha", "beta", "gamma"]
    assert f"overlap with {names['alpha'].id} not confirmed with the accepted list reversed (named " \
           f"{names['beta'].id})" in names["gamma"].detail
    # the genuine overlap is named in both orders (first, then last of three) and rejected
    assert names["again"].reason == "overlap" and f"overlaps {names['alpha'].id}" in names["again"].detail
    assert both.stats["unconfirmed_checks"] == 1
    shown = [re.findall(r"^\d+\. (\w+)", last_user(r), re.M) for r in calls(backend, "overlap")]
    assert ["gamma", "beta", "alpha"] in shown and ["alpha", "beta", "gamma"] in shown
    assert len(shown) == 2 + 2 + 1  # again, gamma: both orders; beta: one (nothing named)


@pytest.mark.parametrize("position", [0, -1])
async def test_moved_confirms_a_claim_only_if_it_survives_the_named_rubric_moving_to_the_other_end(position):
    """--check-orders moved: a checker that prefers either end of the list is caught (the named rubric moves from
    the first half to the end, from the second half to the front), a genuine overlap still is rejected, and the
    re-asked list keeps the others in their order, so it shares its prefix with the re-asks before it."""
    initial = ["alpha [c=0]", "beta [c=0]", "gamma [c=0]", "delta [c=0]", "again [c=0] [overlap=alpha]"]
    cfg = dict(n_samples=2, misalignment=False, conflict=False, script=named_at(initial, position))
    moved, backend = await run(initial, check_orders="moved", **cfg)
    names = {r.text.split()[0]: r for r in moved.tree}
    assert [r.text.split()[0] for r in moved.rubrics] == ["alpha", "beta", "gamma", "delta"]
    assert names["again"].reason == "overlap" and f"overlaps {names['alpha'].id}" in names["again"].detail
    where = "last" if position == 0 else "first"
    assert f"not confirmed with it listed {where}" in names["delta"].detail
    shown = [re.findall(r"^\d+\. (\w+)", last_user(r), re.M) for r in calls(backend, "overlap")]
    if position == 0:  # alpha named, asked again last: the others keep their order
        assert ["beta", "gamma", "alpha"] in shown and ["beta", "gamma", "delta", "alpha"] in shown
    else:  # the last named, asked again first
        assert ["gamma", "alpha", "beta"] in shown
    assert moved.stats["unconfirmed_checks"] == 2  # gamma's and delta's claims


def test_moved_to_other_end():
    from rrd.refine import moved_to_other_end

    items = list("abcde")
    assert moved_to_other_end(items, 0) == (list("bcdea"), "it listed last")
    assert moved_to_other_end(items, 1) == (list("acdeb"), "it listed last")
    assert moved_to_other_end(items, 2) == (list("abdec"), "it listed last")  # the middle of five: the end
    assert moved_to_other_end(items, 3) == (list("dabce"), "it listed first")
    assert moved_to_other_end(items, 4) == (list("eabcd"), "it listed first")
    assert moved_to_other_end(list("ab"), 1) == (list("ba"), "it listed first")
