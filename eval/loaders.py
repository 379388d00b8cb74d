"""Benchmark records, validated on the way in.

Each loader takes a local file (.jsonl/.json/.csv) or a Hugging Face Hub dataset id (through rrd.io.read_rows) and
returns immutable records. Every bad record raises rrd.io.InputError naming the file, the line and the field, so a
broken row surfaces before a single judge call is paid for, not as a silently skewed accuracy afterwards.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, TypeVar

from rrd.io import InputError, Row, read_rows, require_records, unique_ids

Verdict = Literal["A", "B", "tie"]
T = TypeVar("T")

JUDGEBENCH_FAMILIES = ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")


# --- shared helpers --------------------------------------------------------------------------------------------------


Located = list[tuple[T, str, int]]  # a record with the file (or Hub split) and line it came from


def _load(source: str, split: str, limit: int | None, build: Callable[[Row], T]) -> Located[T]:
    """Validate row by row, so the first bad line in the file is the one reported."""
    return require_records([(build(row), row.source, row.line) for row in read_rows(source, split=split, limit=limit)],
                           source)


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
    models): rrd.io.unique_ids keeps a repeat with other content as "<id>@<line>" and scores an exact repeat
    once, and says how many of each."""
    return unique_ids(located, key, lambda record, new: replace(record, id=new))  # type: ignore[type-var]


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
