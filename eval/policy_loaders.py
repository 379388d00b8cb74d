"""Policy benchmark records (HealthBench, BiGGen Bench), validated on the way in like every loader (eval.loaders):
a bad record raises rrd.io.InputError naming the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass

from rrd.io import InputError, Row

from .loaders import _load, _number, _str_list, _unique

# --- HealthBench ------------------------------------------------------------------------------------------------------

HEALTHBENCH_HUB = "openai/healthbench"
# The official files (simple-evals reads them from blob storage; the Hub repo holds the same files, but has no
# dataset config, so they are fetched by name). Keys are the `split` values accepted for the Hub id.
HEALTHBENCH_FILES = {
    "oss_eval": "2025-05-07-06-14-12_oss_eval.jsonl",
    "hard": "hard_2025-05-08-21-00-10.jsonl",
    "consensus": "consensus_2025-05-09-20-00-46.jsonl",
}
HEALTHBENCH_BLOB = "https://openaipublic.blob.core.windows.net/simple-evals/healthbench/"
_ROLES = frozenset({"user", "assistant", "system"})


@dataclass(frozen=True)
class HealthRubric:
    """One physician-written rubric item; negative points penalise a bad behaviour when it is present."""

    criterion: str
    points: float
    tags: tuple[str, ...]


@dataclass(frozen=True)
class HealthExample:
    """One HealthBench conversation; the model under test writes the next assistant turn."""

    prompt_id: str
    conversation: list[dict[str, str]]
    rubrics: tuple[HealthRubric, ...]
    example_tags: tuple[str, ...]
    ideal_completion: str | None


def _health_conversation(row: Row) -> list[dict[str, str]]:
    turns = row.get("prompt", kind=list)
    if not turns:
        raise InputError(row.source, row.line, "prompt", "empty conversation")
    out = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise InputError(row.source, row.line, f"prompt[{i}]", "expected an object with role and content")
        role, content = turn.get("role"), turn.get("content")
        if role not in _ROLES:
            raise InputError(row.source, row.line, f"prompt[{i}].role", f"expected user, assistant or system, "
                             f"got {role!r}")
        if not isinstance(content, str):
            raise InputError(row.source, row.line, f"prompt[{i}].content", "expected a string")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise InputError(row.source, row.line, f"prompt[{len(out) - 1}].role",
                         f"the last turn must be the user's (the model answers it), got {out[-1]['role']!r}")
    return out


def _health_rubrics(row: Row) -> tuple[HealthRubric, ...]:
    items = row.get("rubrics", kind=list)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(row.source, row.line, f"rubrics[{i}]", "expected an object")
        criterion = item.get("criterion")
        if not isinstance(criterion, str) or not criterion.strip():
            raise InputError(row.source, row.line, f"rubrics[{i}].criterion", "expected a non-empty string")
        points = _number(row, item.get("points"), f"rubrics[{i}].points")
        tags = _str_list(row, item.get("tags", []), f"rubrics[{i}].tags")
        out.append(HealthRubric(criterion, points, tags))
    if not any(r.points > 0 for r in out):  # the score divides by the positive points
        raise InputError(row.source, row.line, "rubrics", "no rubric item with positive points: score undefined")
    return tuple(out)


def _health_example(row: Row) -> HealthExample:
    ideal = row.get("ideal_completions_data", required=False, kind=dict)
    ideal_text = None
    if ideal is not None:
        ideal_text = ideal.get("ideal_completion")
        if ideal_text is not None and not isinstance(ideal_text, str):
            raise InputError(row.source, row.line, "ideal_completions_data.ideal_completion", "expected a string")
    return HealthExample(
        prompt_id=row.get("prompt_id"),
        conversation=_health_conversation(row),
        rubrics=_health_rubrics(row),
        example_tags=_str_list(row, row.get("example_tags", required=False, kind=list) or [], "example_tags"),
        ideal_completion=ideal_text,
    )


def _healthbench_source(source: str, split: str) -> str:
    """The Hub id stands for its official files: fetch the one named by `split` and read it locally."""
    if source.rstrip("/") != HEALTHBENCH_HUB:
        return source
    if split not in HEALTHBENCH_FILES:
        raise InputError(source, None, None, f"unknown split {split!r}; expected one of {', '.join(HEALTHBENCH_FILES)}")
    from huggingface_hub import hf_hub_download  # only for the Hub id

    return hf_hub_download(HEALTHBENCH_HUB, HEALTHBENCH_FILES[split], repo_type="dataset")


def load_healthbench(source: str, *, split: str = "oss_eval", limit: int | None = None) -> list[HealthExample]:
    """HealthBench examples from an official JSONL file (download it from HEALTHBENCH_BLOB + HEALTHBENCH_FILES[...]),
    or from the Hub id openai/healthbench with split oss_eval (5,000), hard (1,000) or consensus (3,671)."""
    located = _load(_healthbench_source(source, split), split, limit, _health_example)
    return _unique(located, lambda r: r.prompt_id, "prompt_id")


# --- BiGGen Bench -----------------------------------------------------------------------------------------------------

_BIGGEN_RUBRIC_KEYS = ("criteria",) + tuple(f"score{i}_description" for i in range(1, 6))


@dataclass(frozen=True)
class BiGGenInstance:
    """One BiGGen instance with its own 1-5 rubric and a score-5 reference answer."""

    id: str
    capability: str
    task: str
    system_prompt: str
    input: str
    reference_answer: str
    score_rubric: dict[str, str]


def _biggen_instance(row: Row) -> BiGGenInstance:
    rubric = row.get("score_rubric", kind=dict)
    for key in _BIGGEN_RUBRIC_KEYS:
        value = rubric.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(row.source, row.line, f"score_rubric.{key}", "missing or empty")
    return BiGGenInstance(
        id=row.get("id"),
        capability=row.get("capability"),
        task=row.get("task"),
        system_prompt=row.get("system_prompt"),
        input=row.get("input"),
        reference_answer=row.get("reference_answer"),
        score_rubric={key: rubric[key] for key in _BIGGEN_RUBRIC_KEYS},
    )


def load_biggen(source: str, *, split: str = "test", limit: int | None = None) -> list[BiGGenInstance]:
    """BiGGen Bench instances (Hub prometheus-eval/BiGGen-Bench, split test, 765 rows)."""
    return _unique(_load(source, split, limit, _biggen_instance), lambda r: r.id, "id")
