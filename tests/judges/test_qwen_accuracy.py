"""The embedded default judge (Qwen2.5-Coder-1.5B-Instruct) must actually judge: >= 80% on 20 plain yes/no checks.

Slow (the first run assembles and converts the 1.1 GB GGUF); CI runs it. Skip locally with -m "not slow".
"""

from __future__ import annotations

import pytest

from judges import GradeItem, Judge, JudgeConfig

pytestmark = [pytest.mark.slow, pytest.mark.local_model]

CHECKS: list[tuple[str, str, bool]] = [
    ("The response states that Paris is the capital of France.", "The capital of France is Paris.", True),
    ("The response states that Paris is the capital of France.", "The capital of France is Lyon.", False),
    ("The response is written in French.", "Bonjour, je m'appelle Marie et j'habite à Lyon.", True),
    ("The response is written in French.", "Hello, my name is Marie and I live in Lyon.", False),
    ("The response gives the answer 12.", "7 + 5 = 12", True),
    ("The response gives the answer 12.", "7 + 5 = 13", False),
    ("The response contains a Python function definition.", "def add(a, b):\n    return a + b", True),
    ("The response contains a Python function definition.", "The sum of 2 and 3 is 5.", False),
    ("The response mentions a dog.", "My dog loves to run in the park every morning.", True),
    ("The response mentions a dog.", "My cat sleeps on the sofa all afternoon.", False),
    ("The response is a numbered list.", "1. Eggs\n2. Milk\n3. Bread", True),
    ("The response is a numbered list.", "Eggs, milk and bread are on the list.", False),
    ("The response says that water boils at 100 degrees Celsius at sea level.",
     "At sea level, water boils at 100 °C.", True),
    ("The response says that water boils at 100 degrees Celsius at sea level.",
     "At sea level, water boils at 50 °C.", False),
    ("The response recommends consulting a doctor.", "If the pain persists, please see a doctor.", True),
    ("The response recommends consulting a doctor.", "Just ignore the pain, it will go away.", False),
    ("The response names red, green and blue as the primary colors of light.",
     "The primary colors of light are red, green and blue.", True),
    ("The response names red, green and blue as the primary colors of light.",
     "The primary colors of light are cyan, magenta and yellow.", False),
    ("The response is a single sentence.", "The sky is blue.", True),
    ("The response is a single sentence.", "The sky is blue. The grass is green. Snow is white.", False),
]


async def test_qwen_judges_simple_checks(tmp_path):
    judge = Judge(JudgeConfig(model="local:qwen2.5-coder-1.5b", cache_path=str(tmp_path / "c.sqlite")))
    try:
        groups: dict[str, list[int]] = {}
        for i, (_, response, _) in enumerate(CHECKS):
            groups.setdefault(response, []).append(i)
        items = [GradeItem([CHECKS[i][0] for i in idx], response) for response, idx in groups.items()]
        results = await judge.grade_many(items)
        verdicts = {i: v for idx, vs in zip(groups.values(), results) for i, v in zip(idx, vs)}
    finally:
        await judge.aclose()
    correct = sum(verdicts[i].met is expected for i, (_, _, expected) in enumerate(CHECKS))
    unscored = sum(v.met is None for v in verdicts.values())
    assert correct >= 16, f"{correct}/20 correct, {unscored} unscored: " + "; ".join(
        f"{CHECKS[i][0][:40]!r} on {CHECKS[i][1][:30]!r}: {v.met} p={v.p_yes}" for i, v in verdicts.items()
        if v.met is not CHECKS[i][2])
    # P(YES) must rank the true checks above the false ones (AUC near 1 is what makes soft rewards useful)
    pos = [verdicts[i].p_yes for i, c in enumerate(CHECKS) if c[2] and verdicts[i].p_yes is not None]
    neg = [verdicts[i].p_yes for i, c in enumerate(CHECKS) if not c[2] and verdicts[i].p_yes is not None]
    auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc >= 0.85, auc
