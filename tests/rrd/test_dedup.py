"""Near-duplicate detection: what counts as a repeat of a rubric, and what does not."""

from __future__ import annotations

import pytest

from rrd.dedup import DuplicateIndex, canonical, degenerate, similarity


def test_canonical_drops_markup_punctuation_case_and_spacing():
    assert canonical("The set \\( A \\) is **closed** under `+`.") == canonical("the set A is closed under +")
    assert canonical("States $x^2$  =  4!") == "states x 2 4"
    assert canonical("Uses \\text{mod} \\, arithmetic") == "uses mod arithmetic"
    assert canonical("The response doesn't cite it") == "the response doesnt cite it"


@pytest.mark.parametrize(
    "existing, candidate, kind",
    [
        # markup only: the case seen with the 1.5B proposer on maths prompts
        ("The response proves that the set \\( A \\) is closed.", "The response proves that the set A is closed",
         "duplicate"),
        ("The response names Marbury v. Madison.", "the response names marbury v madison", "duplicate"),
        # the same words in another order
        ("The response explains circuit splits and en banc review.",
         "The response explains en banc review and circuit splits.", "near_duplicate"),
        # a one-word slip in a long rubric
        ("The response states that decisions of a federal court of appeals bind all district courts in its circuit.",
         "The response states that decisions of a federal court of appeals bind the district courts in its circuit.",
         "near_duplicate"),
    ],
)
def test_repeats_are_caught(existing, candidate, kind):
    index = DuplicateIndex(threshold=90)
    index.add(existing, "r1")
    m = index.match(candidate)
    assert m is not None and m.kind == kind and m.ref.owner == "r1"
    assert m.score >= 90


@pytest.mark.parametrize(
    "existing, candidate",
    [
        # many shared words, another check
        ("The response states that state supreme courts bind lower state courts on state law.",
         "The response states that the U.S. Supreme Court binds state courts on federal law."),
        # a refinement adds a condition: the decomposition we want, not a repeat
        ("The response explains stare decisis.",
         "The response explains stare decisis and distinguishes binding from persuasive precedent."),
        # a negation flips the meaning whatever the overlap
        ("The response cites a specific Supreme Court ruling.",
         "The response does not cite a specific Supreme Court ruling."),
        # short rubrics differ only after the shared stem
        ("The response is concise.", "The response is correct."),
        # one number apart: another fact
        ("The response states that the answer is 12 meters.", "The response states that the answer is 13 meters."),
    ],
)
def test_different_rubrics_are_not_repeats(existing, candidate):
    index = DuplicateIndex(threshold=90)
    index.add(existing, "r1")
    assert index.match(candidate) is None


def test_extra_references_are_checked_and_exact_beats_near():
    index = DuplicateIndex(threshold=80)
    index.add("The response lists three causes of the war", "r1")
    m = index.match("The response lists three causes of the war.", [])
    assert m.kind == "duplicate" and m.ref.owner == "r1"
    from rrd.dedup import Reference

    m = index.match("The response lists 3 causes", [Reference("The response lists 3 causes!", "sib")])
    assert m.kind == "duplicate" and m.ref.owner == "sib"


def test_threshold_none_catches_exact_repeats_only():
    index = DuplicateIndex(threshold=None)
    index.add("The response explains circuit splits and en banc review.", "r1")
    assert index.match("The response explains en banc review and circuit splits.") is None
    assert index.match("the response explains circuit splits, and en banc review").kind == "duplicate"


def test_an_empty_rubric_is_a_repeat_of_nothing():
    m = DuplicateIndex().match("**The response**")
    assert m is not None and m.kind == "duplicate" and m.ref.text == ""


def test_similarity_ignores_the_stem():
    assert similarity("The response is concise.", "The response is correct.") < 80
    assert similarity("The response is concise.", "Response is concise") == 100


def test_degenerate_lists():
    loop = ["The response is well-organized."] * 4 + ["The response cites a case."]
    assert degenerate(loop, repeats=3) == ("The response is well-organized.", 4)
    assert degenerate(["a b", "A b!", "c d"], repeats=3) is None
    assert degenerate([], repeats=3) is None
