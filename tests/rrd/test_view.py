"""The HTML view's data: tree statuses, matrices, and embedding that no string can break out of.

What the page does with it (rendering, filters, item detail, injected scripts) is checked in a real browser in
tests/eval/test_view_browser.py.
"""

from __future__ import annotations

import json
import re

import pytest

from rrd.records import Rubric, RubricSet, Sample, rubric_id
from rrd.view import correlation, node_status, render, rubrics_page, set_payload

EVIL = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def tree_set() -> RubricSet:
    """A set whose tree has every status: 2 rejected duplicates, 1 misaligned, a dropped repeat, a kept rubric."""
    def r(text, status, parent=None, reason=None, detail=None, verdicts=(), strong=None, weak=None):
        return Rubric(id=rubric_id(text, parent), text=text, parent=parent, depth=int(parent is not None),
                      status=status, reason=reason, detail=detail, verdicts=list(verdicts), strong=strong, weak=weak)
    # c (satisfied) is read off each rubric's own verdicts on the 4 samples
    root = r("Covers the topic", "decomposed", verdicts=[True, True, True, False])
    a = r("Names the law", "accepted", root.id, verdicts=[True, False, True, None], strong=True, weak=False)
    dup1 = r("Covers the topic well", "rejected", root.id, "duplicate", "same as parent")
    dup2 = r("Is polite", "rejected", None, "duplicate", "same as an accepted rubric")
    mis = r("Uses bullet points", "rejected", None, "misaligned", "weak reference satisfies it")
    drop = r("Names the law again", "dropped", root.id, "duplicate")
    kept = r("Cites a source" + EVIL, "accepted", None, detail="c=3 > n=2 but decomposition failed; kept as atomic",
             verdicts=[True, True, False, False], strong=True, weak=False)
    root.children = [a.id, dup1.id, drop.id]
    samples = [Sample(f"sample {i}", "m") for i in range(4)]
    rs = RubricSet("What is the law? " + EVIL, "p1", [a, kept], [0.6, 0.4], "whitened_uniform",
                   tree=[root, a, dup1, drop, dup2, mis, kept], samples=samples,
                   references={"strong": Sample("strong ref", "m"), "weak": Sample("weak ref", "m")})
    return rs.seal()


def test_payload_has_every_node_with_its_status_reason_and_counts():
    p = set_payload(tree_set(), method="rrd-wu")
    statuses = [n["status"] for n in p["nodes"]]
    assert statuses.count("rejected") == 3 and statuses.count("kept") == 1 and statuses.count("dropped") == 1
    assert [n["reason"] for n in p["nodes"] if n["status"] == "rejected"] == ["duplicate", "duplicate", "misaligned"]
    named = {n["text"]: n for n in p["nodes"]}
    assert named["Names the law"]["weight"] == 0.6 and named["Names the law"]["n"] == 4
    assert named["Covers the topic"]["weight"] is None  # only accepted rubrics carry weights
    # the verdict matrix is samples then the strong and weak references; None where unscored
    assert p["matrix"] == [[1.0, 0.0, 1.0, None, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]]
    assert p["key"] == tree_set().content_hash and p["method"] == "rrd-wu"


def test_status_kept_only_for_accepted_rubrics_kept_after_failed_decomposition():
    assert node_status("accepted", "c=3 > n=2 but decomposition failed after 1 repair(s): x; kept as atomic") == "kept"
    assert node_status("accepted", None) == "accepted"
    assert node_status("rejected", "kept as atomic") == "rejected"


def test_correlation_over_common_responses_and_undefined_with_too_few():
    c = correlation([[1, 0, 1, 0, None], [1, 0, 1, 0, 1], [0, 1, 0, 1, 1]])
    assert c[0][1] == pytest.approx(1.0) and c[0][2] == pytest.approx(-1.0)  # the unscored column is left out
    assert correlation([[1, 0], [0, 1]]) == [[None, None], [None, None]]
    assert correlation([[1, 1, 1, 0], [0, 1, 0, 1]])[0][0] == pytest.approx(1.0)


def test_embedded_data_cannot_close_its_script_or_open_a_tag():
    html = rubrics_page([tree_set()], "t")
    data = html.split('<script type="application/json" id="data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data
    # the data still round-trips: the browser's JSON.parse sees the original strings
    assert EVIL in json.loads(data)["sets"][0]["prompt"]
    assert len(re.findall(r"<script", html)) == 2  # the data element and the page's own script, nothing more


def test_title_is_escaped_and_nan_is_null():
    html = render("<b>x</b>", {"title": "t", "v": float("nan")})
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in html and '"v":null' in html
