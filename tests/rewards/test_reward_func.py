"""The rubric reward called exactly as TRL's GRPOTrainer calls it (trl 1.x _calculate_rewards)."""

from __future__ import annotations

import asyncio
import inspect
import json

import numpy as np
import pytest

from rewards import RubricReward, RubricRewardConfig, per_criterion_reward_funcs, rubric_reward_func
from rrd.records import RubricSet, prompt_key
from rrd.weights import whitened_uniform_weights
from tests.rewards.helpers import Recorder, make_judge, trl_kwargs

P1 = "Name some fruit."
P2 = "Name a colour."
SETS = {
    prompt_key(P1): RubricSet.provided(P1, ["mentions apple", "mentions banana"], [0.75, 0.25]),
    prompt_key(P2): RubricSet.provided(P2, ["mentions red"]),
}


def reward(config=None, sets=SETS, **judge_kw):
    """These tests check 0/1 arithmetic: hard scores unless the test asks for soft ones."""
    judge, backend = make_judge(**judge_kw)
    return RubricReward(judge, sets, config or RubricRewardConfig(score="hard")), backend


# -- what TRL checks ------------------------------------------------------------------------------------------
def test_trl_detects_async_and_name():
    from trl.trainer.utils import get_callable_name, is_async_callable

    rr, _ = reward()
    for f in [rr.reward_func, rubric_reward_func(make_judge()[0], SETS)]:
        assert inspect.iscoroutinefunction(f)
        assert is_async_callable(f)
        assert f.__name__ == "rubric_reward" and get_callable_name(f) == "rubric_reward"
    funcs = rr.per_criterion_reward_funcs(3)
    assert [get_callable_name(f) for f in funcs] == ["rubric_0", "rubric_1", "rubric_2"]
    assert all(is_async_callable(f) for f in funcs)
    named = RubricReward(make_judge()[0], SETS, RubricRewardConfig(name="helpfulness")).reward_func
    assert named.__name__ == "helpfulness"


# -- scores ----------------------------------------------------------------------------------------------------
async def test_plain_prompts_weighted_scores_and_extra_columns():
    rr, backend = reward()
    rec = Recorder()
    prompts = [P1, P1, P2, P2]
    completions = ["apple and banana", "just a banana", "red", "blue"]
    out = await rr.reward_func(**trl_kwargs(prompts, completions, rec, solution=["x"] * 4, difficulty=[1, 2, 3, 4]))
    assert out == pytest.approx([1.0, 0.25, 1.0, 0.0])
    assert len(backend.requests) == 2 + 2 + 1 + 1
    assert all("<prompt>" not in r.messages[-1]["content"] for r in backend.requests)  # judge sees no prompt


async def test_conversational_prompts_and_completions():
    rr, _ = reward()
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "earlier turn"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": P1}]] * 2
    completions = [[{"role": "assistant", "content": "an apple"}],
                   [{"role": "assistant", "content": [{"type": "text", "text": "a banana"}]}]]
    out = await rr.reward_func(**trl_kwargs(prompts, completions))
    assert out == pytest.approx([0.75, 0.25])


def test_soft_scores_are_the_default():
    assert RubricRewardConfig().score == "soft"


async def test_soft_scores_use_p_yes():
    rr, _ = reward(RubricRewardConfig(score="soft", weights="uniform"))
    out = await rr.reward_func(**trl_kwargs([P1], ["apple"]))
    assert out == pytest.approx([(0.8 + 0.3) / 2])


async def test_rubrics_from_dataset_column_and_prompt_id():
    rr, _ = reward(sets={"pid-7": RubricSet.provided("other text", ["mentions kiwi"])})
    full = RubricSet.provided("q", ["mentions apple", "mentions pear"], [0.9, 0.1]).to_dict()
    column = [["mentions apple", "mentions pear"], json.dumps({"rubrics": ["mentions pear"]}), full, None]
    out = await rr.reward_func(**trl_kwargs(["q"] * 4, ["apple", "pear", "apple", "kiwi"],
                                            rubrics=column, prompt_id=[None, None, None, "pid-7"]))
    assert out == pytest.approx([0.5, 1.0, 0.9, 1.0])


async def test_none_on_failure_never_zero():
    rr, _ = reward()
    rec = Recorder()
    prompts = [P1, P1, P1, "a prompt with no rubric set"]
    completions = ["apple ERROR", "apple UNPARSEABLE", "banana", "apple"]
    out = await rr.reward_func(**trl_kwargs(prompts, completions, rec))
    assert out[0] is None and out[1] is None and out[3] is None
    assert out[2] == pytest.approx(0.25)
    assert rec.metrics["rubric/no_reward_frac"] == [0.75]
    assert rec.metrics["rubric/judge_failures"] == [2.0]


async def test_unscored_verdict_is_dropped_and_weights_renormalised():
    sets = {prompt_key(P1): RubricSet.provided(P1, ["mentions apple", "mentions flaky"], [0.5, 0.5])}
    rr, _ = reward(sets=sets)
    assert await rr.reward_func(**trl_kwargs([P1, P1], ["apple", "pear"])) == [1.0, 0.0]


