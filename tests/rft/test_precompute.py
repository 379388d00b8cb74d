"""Rubric precompute: matching sets to prompts, refining only the missing ones (appended, resumable)."""

from __future__ import annotations

import json


import rft.precompute as pre
from judges.judge import JudgeConfig
from rrd.config import RefineConfig
from rrd.records import RubricSet, load_rubric_sets, prompt_key


def _sets_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_match_by_id_and_by_normalised_text(tmp_path):
    texts = ["Say hi.", "Name a colour.", "Count to three.", "Unknown prompt."]
    ids = [prompt_key(t) for t in texts]
    f = tmp_path / "rubrics.jsonl"
    _sets_file(f, [
        {"prompt": "Say hi.", "rubrics": ["Says hi."]},
        {"prompt": "Name a colour.  \r\n", "rubrics": ["Names a colour.", "Is one word."]},  # spaced differently
        {"prompt": "Count to three.", "rubrics": []},  # a failed refinement: no accepted rubric
    ])
    idx = pre.match_sets(ids, texts, load_rubric_sets(str(f)))
    assert set(idx.sets) == {ids[0], ids[1]} and idx.max_rubrics == 2
    assert idx.empty == [ids[2]] and idx.missing == [ids[3]]


def test_refines_only_missing_prompts_and_appends(tmp_path, monkeypatch):
    texts = ["Say hi.", "Name a colour.", "Count to three."]
    ids = [prompt_key(t) for t in texts]
    f = tmp_path / "rubrics.jsonl"
    _sets_file(f, [{"prompt": "Say hi.", "rubrics": ["Says hi."], "prompt_id": ids[0]}])
    seen = []

    async def fake_refine_all(tasks, models, config, out, prompt_concurrency, bar=None, **kwargs):
        done = {r.get("prompt_id") for r in out.existing}
        result = []
        for t in tasks:
            assert t.prompt_id not in done
            seen.append(t.prompt_id)
            rs = RubricSet.provided(t.prompt, [f"rubric for {t.prompt}"], prompt_id=t.prompt_id)
            out.append(rs.to_dict())
            result.append(rs)
        assert models.proposer.model == "gpt-4o" and "gpt-4o-mini" in models.samplers
        return result

    monkeypatch.setattr(pre, "refine_all", fake_refine_all)
    kw = dict(judge=JudgeConfig(model="local:smollm2-135m", cache=False),
              proposer=JudgeConfig(model="gpt-4o", cache=False), refine=RefineConfig(samplers=["gpt-4o-mini"]))
    idx = pre.ensure_rubric_sets(ids, texts, f, refine_missing=True, **kw)
    assert seen == ids[1:] and idx.refined == 2 and not idx.missing and set(idx.sets) == set(ids)
    assert len(f.read_text().splitlines()) == 3

    seen.clear()  # a second run finds everything in the file and refines nothing
    idx = pre.ensure_rubric_sets(ids, texts, f, refine_missing=True, **kw)
    assert seen == [] and idx.refined == 0 and set(idx.sets) == set(ids)


def test_no_refine_leaves_missing_out(tmp_path):
    idx = pre.ensure_rubric_sets(["p-x"], ["x"], tmp_path / "none.jsonl", refine_missing=False,
                                 judge=JudgeConfig(cache=False), proposer=JudgeConfig(cache=False),
                                 refine=RefineConfig())
    assert idx.missing == ["p-x"] and not idx.sets
