"""Benchmark records, validated on the way in.

Each loader takes a local file (.jsonl/.json/.csv) or a Hugging Face Hub dataset id (through rrd.io.read_rows) and
returns immutable records. Every bad record raises rrd.io.InputError naming the file, the line and the field, so a
broken row surfaces before a single judge call is paid for, not as a silently skewed accuracy afterwards.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Literal, TypeVar

from rrd.io import InputError, Row, read_rows

Verdict = Literal["A", "B", "tie"]
Kind = Literal["pairs", "bok", "rm-bench", "rewardbench2", "healthbench", "biggen"]
T = TypeVar("T")

JUDGEBENCH_FAMILIES = ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")


# --- shared helpers --------------------------------------------------------------------------------------------------


Located = list[tuple[T, str, int]]  # a record with the file (or Hub split) and line it came from


def _load(source: str, split: str, limit: int | None, build: Callable[[Row], T]) -> Located[T]:
    """Validate row by row, so the first bad line in the file is the one reported."""
    return [(build(row), row.source, row.line) for row in read_rows(source, split=split, limit=limit)]


def _unique(located: Located[T], key: Callable[[T], str], field: str) -> list[T]:
    """Reject a repeated id: results files are keyed by it, so a duplicate would silently overwrite a verdict."""
    seen: dict[str, int] = {}
    for record, src, line in located:
        k = key(record)
        if k in seen:
            raise InputError(src, line, field, f"duplicate id {k!r} (first on line {seen[k]})")
        seen[k] = line
    return [record for record, _, _ in located]


def _disambiguate(located: Located[T], key: Callable[[T], str]) -> list[T]:
    """PPE ids are not guaranteed unique (an Arena question recurs; a best-of-K question is sampled from several
    models), so a repeat gets "@<line>" appended: results files stay keyed one-to-one, deterministically."""
    seen: set[str] = set()
    out: list[T] = []
    for record, _, line in located:
        if key(record) in seen:
            record = replace(record, id=f"{key(record)}@{line}")  # type: ignore[type-var]
        seen.add(key(record))
        out.append(record)
    return out


def _id(row: Row, *names: str) -> str:
    """An id column may hold a str or an int (Hub datasets differ); ids are kept as str. Falls back to the row."""
    value = row.get(*names, required=False, kind=(str, int))
    if value is None or isinstance(value, bool):
        return str(row.line)
    return str(value)


def _number(row: Row, value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(row.source, row.line, field, f"expected a finite number, got {value!r}")
    return float(value)


def _str_list(row: Row, value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(row.source, row.line, field, "expected a list of strings")
    if len(set(value)) != len(value):  # a tag counted twice would double its sub-score weight
        raise InputError(row.source, row.line, field, "duplicate tags")
    return tuple(value)


# --- JudgeBench ------------------------------------------------------------------------------------------------------


def judgebench_family(source: str) -> str:
    """The reporting family of a JudgeBench source ("mmlu-pro-law" -> "mmlu-pro"); ValueError if unknown."""
    for family in JUDGEBENCH_FAMILIES:
        if source == family or source.startswith(family + "-"):
            return family
    raise ValueError(f"unknown JudgeBench source {source!r}; expected one of {', '.join(JUDGEBENCH_FAMILIES)}")


@dataclass(frozen=True)
class JudgeBenchPair:
    """One JudgeBench pair; `label` is which response is objectively correct. `original_id` is the question's id
    in its source benchmark (absent for the LiveBench and LiveCodeBench sources)."""

    pair_id: str
    original_id: str | None
    source: str
    question: str
    response_model: str
    response_a: str
    response_b: str
    label: Literal["A", "B"]

    @property
    def family(self) -> str:
        return judgebench_family(self.source)


def _judgebench_pair(row: Row) -> JudgeBenchPair:
    raw_label = row.get("label")
    label = {"A>B": "A", "B>A": "B"}.get(raw_label.strip())
    if label is None:
        raise InputError(row.source, row.line, "label", f"expected 'A>B' or 'B>A', got {raw_label!r}")
    source = row.get("source")
    original = row.get("original_id", required=False, kind=(str, int))  # null for the LiveBench sources
    try:
        judgebench_family(source)
    except ValueError as exc:
        raise InputError(row.source, row.line, "source", str(exc)) from None
    return JudgeBenchPair(
        pair_id=row.get("pair_id"),
        original_id=None if original is None else str(original),
        source=source,
        question=row.get("question"),
        response_model=row.get("response_model"),
        response_a=row.get("response_A", "response_a"),
        response_b=row.get("response_B", "response_b"),
        label=label,  # type: ignore[arg-type]
    )


def load_judgebench(source: str, *, split: str = "gpt", limit: int | None = None) -> list[JudgeBenchPair]:
    """JudgeBench pairs (Hub ScalerLab/JudgeBench, split gpt = 350 or claude = 270, or the repo's JSONL files)."""
    return _unique(_load(source, split, limit, _judgebench_pair), lambda r: r.pair_id, "pair_id")


# --- PPE human preference -------------------------------------------------------------------------------------------

_PPE_CORE = frozenset({"question_id", "id", "prompt", "response_1", "response_2", "winner", "language",
                       "model_a", "model_b"})


@dataclass(frozen=True)
class PPEPair:
    """One Arena battle; `winner` is the human vote, `categories` the PPE flags that are true for it."""

    id: str
    prompt: str
    response_1: str
    response_2: str
    winner: Verdict
    categories: tuple[str, ...]
    language: str | None


def _ppe_winner(row: Row) -> Verdict:
    raw = row.get("winner")
    w = raw.strip().lower()
    if w == "model_a":
        return "A"
    if w == "model_b":
        return "B"
    if w.startswith("tie"):  # "tie", "tie (bothbad)": both are no preference
        return "tie"
    raise InputError(row.source, row.line, "winner", f"expected model_a, model_b or tie, got {raw!r}")


def _ppe_pair(row: Row) -> PPEPair:
    # Any boolean column outside the core fields is a PPE category flag (is_code, hard_prompt, math_prompt, ...);
    # new flags in a later PPE release are picked up without a code change.
    flags = tuple(sorted(k for k, v in row.data.items() if k not in _PPE_CORE and isinstance(v, bool) and v))
    return PPEPair(
        id=_id(row, "question_id", "id"),
        prompt=row.get("prompt"),
        response_1=row.get("response_1"),
        response_2=row.get("response_2"),
        winner=_ppe_winner(row),
        categories=flags,
        language=row.get("language", required=False),
    )


def load_ppe_human(source: str, *, split: str = "test", limit: int | None = None) -> list[PPEPair]:
    """PPE human-preference pairs (Hub lmarena-ai/PPE-Human-Preference-V1, split test, 16,038 rows).

    Category flags are read from JSON booleans, so a local copy should be JSONL/JSON (a CSV has no booleans).
    """
    return _disambiguate(_load(source, split, limit, _ppe_pair), lambda r: r.id)


# --- PPE correctness (best-of-K) ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChosenRejectedItem:
    """A prompt with several chosen and several rejected responses (RM-Bench, RewardBench 2).

    Rubric methods score `responses` pointwise; the pairwise judge plays the subclass's `comparisons`.
    """

    id: str
    prompt: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]

    @property
    def responses(self) -> list[str]:
        return [*self.chosen, *self.rejected]