async def test_log_extra_and_log_metric():
    rr, _ = reward()
    rec = Recorder()
    await rr.reward_func(**trl_kwargs([P1, P1, P2], ["apple", "banana UNPARSEABLE", "red"], rec))
    assert rec.extra["rubric_pass_rate"] == [0.5, None, 1.0]
    assert rec.extra["rubric_verdicts"] == ["YN", "??", "Y"]
    assert all(len(v) == 3 for v in rec.extra.values())
    m = {k: v[-1] for k, v in rec.metrics.items()}
    assert m["rubric/judge_calls"] == 5 and m["rubric/judge_cache_hits"] == 0
    assert m["rubric/pass_rate"] == pytest.approx(2 / 3)
    assert m["rubric/unscored_frac"] == pytest.approx(2 / 5)
    assert m["rubric/pass_rate_c0"] == 1.0 and m["rubric/pass_rate_c1"] == 0.0
    for name in ("rubric/judge_cost_usd", "rubric/judge_latency_s", "rubric/judge_failures"):
        assert name in m
    # both log functions may be None
    assert await rr.reward_func(prompts=[P1], completions=["apple"], log_extra=None, log_metric=None) == [0.75]


async def test_repeated_completions_in_a_group_cost_nothing_extra():
    rr, backend = reward()
    rec = Recorder()
    completions = ["apple", "apple", "banana", "apple", "banana", "apple", "apple", "banana"]
    out = await rr.reward_func(**trl_kwargs([P1] * 8, completions, rec))
    assert out == pytest.approx([0.75 if c == "apple" else 0.25 for c in completions])
    assert len(backend.requests) == 2 * 2  # two distinct completions x two rubrics
    assert rec.metrics["rubric/judge_calls"] == [4] and rec.metrics["rubric/judge_cache_hits"] == [12]


async def test_judge_cache_serves_a_later_step(tmp_path):
    judge, backend = make_judge()
    judge.config.cache = True
    from judges.cache import CompletionCache

    judge.cache = CompletionCache(str(tmp_path / "cache.sqlite"))
    rr = RubricReward(judge, SETS, RubricRewardConfig(score="hard"))
    await rr.reward_func(**trl_kwargs([P1, P1], ["apple", "banana"]))
    n = len(backend.requests)
    kw = trl_kwargs([P1, P1], ["banana", "apple"])
    kw["trainer_state"].global_step = 4
    assert await rr.reward_func(**kw) == pytest.approx([0.25, 0.75])
    assert len(backend.requests) == n


# -- per-criterion functions -------------------------------------------------------------------------------------
async def test_per_criterion_funcs_share_one_grading():
    judge, backend = make_judge()
    funcs = per_criterion_reward_funcs(judge, SETS, RubricRewardConfig(score="hard"), k=3)
    rec = Recorder()
    kw = trl_kwargs([P1, P1, P2], ["apple", "banana", "blue"], rec)
    outs = await asyncio.gather(*(f(**kw) for f in funcs))  # as GRPOTrainer runs async reward funcs
    assert outs[0] == [1.0, 0.0, 0.0]
    assert outs[1] == [0.0, 1.0, None]  # P2 has one rubric
    assert outs[2] == [None, None, None]
    assert len(backend.requests) == 5  # graded once, not three times
    assert rec.extra["rubric_pass_rate"] == [0.5, 0.5, 0.0]  # logged once
    assert rec.metrics["rubric/judge_calls"] == [5]


async def test_aggregate_and_per_criterion_share_and_a_new_step_regrades():
    rr, backend = reward()
    funcs = [rr.reward_func, *rr.per_criterion_reward_funcs(2)]
    kw = trl_kwargs([P1, P1], ["apple", "banana"])
    await asyncio.gather(*(f(**kw) for f in funcs))
    assert len(backend.requests) == 4
    await asyncio.gather(*(f(**kw) for f in funcs))  # the same batch again is a new call: graded (and logged) again
    assert len(backend.requests) == 8


# -- online whitened-uniform weights ----------------------------------------------------------------------------
CLUSTER = ["mentions apple", "mentions apples", "mentions applesauce", "mentions banana"]
P3 = "Talk about fruit."
WU_SETS = {prompt_key(P3): RubricSet.provided(P3, CLUSTER)}  # stored: uniform 0.25 each
GROUP = ["applesauce", "banana", "applesauce banana", "pear", "applesauce", "banana"]


def _matrix(group):
    return np.array([[float(c.split("mentions ")[1] in g) for c in CLUSTER] for g in group])


async def test_online_wu_differs_from_stored_when_the_group_says_so():
    stored, _ = reward(sets=WU_SETS)
    online, _ = reward(RubricRewardConfig(weights="online_wu", score="hard"), sets=WU_SETS)
    rec = Recorder()
    s = await stored.reward_func(**trl_kwargs([P3] * 6, GROUP))
    o = await online.reward_func(**trl_kwargs([P3] * 6, GROUP, rec))
    assert s[1] == pytest.approx(0.25)
    w = whitened_uniform_weights(_matrix(GROUP)).weights
    assert w[3] > 0.3  # the three correlated apple rubrics no longer outvote banana
    assert o[1] == pytest.approx(w[3]) and o[0] == pytest.approx(w[:3].sum())
    assert o[1] > s[1] + 0.05
    assert rec.metrics["rubric/wu_fallback_frac"] == [0.0]


