"""One verdict rule everywhere: an answer with no readable YES/NO is unscored in training rewards, `rrd judge
--soft` and `rrd eval --soft` alike, even when the logprobs of its first token look like a confident YES.

The scripted judge answers "Yesterday ..." for the criterion "mentions weather": the text is not a verdict, but
its first token "Yes" carries P(YES) 0.95 (a BPE split of a real word), which a soft score must not use."""

from __future__ import annotations

import math

from judges import Verdict, verdict_value
from judges.types import Completion, TokenLogprobs, Usage
from rrd.config import RefineConfig
from rrd.inputs import Pair
from rrd.jobs import JudgeRunConfig, judge_pair
from rrd.records import RubricSet
from tests.rewards.helpers import honest_script, make_judge, response_of, trl_kwargs

PROMPT = "Describe your day."
RUBRICS = ["mentions sun", "mentions weather"]


def script(req):
    if "mentions weather" in req.messages[-1]["content"]:
        top = [("Yes", math.log(0.95)), ("No", math.log(0.05))]
        return Completion(text="Yesterday it rained.", logprobs=[TokenLogprobs("Yes", top[0][1], top),
                                                                 TokenLogprobs("terday", -0.1, [])],
                          usage=Usage(10, 2))
    if "FAILS" in response_of(req):
        return Completion(error="HTTP 503: overloaded", retryable=True)
    return honest_script(req)


def test_the_rule():
    unreadable = Verdict("c", None, p_yes=0.95, reason="unparseable verdict")
    assert verdict_value(unreadable, soft=True) is None and verdict_value(unreadable) is None
    assert verdict_value(Verdict("c", True, p_yes=0.8), soft=True) == 0.8
    assert verdict_value(Verdict("c", True, p_yes=0.8)) is True
    assert verdict_value(Verdict("c", False), soft=True) is False  # no P(YES): the hard verdict


async def test_the_judge_types_failures_and_unreadable_answers():
    judge, _ = make_judge(script)
    ok, unreadable = await judge.grade(RUBRICS, "The sun was out.")
    [failed] = await judge.grade(["mentions sun"], "FAILS")
    assert ok.kind is None and ok.met is True
    assert unreadable.met is None and unreadable.p_yes is not None and unreadable.unreadable
    assert unreadable.kind == "unreadable" and not unreadable.failed
    assert failed.failed and failed.error == "HTTP 503: overloaded" and failed.kind == "call failed"
    assert judge.accounting.unreadable == 1


async def test_rewards_drop_the_unreadable_verdict():
    from rewards import RubricReward, RubricRewardConfig

    judge, _ = make_judge(script)
    rs = RubricSet.provided(PROMPT, RUBRICS)
    reward = RubricReward(judge, {"p": rs}, RubricRewardConfig(score="soft", weights="uniform"))
    [score] = await reward.reward_func(**trl_kwargs([PROMPT], ["A grey day."], prompt_id=["p"]))
    # sun: NO with P(YES) 0.3; weather: unscored, so the score is the sun verdict alone, not (0.3 + 0.95) / 2
    assert math.isclose(score, 0.3, abs_tol=1e-6)


async def test_rrd_judge_soft_drops_the_unreadable_verdict():
    judge, _ = make_judge(script)
    rs = RubricSet.provided(PROMPT, RUBRICS)
    pair = Pair("x", "p", PROMPT, "A grey day.", "The sun was out.", "B")
    record = await judge_pair(pair, rs, judge, JudgeRunConfig(score="soft"))
    score_a, score_b = record["scores"]
    assert math.isclose(score_a, 0.3, abs_tol=1e-6) and math.isclose(score_b, 0.8, abs_tol=1e-6)
    assert record["unreadable"] == 2 and record["failed"] == 0 and record["unscored_kinds"] == {"unreadable": 2}
    failing = Pair("y", "p", PROMPT, "FAILS", "The sun was out.", "B")
    record = await judge_pair(failing, RubricSet.provided(PROMPT, ["mentions sun"]), judge, JudgeRunConfig())
    assert record["failed"] == 1 and record["unscored_kinds"] == {"call failed": 1}


async def test_rrd_eval_soft_drops_the_unreadable_verdict(tmp_path):
    from eval.judging import ItemResponses, MethodJudge
    from eval.methods import resolve_methods
    from rrd.io import JsonlAppender
    from rrd.pool import Models
    from rrd.records import prompt_key

    judge, _ = make_judge(script)
    [method] = resolve_methods("rrd-uniform")
    with JsonlAppender(tmp_path / "rubrics" / f"{method.name}.jsonl") as store:
        store.append(RubricSet.provided(PROMPT, RUBRICS, prompt_id=prompt_key(PROMPT)).to_dict())
    mj = MethodJudge(Models(judge, judge, {}), RefineConfig(), tmp_path, score="soft")
    record = await mj.rubric(method, ItemResponses("i", PROMPT, ["A grey day.", "The sun was out."]))
    mj.close()
    (a_sun, a_weather), (b_sun, b_weather) = record["verdicts"]
    assert math.isclose(a_sun, 0.3) and math.isclose(b_sun, 0.8) and a_weather is None and b_weather is None
    assert math.isclose(record["scores"][0], 0.3, abs_tol=1e-6) and record["games"] == ["B"]
