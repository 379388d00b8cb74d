"""Derived state is stored once: a rubric's c, a set's verdict matrix and its template version are read off the
tree and the config, and files written when they were stored beside them still load to the same set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrd.records import Rubric, RubricSet

OLD_FILES = sorted(Path("docs/results/judgebench/rubrics").glob("*.jsonl"))


@pytest.mark.parametrize("path", OLD_FILES, ids=[p.name for p in OLD_FILES])
def test_files_with_the_stored_copies_still_load_to_the_same_set(path):
    old = [json.loads(line) for line in path.read_text().splitlines()[:20]]
    assert any("satisfied" in r for d in old for r in d["tree"]) and all("verdicts" in d for d in old)
    for d in old:
        rs = RubricSet.from_dict(d)
        assert rs.content_hash == rs.compute_hash() == d["content_hash"]
        assert rs.verdicts == d["verdicts"] and rs.template_version == d["template_version"]
        assert [r.satisfied for r in rs.tree] == [r.get("satisfied") for r in d["tree"]]
        again = rs.to_dict()
        assert "verdicts" not in again and "template_version" not in again
        assert all("satisfied" not in r for r in again["tree"])
        assert RubricSet.from_dict(again).to_dict() == again


def test_c_follows_the_verdicts():
    r = Rubric.new("Names a colour.")
    assert r.satisfied is None  # not graded yet
    r.verdicts = [True, None, False, True]
    assert r.satisfied == 2  # an unscored verdict is not a YES
    assert RubricSet.provided("p", ["a", "b"]).verdicts == []  # no samples: no verdict matrix
