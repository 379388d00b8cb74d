"""Prompt-set preparation: WildChat-style filters, first user turn, normalisation, dedup, seeded shuffle, cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rft.config import DataConfig
from rft.prompts import dedup_key, extract, normalise_text, prepare_prompts, select_prompts
from rrd.records import prompt_key

WILDBENCH = Path("/work/shared/data/wildchat/wildbench_v2_subset_392.jsonl")


def _turn(content, role="user", language="English", toxic=False, redacted=False):
    return {"content": content, "role": role, "language": language, "toxic": toxic, "redacted": redacted}


ROWS = [
    {"conversation": [_turn("How do I boil an egg?"), _turn("Boil it.", role="assistant"), _turn("And then?")],
     "language": "English", "toxic": False},
    {"conversation": [_turn("Wie koche ich ein Ei?", language="German")], "language": "German"},
    {"conversation": [_turn("say something nasty", toxic=True)], "toxic": True},
    {"conversation": [_turn("flagged by moderation")], "openai_moderation": [{"flagged": True}]},
    {"conversation": [_turn("  how do I   boil an EGG?  ")]},  # duplicate of row 0 up to case/space
    {"conversation_input": [_turn("My name is [NAME], write a bio", redacted=True)]},
    {"prompt": "Plain prompt\r\n\r\n\r\n\r\nwith blank lines   "},
    {"instruction": "An instruction record"},
    {"prompt": ""},
    {"other": "no prompt field"},
    {"conversation": [_turn("Only an assistant turn", role="assistant")]},
]


def _cfg(**kw) -> DataConfig:
    return DataConfig(source="x.jsonl", **kw)


def test_filters_and_reasons():
    ps = select_prompts(ROWS, _cfg())
    assert ps.read == len(ROWS)
    assert sorted(ps.texts) == sorted([
        "How do I boil an egg?", "My name is [NAME], write a bio", "Plain prompt\n\nwith blank lines",
        "An instruction record",
    ])
    assert ps.dropped == {"language": 1, "toxic": 2, "duplicate": 1, "no_prompt": 3}
    assert ps.ids == [prompt_key(t) for t in ps.texts]


def test_optional_filters():
    ps = select_prompts(ROWS, _cfg(drop_redacted=True, single_turn_only=True, language=None, drop_toxic=False))
    assert "How do I boil an egg?" not in ps.texts  # multi-turn dropped
    assert "  how do I   boil an EGG?  ".strip() in ps.texts  # so its duplicate is now the first one kept
    assert "Wie koche ich ein Ei?" in ps.texts and "say something nasty" in ps.texts
    assert ps.dropped["redacted"] == 1 and ps.dropped["multi_turn"] == 1
    assert select_prompts(ROWS, _cfg(dedup=False)).dropped["duplicate"] == 0
    assert select_prompts(ROWS, _cfg(max_chars=25)).dropped["length"] == 2


def test_shuffle_is_seeded_and_capped():
    rows = [{"prompt": f"question number {i}"} for i in range(50)]
    a = select_prompts(rows, _cfg(seed=1, max_prompts=10))
    b = select_prompts(rows, _cfg(seed=1, max_prompts=10))
    c = select_prompts(rows, _cfg(seed=2, max_prompts=10))
    assert a.texts == b.texts and a.texts != c.texts and len(a.texts) == 10
    assert a.dropped["over_max_prompts"] == 40


def test_helpers():
    assert normalise_text("a  b \r\nc\u00a0\n\n\n\nd ") == "a  b\nc\n\nd"
    assert dedup_key(" A\tb\n c ") == dedup_key("a b c")
    ex = extract({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]})
    assert ex.text == "hi" and ex.user_turns == 1
    assert extract({"q": "text", "prompt": "other"}, prompt_field="q").text == "text"


def test_dataset_from_a_file(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    ps = prepare_prompts(DataConfig(source=str(p)))
    ds = ps.to_dataset()
    assert ds.column_names == ["prompt", "prompt_id"]
    assert len(ds) == 4
    row = ds[0]
    assert row["prompt"] == [{"role": "user", "content": ps.texts[0]}] and row["prompt_id"] == prompt_key(ps.texts[0])
    kept = ps.to_dataset(keep={prompt_key(ps.texts[2])})
    assert kept["prompt_id"] == [prompt_key(ps.texts[2])]


@pytest.mark.skipif(not WILDBENCH.exists(), reason="WildBench subset not available")
def test_wildbench_subset():
    ps = prepare_prompts(DataConfig(source=str(WILDBENCH), max_prompts=100, seed=0))
    assert ps.read == 392 and len(ps.texts) == 100
    assert ps.dropped.get("language", 0) == 0 and ps.dropped.get("toxic", 0) == 0
    assert len({dedup_key(t) for t in ps.texts}) == 100
    full = prepare_prompts(DataConfig(source=str(WILDBENCH)))
    assert len(full.texts) + full.dropped.get("duplicate", 0) + full.dropped.get("no_prompt", 0) == 392
    ds = ps.to_dataset()
    assert len(set(ds["prompt_id"])) == 100
