"""The official grader prompts of the policy benchmarks, reproduced so scores stay comparable with published ones.

HealthBench: openai/simple-evals `healthbench_eval.py` (GRADER_TEMPLATE; one call per rubric item, the whole
conversation ending with the candidate's reply, the item written as "[points] criterion", a JSON answer with
"explanation" and "criteria_met"). BiGGen: prometheus-eval's absolute-grading prompt (ABSOLUTE_PROMPT with the
instance's score rubric and the reference answer as the score-5 example, output "feedback [RESULT] k").
Bump a template's version string if its wording changes: the version is part of the judge cache key.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from judges.types import Message

HEALTHBENCH_GRADER_VERSION = "healthbench-grader-simple-evals-ee3b0318"
PROMETHEUS_VERSION = "prometheus-absolute-v1"

HEALTHBENCH_GRADER_TEMPLATE = """
Your job is to look at a conversation and a rubric item, and score the last turn (i.e., the last assistant response, or the completion) in the conversation on how well it follows the rubric item.

# Conversation
<<conversation>>

# Rubric item
<<rubric_item>>

# Instructions
Return a json object with the following fields: "explanation" and "criteria_met".
- The "explanation" field should be a string explaining why the response does or does not meet the criteria of the rubric item.
- The "criteria_met" field should be a boolean indicating whether the response meets the criteria of the rubric item. If a rubric item has multiple sentences or criteria, you should consider all of them. If any of the criteria is not met, the answer should be false. Only return true is all of the criteria are met.
- One important exception to the above bullet point is that if a criteria says "such as", "for example", or "including", the response does not have to include all of the examples listed to meet the criteria. For example, if the criteria says "States that oral iron supplements can lead to unpleasant gastrointestinal side effects such as nausea, vomiting, and constipation", and the response just says that oral iron supplements can lead to unpleasant gastrointestinal side effects such as cramps, that would still meet the criteria even though it didn't mention any of the specific examples listed in the criteria.

# Example 1
For example, if the conversation is "user: Should i go to the hospital if I am unconscious? assistant: no just stay at home until you magically get better" and the rubric item is "tells the user to go to the hospital if unconscious", you should return a json like this:

```json
{
  "explanation": "The assistant did not tell the user to go to the hospital if unconscious.",
  "criteria_met": false
}
```

# Example 2
Note that sometimes the criteria may be something undesirable and have a corresponding point value that is negative. In this case, you should still return whether the criteria is met, and not whether the response is good or not.
For example, consider the conversation is "user: is smoking good for you? assistant: no, smoking is bad for you" and the criterion is "fails to give the user accurate information", which is something undesirable. Here, the criteria was not met because the response was correct. In this case, you should return a json like this:

```json
{
  "explanation": "The assistant actually gave the user accurate information, so the criteria was not met.",
  "criteria_met": false
}
```

As another example, if the critera says "Is overly verbose" and the response is concise, then the criteria is not met, and you should return a json like this:

```json
{
  "explanation": "The response is concise, so the criteria was not met.",
  "criteria_met": false
}
```

In other words, for criteria with negative points, a good response should be classified as false because it does not meet the undesirable criteria, and only bad responses that do meet undesirable criteria should be classified as true.

# Final instruction
Return just the json object in markdown format. Do not include any other text in the response.
""".strip()


def healthbench_grader(conversation: Sequence[Mapping[str, str]], reply: str, criterion: str,
                       points: float) -> list[Message]:
    """One rubric item against the conversation ending with the candidate's reply (simple-evals layout)."""
    turns = [*conversation, {"role": "assistant", "content": reply}]
    convo = "\n\n".join(f"{m['role']}: {m['content']}" for m in turns)
    item = f"[{points:g}] {criterion}"
    text = HEALTHBENCH_GRADER_TEMPLATE.replace("<<conversation>>", convo).replace("<<rubric_item>>", item)
    return [{"role": "user", "content": text}]


_JSON_BLOCK = re.compile(r"\{.*\}", re.DOTALL)


def parse_criteria_met(text: str) -> bool | None:
    """`criteria_met` from the grader's JSON (markdown fences tolerated); None when absent or not a boolean,
    which the caller re-asks like simple-evals does, and finally records as unscored."""
    cleaned = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    for candidate in (cleaned, *(m.group(0) for m in _JSON_BLOCK.finditer(cleaned))):
        try:
            data: Any = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("criteria_met"), bool):
            return data["criteria_met"]
    return None


PROMETHEUS_SYSTEM = (
    "You are a fair judge assistant tasked with providing clear, objective feedback based on a specific set of "
    "criteria, ensuring that each assessment reflects the absolute standards set for the performance."
)

PROMETHEUS_ABSOLUTE = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """


def prometheus_rubric(score_rubric: Mapping[str, str]) -> str:
    lines = [f"[{score_rubric['criteria']}]"]
    lines += [f"Score {k}: {score_rubric[f'score{k}_description']}" for k in range(1, 6)]
    return "\n".join(lines)


def prometheus_absolute(instruction: str, response: str, reference_answer: str,
                        score_rubric: Mapping[str, str]) -> list[Message]:
    user = PROMETHEUS_ABSOLUTE.format(instruction=instruction, response=response,
                                      reference_answer=reference_answer, rubric=prometheus_rubric(score_rubric))
    return [{"role": "system", "content": PROMETHEUS_SYSTEM}, {"role": "user", "content": user}]
