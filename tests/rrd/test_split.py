"""The deterministic splitter of compound rubrics (rrd.split) on hand-built rubrics."""

from __future__ import annotations

import pytest

from rrd.split import split_compound


@pytest.mark.parametrize("rubric,children", [
    ("The response explains the cause and gives an example.",
     ["The response explains the cause.", "The response gives an example."]),
    ("The response mentions the boiling point at sea level and the effect of altitude.",
     ["The response mentions the boiling point at sea level.", "The response mentions the effect of altitude."]),
    ("The response states that water boils at 100 degrees Celsius and 212 degrees Fahrenheit.",
     ["The response states that water boils at 100 degrees Celsius.",
      "The response states that water boils at 212 degrees Fahrenheit."]),
    ("The response lists safety precautions, including wearing gloves, ventilating the room, and storing "
     "chemicals safely.",
     ["The response lists safety precautions, including wearing gloves.",
      "The response lists safety precautions, including ventilating the room.",
      "The response lists safety precautions, including storing chemicals safely."]),
    ("Mentions the cost, the time, and the risk.", ["Mentions the cost.", "Mentions the time.", "Mentions the risk."]),
    ("The response does not mention A and B.",
     ["The response does not mention A.", "The response does not mention B."]),
    ("The response is concise as well as polite", ["The response is concise", "The response is polite"]),
    ("The response is clear and concise.", ["The response is clear.", "The response is concise."]),
    ("The response is clear and provides a detailed explanation.",
     ["The response is clear.", "The response provides a detailed explanation."]),
    ("The response acknowledges the question; it then answers it directly.",
     ["The response acknowledges the question.", "The response then answers it directly."]),
    ("The response identifies both the Supreme Court and the Court of Appeals.",
     ["The response identifies the Supreme Court.", "The response identifies the Court of Appeals."]),
])
def test_compound_rubrics_split_into_whole_rubrics(rubric, children):
    assert split_compound(rubric) == children


@pytest.mark.parametrize("rubric", [
    "The response gives a temperature between 95 and 100 degrees.",  # a range
    "If the user asks for code, the response provides code and explains it.",  # a condition
    "The response mentions either X or Y.",  # a disjunction is one check
    'The response uses "salt and pepper" in the recipe.',  # quoted
    "The response explains Rayleigh scattering (short and long wavelengths).",  # parenthesised
    "The response provides a clear and concise answer.",  # adjectives sharing one noun
    "The response uses clear and concise language to explain the process.",  # the same with no determiner
    "The response explains Rayleigh scattering.",  # atomic
    # a noun phrase whose attachment is a guess: "its role" could be used or illustrated
    "The response uses the examples to illustrate the concept of erosion and its role in shaping valleys.",
    # the "and" is inside the relative clause: "lower the temperature" is not a check of its own
    "The response says the valve opens, which lets more steam escape and lower the pressure.",
    # a participle phrase with two possible objects ("the old design" or "the cost of the new one")
    "The response explains why the bridge failed, mentioning the old design and the cost of repairs.",
    "",
])
def test_rubrics_that_are_not_clearly_compound_are_left_alone(rubric):
    assert split_compound(rubric) is None


def test_max_parts_caps_a_long_list_and_repeats_are_not_returned():
    many = "The response mentions a, b, c, d, e, f, g and h."
    assert len(split_compound(many, max_parts=3)) == 3
    assert split_compound("The response is short and short.") is None  # both parts are the same rubric
