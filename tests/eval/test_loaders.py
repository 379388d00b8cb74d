"""Tests for eval.loaders: the offline benchmark files load with their published counts, and every malformed
record is rejected with the file, the line and the field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks import BENCHMARKS
from eval.loaders import (
    JudgeBenchPair,
    PPEBestOfK,
    PPEPair,
    judgebench_family,
    load_judgebench,
    load_ppe_best_of_k,
    load_ppe_human,
)
from eval.policy_loaders import HEALTHBENCH_FILES, BiGGenInstance, HealthExample, load_biggen, load_healthbench
from rrd.io import InputError

SHARED = Path("/work/shared/data")
HERE = Path(__file__).parent / "data"
JUDGEBENCH = SHARED / "judgebench" / "judgebench_gpt-4o-2024-05-13.jsonl"
HB_HARD = SHARED / "healthbench" / "healthbench_hard_subset_50.jsonl"
HB_EASY = SHARED / "healthbench" / "healthbench_easy_subset_245.jsonl"
BIGGEN = SHARED / "biggen_bench" / "biggen_bench_765.jsonl"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available (shared offline data)")
    return path


def _write(tmp_path: Path, name: str, records: list[Any]) -> Path:
    """One JSON line per record; a str record is written verbatim (for bad JSON)."""
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def _raises_at(path: Path, line: int, field: str | None, load: Any) -> InputError:
    with pytest.raises(InputError) as info:
        load(str(path))
    err = info.value
    msg = str(err)
    assert path.name in msg and f"line {line}" in msg, msg
    assert err.line == line
    if field is not None:
        assert err.field == field and repr(field) in msg, msg
    return err


# --- JudgeBench ------------------------------------------------------------------------------------------------------


def _jb(i: int, **over: Any) -> dict[str, Any]:
    rec = {"pair_id": f"p{i}", "original_id": f"o{i}", "source": "mmlu-pro-law", "question": "Q?",
           "response_model": "gpt-4o", "response_A": "a", "response_B": "b", "label": "A>B"}
    rec.update(over)
    return rec


def test_judgebench_offline_counts() -> None:
    pairs = load_judgebench(str(_need(JUDGEBENCH)))
    assert len(pairs) == 350 and all(isinstance(p, JudgeBenchPair) for p in pairs)
    assert Counter(p.family for p in pairs) == {"mmlu-pro": 154, "livebench-reasoning": 98, "livebench-math": 56,
                                                "livecodebench": 42}
    assert Counter(p.label for p in pairs) == {"A": 193, "B": 157}
    assert len({p.pair_id for p in pairs}) == 350
    assert load_judgebench(str(JUDGEBENCH), limit=5) == pairs[:5]


def test_judgebench_family_mapping() -> None:
    assert judgebench_family("mmlu-pro-computer science") == "mmlu-pro"
    assert judgebench_family("livebench-math") == "livebench-math"
    with pytest.raises(ValueError):
        judgebench_family("livebench-mathematics")  # a prefix, not a family


def test_judgebench_record_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "jb.jsonl", [_jb(1), _jb(2, label="B>A", source="livecodebench")])
    a, b = load_judgebench(str(path))
    assert (a.pair_id, a.original_id, a.response_a, a.response_b, a.label, a.family) == \
        ("p1", "o1", "a", "b", "A", "mmlu-pro")
    assert (b.label, b.family) == ("B", "livecodebench")


def test_judgebench_rejects_bad_records(tmp_path: Path) -> None:
    bad_json = _write(tmp_path, "badjson.jsonl", [_jb(1), _jb(2), '{"pair_id": "p3", oops}'])
    _raises_at(bad_json, 3, None, load_judgebench)
    tie_label = _write(tmp_path, "label.jsonl", [_jb(1), _jb(2, label="A=B")])
    _raises_at(tie_label, 2, "label", load_judgebench)
    source = _write(tmp_path, "source.jsonl", [_jb(1), _jb(2), _jb(3), _jb(4, source="arena-hard")])
    _raises_at(source, 4, "source", load_judgebench)
    dup = _write(tmp_path, "dup.jsonl", [_jb(1), _jb(2), _jb(1)])
    err = _raises_at(dup, 3, "pair_id", load_judgebench)
    assert "line 1" in err.problem  # points at the first occurrence too
    missing = _write(tmp_path, "missing.jsonl", [{k: v for k, v in _jb(1).items() if k != "response_B"}])
    _raises_at(missing, 1, "response_B or response_b", load_judgebench)


# --- PPE human preference -------------------------------------------------------------------------------------------


def test_ppe_human_sample() -> None:
    pairs = load_ppe_human(str(HERE / "ppe_human_sample.jsonl"))
    assert len(pairs) == 6 and all(isinstance(p, PPEPair) for p in pairs)
    assert [p.winner for p in pairs] == ["A", "B", "tie", "tie", "B", "A"]
    assert pairs[0].id == "q-001" and pairs[0].response_1.startswith("Crisp")
    assert pairs[1].categories == ("hard_prompt", "is_code")  # true flags only; conv_metadata is not a flag
    assert pairs[4].categories == ("hard_prompt", "math_prompt")
    assert pairs[0].categories == ("creative_writing_prompt",)
    assert [p.language for p in pairs] == ["English"] * 3 + ["French", "English", "German"]


def test_ppe_human_rejects_unknown_winner() -> None:
    _raises_at(HERE / "ppe_human_bad.jsonl", 3, "winner", load_ppe_human)


def test_ppe_human_ids(tmp_path: Path) -> None:
    rec = {"winner": "model_a", "prompt": "p", "response_1": "x", "response_2": "y"}
    path = _write(tmp_path, "ids.jsonl", [{**rec, "id": 7}, rec, {**rec, "id": 7, "response_2": "z"}, {**rec, "id": 7}])
    # row-number fallback; another pair under a used id made unique; an exact repeat (row 4) used once
    assert [p.id for p in load_ppe_human(str(path))] == ["7", "2", "7@3"]
    _raises_at(_write(tmp_path, "resp.jsonl", [rec, {**rec, "response_2": 5}]), 2, "response_2", load_ppe_human)


# --- PPE best-of-K ----------------------------------------------------------------------------------------------------


def test_ppe_bok_sample() -> None:
    rows = load_ppe_best_of_k(str(HERE / "ppe_bok_sample.jsonl"), benchmark="math")
    assert len(rows) == 3 and all(isinstance(r, PPEBestOfK) for r in rows)
    assert rows[0].id == "m-1:gemma-2-9b-it" and rows[1].id == "m-1:llama-3-8b-instruct"
    assert rows[0].responses == ("21", "24", "The answer is 21.", "27")
    assert rows[0].correct == (True, False, True, False)
    assert {r.benchmark for r in rows} == {"math"}
    assert load_ppe_best_of_k(str(HERE / "ppe_bok_sample.jsonl"))[0].benchmark == "ppe-bok"


def test_ppe_bok_rejects_bad_records(tmp_path: Path) -> None:
    good = {"question_id": "x", "question": "q", "response_1": "a", "response_2": "b", "scores": [True, False]}
    _raises_at(_write(tmp_path, "len.jsonl", [good, {**good, "scores": [True]}]), 2, "scores", load_ppe_best_of_k)
    gap = {"question_id": "y", "prompt": "q", "response_1": "a", "response_3": "c", "scores": [True, False, True]}
    _raises_at(_write(tmp_path, "gap.jsonl", [good, gap]), 2, "response_2", load_ppe_best_of_k)
    _raises_at(_write(tmp_path, "val.jsonl", [{**good, "scores": [True, "yes"]}]), 1, "scores[1]", load_ppe_best_of_k)
    assert load_ppe_best_of_k(str(_write(tmp_path, "ok.jsonl", [good])))[0].prompt == "q"  # "question" accepted


# --- HealthBench ------------------------------------------------------------------------------------------------------


def _hb(pid: str = "h1", **over: Any) -> dict[str, Any]:
    rec = {"prompt_id": pid, "prompt": [{"role": "user", "content": "I have a headache."}],
           "rubrics": [{"criterion": "Asks about duration.", "points": 5, "tags": ["axis:completeness"]},
                       {"criterion": "Recommends opioids.", "points": -8, "tags": ["axis:accuracy"]}],
           "example_tags": ["theme:context_seeking"], "ideal_completions_data": None}
    rec.update(over)
    return rec


def test_healthbench_offline_subsets() -> None:
    hard = load_healthbench(str(_need(HB_HARD)))
    easy = load_healthbench(str(_need(HB_EASY)))
    assert len(hard) == 50 and len(easy) == 245 and isinstance(hard[0], HealthExample)
    assert sum(len(e.rubrics) for e in hard) == 559 and sum(len(e.rubrics) for e in easy) == 1873
    assert not {e.prompt_id for e in hard} & {e.prompt_id for e in easy}
    themes = Counter(t for e in easy for t in e.example_tags if t.startswith("theme:"))
    assert themes["theme:communication"] == 75 and themes["theme:hedging"] == 70
    assert all(e.conversation[-1]["role"] == "user" for e in hard + easy)
    assert sum(e.ideal_completion is None for e in hard) == 9


def test_healthbench_record_fields(tmp_path: Path) -> None:
    ideal = {"ideal_completion": "How long has it lasted?", "ideal_completions_group": "Group 1",
             "ideal_completions_ref_completions": []}
    (ex,) = load_healthbench(str(_write(tmp_path, "hb.jsonl", [_hb(ideal_completions_data=ideal)])))
    assert ex.rubrics[1].points == -8.0 and ex.rubrics[1].tags == ("axis:accuracy",)
    assert ex.example_tags == ("theme:context_seeking",) and ex.ideal_completion == "How long has it lasted?"


def test_healthbench_rejects_bad_records(tmp_path: Path) -> None:
    ok = [_hb("h1"), _hb("h2")]
    negative_only = _hb("h3", rubrics=[{"criterion": "Is rude.", "points": -5, "tags": []}])
    _raises_at(_write(tmp_path, "neg.jsonl", ok + [negative_only]), 3, "rubrics", load_healthbench)
    rubrics = _hb()["rubrics"] * 2
    bad_points = _hb("h3", rubrics=rubrics[:3] + [{**rubrics[3], "points": "five"}])
    _raises_at(_write(tmp_path, "pts.jsonl", ok + [bad_points]), 3, "rubrics[3].points", load_healthbench)
    ends_assistant = _hb("h3", prompt=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    _raises_at(_write(tmp_path, "last.jsonl", [_hb("h1"), ends_assistant]), 2, "prompt[1].role", load_healthbench)
    bad_role = _hb("h3", prompt=[{"role": "doctor", "content": "hi"}, {"role": "user", "content": "x"}])
    _raises_at(_write(tmp_path, "role.jsonl", [bad_role]), 1, "prompt[0].role", load_healthbench)
    _raises_at(_write(tmp_path, "dup.jsonl", ok + [_hb("h1")]), 3, "prompt_id", load_healthbench)
    _raises_at(_write(tmp_path, "tags.jsonl", [_hb(example_tags="theme:x")]), 1, "example_tags", load_healthbench)


# --- BiGGen -----------------------------------------------------------------------------------------------------------


def test_biggen_offline_counts() -> None:
    rows = load_biggen(str(_need(BIGGEN)))
    assert len(rows) == 765 and isinstance(rows[0], BiGGenInstance)
    assert Counter(r.capability for r in rows) == {
        "instruction_following": 100, "grounding": 100, "reasoning": 100, "theory_of_mind": 100, "safety": 79,
        "refinement": 76, "planning": 70, "tool_usage": 70, "multilingual": 70}
    assert len({r.task for r in rows}) == 77
    assert set(rows[0].score_rubric) == {"criteria"} | {f"score{i}_description" for i in range(1, 6)}


def test_biggen_rejects_missing_description(tmp_path: Path) -> None:
    src = _need(BIGGEN).read_text(encoding="utf-8").splitlines()[:4]
    records = [json.loads(line) for line in src]
    del records[1]["score_rubric"]["score3_description"]
    _raises_at(_write(tmp_path, "biggen.jsonl", records), 2, "score_rubric.score3_description", load_biggen)
    records = [json.loads(line) for line in src]
    records[3]["score_rubric"]["criteria"] = ""
    _raises_at(_write(tmp_path, "biggen2.jsonl", records), 4, "score_rubric.criteria", load_biggen)


# --- registry ---------------------------------------------------------------------------------------------------------


def test_registry() -> None:
    assert set(BENCHMARKS) == {"judgebench", "ppe-human", "ppe-mmlu-pro", "ppe-math", "ppe-gpqa", "ppe-ifeval",
                               "ppe-mbpp-plus", "healthbench", "healthbench-hard", "healthbench-consensus", "biggen",
                               "pairs", "rm-bench", "rewardbench2"}
    assert (BENCHMARKS["judgebench"].default_source, BENCHMARKS["judgebench"].default_split) == \
        ("ScalerLab/JudgeBench", "gpt")
    assert BENCHMARKS["ppe-gpqa"].default_source == "lmarena-ai/PPE-GPQA-Best-of-K"
    assert {s.kind for s in BENCHMARKS.values()} == {"pairs", "bok", "healthbench", "biggen", "rm-bench", "rewardbench2"}
    assert BENCHMARKS["pairs"].default_source == ""  # a user's own file: there is no default to fall back on
    assert BENCHMARKS["rm-bench"].default_source == "THU-KEG/RM-Bench"
    assert BENCHMARKS["rewardbench2"].default_source == "allenai/reward-bench-2"
    assert BENCHMARKS["healthbench-hard"].default_split == "hard"
    assert HEALTHBENCH_FILES["hard"] in BENCHMARKS["healthbench-hard"].note
    rows = BENCHMARKS["ppe-math"].loader(str(HERE / "ppe_bok_sample.jsonl"), split="train", limit=2)
    assert len(rows) == 2 and rows[0].benchmark == "math"


def test_healthbench_hub_id_needs_a_known_split() -> None:
    with pytest.raises(InputError, match="unknown split"):
        load_healthbench("openai/healthbench", split="train")  # fails before any download
