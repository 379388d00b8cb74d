"""rewards.verl against verl's own calling conventions (verl itself pins transformers < 5.11, outside our tested
range, so it is not installed): its loader imports `pkg://rewards.verl`, wraps the function with reward_kwargs
taking precedence (verl.trainer.ppo.reward._call_with_kwargs), and its NaiveRewardManager and BatchRewardManager
call it with these keyword arguments. The judge is a real HTTP server on loopback."""

from __future__ import annotations

import importlib
import json
from functools import partial

import pytest

from judges import BudgetExceeded
from tests.loopback_server import LoopbackServer, Reply

PROMPTS = ["Name a colour.", "Name a fruit."]
RUBRICS = [{"prompt": PROMPTS[0], "rubrics": ["Names a colour.", "Is one word."]},
           {"prompt": PROMPTS[1], "rubrics": ["Names a fruit."]}]


def _grader(n: int, req: dict) -> Reply:
    """YES when the response names red or apple, whatever the criterion."""
    text = req["messages"][-1]["content"]
    response = text.split("<response>")[1].split("</response>")[0]
    return Reply(text="YES" if ("red" in response or "apple" in response) else "NO")


def _call_with_kwargs(raw_fn, extra_kwargs, *args, **kwargs):  # verl.trainer.ppo.reward, verbatim in effect
    return raw_fn(*args, **{**kwargs, **extra_kwargs})


def _verl_function(name: str, settings) -> object:
    """What verl's get_custom_reward_fn returns for path pkg://rewards.verl, name NAME, reward_kwargs {config}."""
    module = importlib.import_module("rewards.verl")  # load_module("pkg://rewards.verl")
    return partial(_call_with_kwargs, getattr(module, name), {"config": str(settings)})


def _settings(tmp_path, server, **extra) -> object:
    (tmp_path / "rubrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUBRICS))
    judge = {"model": extra.pop("model", "grader"), "api_base": server.api_base, "max_retries": 0,
             "logprobs": False, "cache_path": str(tmp_path / "cache.sqlite"), **extra.pop("judge", {})}
    path = tmp_path / "rrd_reward.yaml"
    path.write_text(json.dumps({"judge": judge, "rubrics": "rubrics.jsonl", "reward": {"score": "hard"},
                                **extra}))
    return path


def test_naive_and_batch_reward_managers_get_the_rubric_score(tmp_path):
    with LoopbackServer(_grader) as server:
        settings = _settings(tmp_path, server)
        compute_score = _verl_function("compute_score", settings)
        # NaiveRewardManager.__call__: one sample a call, extra_info with verl's own additions
        info = {"prompt": PROMPTS[0], "num_turns": None, "rollout_reward_scores": {}}
        good = compute_score(data_source="colours", solution_str="red", ground_truth=None, extra_info=info)
        bad = compute_score(data_source="colours", solution_str="I cannot say.", ground_truth=None, extra_info=info)
        assert (good, bad) == (1.0, 0.0) and all(type(x) is float for x in (good, bad))
        # BatchRewardManager.verify: the whole batch in one call
        batch = _verl_function("compute_score_batch", settings)
        scores = batch(data_sources=["colours", "fruit", "fruit"], solution_strs=["red", "an apple", "a chair"],
                       ground_truths=[None, None, None],
                       extra_infos=[{"question": PROMPTS[0]}, {"prompt": PROMPTS[1]}, {"prompt": PROMPTS[1]}])
    assert scores == [1.0, 1.0, 0.0]
    assert len(server.requests) == 2 + 2 + 1 + 1  # the batch's "red" for prompt 0 came from the judge's cache


def test_a_judge_failure_gives_the_unscored_score_and_never_raises(tmp_path, caplog):
    with LoopbackServer(lambda n, req: Reply(status=500)) as server:
        compute_score = _verl_function("compute_score", _settings(tmp_path, server, unscored_score=-1.0))
        score = compute_score(data_source="x", solution_str="red", ground_truth=None,
                              extra_info={"prompt": PROMPTS[0]})
    assert score == -1.0 and type(score) is float


def test_data_errors_raise_with_the_reason(tmp_path):
    with LoopbackServer(_grader) as server:
        compute_score = _verl_function("compute_score", _settings(tmp_path, server))
        with pytest.raises(ValueError, match="no prompt in extra_info"):
            compute_score(data_source="x", solution_str="red", ground_truth=None, extra_info={})
        with pytest.raises(ValueError, match="no rubric set for the prompt of sample 0"):
            compute_score(data_source="x", solution_str="red", ground_truth=None,
                          extra_info={"prompt": "Name a tree."})
        assert not server.requests  # both before any call


def test_a_spent_budget_stops_training(tmp_path):
    with LoopbackServer(_grader) as server:  # gpt-4o is priced: every call has a dollar estimate
        compute_score = _verl_function("compute_score", _settings(tmp_path, server, model="gpt-4o",
                                                                  judge={"budget_usd": 1e-7}))
        with pytest.raises(BudgetExceeded):
            compute_score(data_source="x", solution_str="red", ground_truth=None, extra_info={"prompt": PROMPTS[0]})


def test_the_settings_file_is_checked(tmp_path):
    from judges.settings import ConfigError
    from rewards.verl import VerlRewardSettings

    bad = tmp_path / "bad.yaml"
    bad.write_text("rubrics: r.jsonl\njudge: {modle: x}\n")
    with pytest.raises(ConfigError, match="unknown key 'modle' in 'judge'"):
        VerlRewardSettings.load(bad)
    bad.write_text("rubric: r.jsonl\n")
    with pytest.raises(ConfigError, match="unknown key 'rubric'"):
        VerlRewardSettings.load(bad)