async def test_online_wu_falls_back_to_stored_weights():
    online, _ = reward(RubricRewardConfig(weights="online_wu", score="hard"), sets=WU_SETS)
    rec = Recorder()
    # two completions of the prompt (< 3 rows): stored weights
    assert await online.reward_func(**trl_kwargs([P3] * 2, GROUP[:2], rec)) == pytest.approx([0.75, 0.25])
    # every rubric constant over the group: WU degenerate -> stored weights
    assert await online.reward_func(**trl_kwargs([P3] * 4, ["banana"] * 4, rec)) == pytest.approx([0.25] * 4)
    assert rec.metrics["rubric/wu_fallback_frac"] == [1.0, 1.0]


async def test_online_wu_pools_rows_gathered_from_other_processes(monkeypatch):
    """A group straddling processes: 2 local rows + 4 rows on another rank give WU over all 6."""
    import torch.distributed as dist

    import rewards.online_wu as mod

    remote = None

    def fake_all_gather_object(out, obj, group=None):
        nonlocal remote
        (key,) = obj  # one group here
        other = [[float(c.split("mentions ")[1] in g) for c in CLUSTER] for g in GROUP[2:]]
        remote = {key: other}
        out[0], out[1] = obj, remote

    monkeypatch.setattr(mod, "distributed_world", lambda: 2)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "all_gather_object", fake_all_gather_object)
    online, _ = reward(RubricRewardConfig(weights="online_wu", score="hard"), sets=WU_SETS)
    online.gather.group = object()  # as if the gloo group had been created on a previous step
    out = await online.reward_func(**trl_kwargs([P3] * 2, GROUP[:2]))
    w = whitened_uniform_weights(_matrix(GROUP)).weights
    assert out == pytest.approx([w[:3].sum(), w[3]])


async def test_online_wu_under_a_real_single_process_group(tmp_path):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        online, _ = reward(RubricRewardConfig(weights="online_wu", score="hard"), sets=WU_SETS)
        out = await online.reward_func(**trl_kwargs([P3] * 6, GROUP))
    finally:
        dist.destroy_process_group()
    w = whitened_uniform_weights(_matrix(GROUP)).weights
    assert out[1] == pytest.approx(w[3])


# -- sync callable ------------------------------------------------------------------------------------------------
def test_sync_reward_plain():
    rr, _ = reward()
    try:
        assert rr.sync_reward([P1, P2], ["apple", "red"]) == pytest.approx([0.75, 1.0])
        assert rr.sync_reward(prompts=[P1], completions=["banana"]) == pytest.approx([0.25])
    finally:
        rr.close()


async def test_sync_reward_inside_a_running_loop():
    rr, _ = reward()
    try:
        assert rr.sync_reward([P1], ["apple banana"]) == pytest.approx([1.0])
    finally:
        rr.close()


# -- refinement on the fly --------------------------------------------------------------------------------------------
async def test_refine_missing_once_per_prompt(monkeypatch):
    import rrd.refine

    calls = []

    async def fake_refine(prompt, judge, proposer, config=None, *, prompt_id=None, **kw):
        calls.append(prompt)
        await asyncio.sleep(0)
        if "impossible" in prompt:
            return RubricSet(prompt=prompt, prompt_id=prompt_id, stopped="failed", failure="no samples")
        return RubricSet.provided(prompt, ["mentions apple"], prompt_id=prompt_id)

    monkeypatch.setattr(rrd.refine, "refine_prompt", fake_refine)
    judge, _ = make_judge()
    proposer, _ = make_judge()
    rr = RubricReward(judge, {}, RubricRewardConfig(refine_missing=True, score="hard"), proposer=proposer)
    kw = trl_kwargs(["new prompt"] * 3 + ["impossible prompt"], ["apple", "pear", "apple", "apple"])
    outs = await asyncio.gather(rr.reward_func(**kw), *(f(**kw) for f in rr.per_criterion_reward_funcs(1)))
    assert outs[0] == [1.0, 0.0, 1.0, None]
    assert sorted(calls) == ["impossible prompt", "new prompt"]
    assert prompt_key("new prompt") in rr.sets
    # disabled: no rubric set -> None
    rr2 = RubricReward(judge, {}, RubricRewardConfig(refine_missing=False, score="hard"), proposer=proposer)
    assert await rr2.reward_func(**trl_kwargs(["other"], ["apple"])) == [None]


async def test_rubrics_jsonl_path(tmp_path):
    path = tmp_path / "rubrics.jsonl"
    path.write_text(json.dumps({"prompt": P1, "rubrics": ["mentions apple"]}) + "\n")
    judge, _ = make_judge()
    rr = RubricReward(judge, str(path), RubricRewardConfig(score="hard"))
    assert await rr.reward_func(**trl_kwargs([P1], ["apple"])) == [1.0]