@dataclass(frozen=True)
class PPEBestOfK:
    """One prompt with K sampled responses and their verified correctness."""

    id: str
    prompt: str
    responses: tuple[str, ...]
    correct: tuple[bool, ...]
    benchmark: str


_RESPONSE_KEY = re.compile(r"response_(\d+)$")


def _bok_benchmark(source: str) -> str:
    """Benchmark name from a Hub id like lmarena-ai/PPE-MATH-Best-of-K; "ppe-bok" for other sources."""
    m = re.search(r"PPE-(.+?)-Best-of-K", source, flags=re.IGNORECASE)
    return m.group(1).lower() if m else "ppe-bok"


def _ppe_bok(row: Row, benchmark: str) -> PPEBestOfK:
    indices = sorted(int(m.group(1)) for k in row.data if (m := _RESPONSE_KEY.match(k)))
    if not indices:
        raise InputError(row.source, row.line, "response_1", "missing")
    k = indices[-1]
    missing = [i for i in range(1, k + 1) if row.data.get(f"response_{i}") is None]
    if missing:  # responses must be contiguous, or scores[i] would describe the wrong response
        raise InputError(row.source, row.line, f"response_{missing[0]}", f"missing (response_{k} is present)")
    responses = tuple(row.get(f"response_{i}") for i in range(1, k + 1))
    scores = row.get("scores", kind=list)
    if len(scores) != k:
        raise InputError(row.source, row.line, "scores", f"has {len(scores)} entries for {k} responses")
    correct = []
    for i, s in enumerate(scores):
        if not (isinstance(s, bool) or (isinstance(s, int) and s in (0, 1))):
            raise InputError(row.source, row.line, f"scores[{i}]", f"expected true/false, got {s!r}")
        correct.append(bool(s))
    base = _id(row, "question_id", "id")
    model = row.get("model_name", "model", required=False)
    # The PPE sets hold the same question once per sampled model, so the model is part of the id.
    return PPEBestOfK(
        id=f"{base}:{model}" if model else base,
        prompt=row.get("prompt", "question"),
        responses=responses,
        correct=tuple(correct),
        benchmark=benchmark,
    )


