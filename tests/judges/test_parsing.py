"""Verdict readers: an answer we cannot read is unscored (None), never NO."""

import math

import pytest

from judges.parsing import (
    batch_p_yes,
    first_verdict_p_yes,
    p_yes_from_top,
    parse_json_verdicts,
    parse_pairwise,
    parse_yes_no,
)
from judges.types import TokenLogprobs


@pytest.mark.parametrize(
    "text,expected",
    [("YES", True), ("yes.", True), ("**NO**", False), (" No, because", False), ("True", True),
     ("", None), ("Maybe", None), ("The answer is YES", None), ("Y", True)],
)
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) is expected


def test_p_yes_renormalises_over_yes_and_no_variants():
    top = [("YES", math.log(0.5)), (" Yes", math.log(0.1)), ("NO", math.log(0.2)), ("The", math.log(0.2))]
    assert p_yes_from_top(top) == pytest.approx(0.6 / 0.8)
    assert p_yes_from_top([("The", -0.1), ("A", -2.0)]) is None


def test_first_verdict_skips_quotes_but_not_words():
    lp = [TokenLogprobs('"', -0.01), TokenLogprobs("NO", math.log(0.7), [("NO", math.log(0.7)), ("YES", math.log(0.3))])]
    assert first_verdict_p_yes(lp) == pytest.approx(0.3)
    assert first_verdict_p_yes([TokenLogprobs("Well", -0.1), TokenLogprobs("YES", -0.1)]) is None


def test_json_verdicts_strict():
    assert parse_json_verdicts('["YES", "NO", "yes"]', 3) == [True, False, True]
    assert parse_json_verdicts('```json\n["YES", false]\n```', 2) == [True, False]
    assert parse_json_verdicts('["YES", "MAYBE"]', 2) == [True, None]
    assert parse_json_verdicts('["YES"]', 2) is None  # wrong length: all unscored
    assert parse_json_verdicts('Sure! ["YES", "NO"]', 2) is None  # prose around the list
    assert parse_json_verdicts('{"a": 1}', 1) is None


def test_batch_p_yes_reads_each_verdict_token():
    lp = [TokenLogprobs('["', 0.0), TokenLogprobs("YES", -0.1, [("YES", math.log(0.9)), ("NO", math.log(0.1))]),
          TokenLogprobs('", "', 0.0), TokenLogprobs("NO", -0.1, [("NO", math.log(0.8)), ("YES", math.log(0.2))]),
          TokenLogprobs('"]', 0.0)]
    assert batch_p_yes(lp, 2) == pytest.approx([0.9, 0.2])
    assert batch_p_yes(lp, 3) == [None, None, None]


def test_parse_pairwise_takes_last_verdict():
    assert parse_pairwise("A is wrong... [[A]] no wait, final: [[B]]") == "B"
    assert parse_pairwise("[[C]]") == "tie"
    assert parse_pairwise("A is better") is None
