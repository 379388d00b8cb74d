"""A scripted rubric judge for reward tests: criterion "mentions WORD" is met iff WORD is in the response."""

from __future__ import annotations

import math
import re

from judges.accounting import Accounting
from judges.judge import Judge, JudgeConfig
from judges.types import Completion, Request, TokenLogprobs, Usage
from tests.fakes import ScriptedBackend, last_user

_RESPONSE = re.compile(r"<response>\n(.*?)\n</response>", re.S)
_CRITERION = re.compile(r"Criterion: mentions (\w+)")


def response_of(req: Request) -> str:
    m = _RESPONSE.search(last_user(req))
    assert m, last_user(req)
    return m.group(1)


def honest_script(req: Request) -> str | Completion:
    """YES iff the criterion's word is in the response. Responses containing ERROR fail, UNPARSEABLE hedge,
    and a criterion "mentions flaky" is always hedged (one unscored verdict)."""
    resp = response_of(req)
    word = _CRITERION.search(last_user(req)).group(1)
    if "ERROR" in resp:
        return Completion(error="connection reset")
    if "UNPARSEABLE" in resp or word == "flaky":
        return "hmm, it depends"
    met = word.lower() in resp.lower()
    p = 0.8 if met else 0.3  # soft answers: the label agrees with P(yes) > 0.5
    top = [("YES", math.log(p)), ("NO", math.log(1 - p))]
    return Completion(text="YES" if met else "NO", logprobs=[TokenLogprobs(top[0 if met else 1][0], 0.0, top)],
                      usage=Usage(10, 1))


def make_judge(script=honest_script, **cfg) -> tuple[Judge, ScriptedBackend]:
    acc = Accounting()
    backend = ScriptedBackend(script, accounting=acc)
    judge = Judge(JudgeConfig(model="scripted", cache=False, **cfg), backend=backend, accounting=acc)
    return judge, backend


class Recorder:
    """Stands in for GRPOTrainer._log_completion_extra / _log_metric."""

    def __init__(self) -> None:
        self.extra: dict[str, list] = {}
        self.metrics: dict[str, list[float]] = {}

    def log_extra(self, column: str, values: list) -> None:
        self.extra.setdefault(column, []).extend(values)

    def log_metric(self, name: str, value: float) -> None:
        self.metrics.setdefault(name, []).append(value)


def trl_kwargs(prompts, completions, rec: Recorder | None = None, **columns):
    """Exactly the keyword arguments GRPOTrainer._calculate_rewards passes (trl 1.x)."""
    from transformers import TrainerState

    rec = rec or Recorder()
    kw = {key: list(v) for key, v in columns.items()}
    kw["trainer_state"] = TrainerState(global_step=3)
    kw["log_extra"] = rec.log_extra
    kw["log_metric"] = rec.log_metric
    return dict(prompts=list(prompts), completions=list(completions),
                completion_ids=[[1, 2, 3] for _ in completions], **kw)