def load_ppe_best_of_k(
    source: str, *, split: str = "train", limit: int | None = None, benchmark: str | None = None
) -> list[PPEBestOfK]:
    """PPE correctness sets (Hub lmarena-ai/PPE-{MMLU-Pro,MATH,GPQA,IFEval,MBPP-Plus}-Best-of-K, split train).

    `benchmark` names the set in results; by default it is read from the Hub id.
    """
    name = benchmark or _bok_benchmark(source)
    return _disambiguate(_load(source, split, limit, lambda row: _ppe_bok(row, name)), lambda r: r.id)


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


# --- registry ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkSpec:
    """What `rrd eval NAME` loads by default; `note` tells the user anything the default cannot do for them."""

    name: str
    loader: Callable[..., list[Any]]
    default_source: str
    default_split: str
    kind: Kind
    note: str = ""


_HB_NOTE = ("Official file: " + HEALTHBENCH_BLOB + "{file} (also on the Hub as openai/healthbench/{file}); "
            "pass the downloaded path as the source, or the Hub id with split {split}.")


def _bok(name: str, hub: str, benchmark: str) -> BenchmarkSpec:
    return BenchmarkSpec(name, partial(load_ppe_best_of_k, benchmark=benchmark), hub, "train", "bok")


def _hb(name: str, split: str) -> BenchmarkSpec:
    note = _HB_NOTE.format(file=HEALTHBENCH_FILES[split], split=split)
    return BenchmarkSpec(name, load_healthbench, HEALTHBENCH_HUB, split, "healthbench", note)


def _rm_bench(source: str, *, split: str = "train", limit: int | None = None) -> list[Any]:
    from .rm_bench import load_rm_bench  # it builds on this module's helpers

    return load_rm_bench(source, split=split, limit=limit)


def _rewardbench2(source: str, *, split: str = "test", limit: int | None = None) -> list[Any]:
    from .rewardbench2 import load_rewardbench2

    return load_rewardbench2(source, split=split, limit=limit)


def _preference_pairs(source: str, *, split: str = "train", limit: int | None = None, fields: Any = None) -> list[Any]:
    from .preference import load_preference_pairs  # it builds on this module's records

    return load_preference_pairs(source, split=split, limit=limit, fields=fields)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("judgebench", load_judgebench, "ScalerLab/JudgeBench", "gpt", "pairs"),
        BenchmarkSpec("pairs", _preference_pairs, "", "train", "pairs",
                      "any preference data: give --data FILE or a Hub id (fields by name or --prompt-field ...)"),
        BenchmarkSpec("rm-bench", _rm_bench, "THU-KEG/RM-Bench", "train", "rm-bench",
                      "or the repository's files, comma-separated: chat_filtered.json,code_filtered.json,..."),
        BenchmarkSpec("rewardbench2", _rewardbench2, "allenai/reward-bench-2", "test", "rewardbench2"),
        BenchmarkSpec("ppe-human", load_ppe_human, "lmarena-ai/PPE-Human-Preference-V1", "test", "pairs"),
        _bok("ppe-mmlu-pro", "lmarena-ai/PPE-MMLU-Pro-Best-of-K", "mmlu-pro"),
        _bok("ppe-math", "lmarena-ai/PPE-MATH-Best-of-K", "math"),
        _bok("ppe-gpqa", "lmarena-ai/PPE-GPQA-Best-of-K", "gpqa"),
        _bok("ppe-ifeval", "lmarena-ai/PPE-IFEval-Best-of-K", "ifeval"),
        _bok("ppe-mbpp-plus", "lmarena-ai/PPE-MBPP-Plus-Best-of-K", "mbpp-plus"),
        _hb("healthbench", "oss_eval"),
        _hb("healthbench-hard", "hard"),
        _hb("healthbench-consensus", "consensus"),
        BenchmarkSpec("biggen", load_biggen, "prometheus-eval/BiGGen-Bench", "test", "biggen"),
    )
}
