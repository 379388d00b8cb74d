"""Policy evaluation (HealthBench, BiGGen): a policy model writes the responses, a fixed grader grades them.

Both models are recorded with every result: scores move with the grader. Responses are appended to
`responses.jsonl` as they arrive and re-used on resume, so a crash during grading never re-generates them. A
grader answer that cannot be read is asked again (simple-evals re-asks until it parses; we re-ask
`grader_retries` times at temperature 0.5 with a fresh sample index, then record the item as unscored).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence, TypeVar

from judges.judge import Judge
from judges.settings import COUNT, POSITIVE, number, setting, validate
from judges.types import Completion, Message, Request, SamplingParams
from rrd.io import JsonlAppender

from . import templates
from rrd.grading import usage
from .policy_metrics import healthbench_example_score, parse_prometheus

T = TypeVar("T")


@dataclass
class PolicyConfig:
    """How the policy writes and the grader grades (`rrd eval healthbench|biggen`)."""

    temperature: float = setting(0.0, flag="--policy-temperature", type=number(float),
                                 help="sampling temperature of the policy")
    max_tokens: int = setting(2048, flag="--policy-max-tokens", type=POSITIVE, help="length cap of policy answers")
    grader_max_tokens: int = setting(1024, type=POSITIVE, help="length cap of grader answers")
    grader_retries: int = setting(2, type=COUNT, help="re-asks of an unreadable grader answer")

    def __post_init__(self) -> None:
        validate(self)


def _usage(completions: Sequence[Completion]) -> dict[str, float]:
    return usage(completions, sum(not c.cached for c in completions))


async def ask_until_parsed(judge: Judge, requests: Sequence[Request], parse: Callable[[str], T | None],
                           retries: int) -> tuple[list[T | None], list[str], list[Completion]]:
    """Send every request; re-ask the unparsed ones up to `retries` times. Returns parsed values (None where
    it never parsed), the last raw text of each, and every completion (for usage)."""
    values: list[T | None] = [None] * len(requests)
    raws = [""] * len(requests)
    spent: list[Completion] = []
    todo = list(range(len(requests)))
    for attempt in range(retries + 1):
        if not todo:
            break
        batch = [requests[i] if attempt == 0 else
                 replace(requests[i], params=replace(requests[i].params, temperature=0.5, sample_index=attempt))
                 for i in todo]
        completions = await judge.run(batch)
        spent += completions
        still = []
        for i, c in zip(todo, completions):
            raws[i] = c.text if c.ok else f"call failed: {c.error}"
            values[i] = parse(c.text) if c.ok else None
            if values[i] is None:
                still.append(i)
        todo = still
    return values, raws, spent


class PolicyEvaluator:
    """Generates with `policy` (any backend, including `local:/path/to/checkpoint`) and grades with `grader`."""

    def __init__(self, policy: Judge, grader: Judge, responses: JsonlAppender, config: PolicyConfig):
        self.policy = policy
        self.grader = grader
        self.config = config
        self.responses = responses
        self._done = {(r["item_id"], r["policy"]): r for r in responses.existing if r.get("response") is not None}

    async def respond(self, item_id: str, messages: list[Message]) -> tuple[str | None, dict[str, Any]]:
        """The policy's reply (re-used from responses.jsonl when there); None when generation failed."""
        key = (item_id, self.policy.model)
        if key in self._done:
            return self._done[key]["response"], {}
        params = SamplingParams(temperature=self.config.temperature, max_tokens=self.config.max_tokens)
        c = await self.policy.generate(messages, params)
        record = {"item_id": item_id, "policy": self.policy.model, "response": c.text if c.ok else None,
                  "error": c.error, "usage": _usage([c])}
        self.responses.append(record)
        if c.ok:
            self._done[key] = record
        return record["response"], record["usage"]

    async def healthbench(self, conversation: list[Message], reply: str, rubrics: Sequence[Any]) -> dict[str, Any]:
        """One grader call per rubric item (the official grader's behaviour), then the example score."""
        params = SamplingParams(temperature=0.0, max_tokens=self.config.grader_max_tokens)
        requests = [Request(templates.healthbench_grader(conversation, reply, r.criterion, r.points), params,
                            templates.HEALTHBENCH_GRADER_VERSION) for r in rubrics]
        met, raws, spent = await ask_until_parsed(self.grader, requests, templates.parse_criteria_met,
                                                  self.config.grader_retries)
        return {
            "met": met,
            "score": healthbench_example_score(rubrics, met),
            "unscored": sum(m is None for m in met),
            "explanations": [r[-300:] for r in raws],
            "usage": _usage(spent),
        }

    async def biggen(self, instruction: str, reply: str, reference: str, score_rubric: dict[str, str]
                     ) -> dict[str, Any]:
        """Prometheus absolute grading, 1-5."""
        params = SamplingParams(temperature=0.0, max_tokens=self.config.grader_max_tokens)
        request = Request(templates.prometheus_absolute(instruction, reply, reference, score_rubric), params,
                          templates.PROMETHEUS_VERSION)
        (score,), (raw,), spent = await ask_until_parsed(self.grader, [request], parse_prometheus,
                                                         self.config.grader_retries)
        return {"score": score, "feedback": raw[-600:], "usage": _usage(spent)}
