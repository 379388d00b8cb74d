"""Reading what `rrd refine` and `rrd judge` work on: prompts (with optional own responses) and preference pairs,
from a .jsonl/.json/.csv file or a Hugging Face dataset id. Bad rows raise InputError naming file, line and field."""

from __future__ import annotations

from dataclasses import dataclass, replace

from judges.settings import POSITIVE, setting
from judges.types import last_user_turn

from .io import InputError, Row, read_rows, require_records, unique_ids
from .records import prompt_key
from .resume import content_hash

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "user_query")
A_FIELDS = ("response_A", "response_a", "response_1", "chosen")
B_FIELDS = ("response_B", "response_b", "response_2", "rejected")
LABELS = {"A>B": "A", "A": "A", "model_a": "A", "1": "A", "B>A": "B", "B": "B", "model_b": "B", "2": "B"}


def row_prompt(row: Row, field: str | None) -> str:
    """The prompt of a row: `field`, or the first of PROMPT_FIELDS; a chat conversation gives its last user turn."""
    value = row.get(field) if field else row.get(*PROMPT_FIELDS, kind=(str, list))
    if isinstance(value, list):
        value = last_user_turn(value)
        if value is None:
            raise InputError(row.source, row.line, field or "prompt", "conversation has no user turn")
    if not value.strip():
        raise InputError(row.source, row.line, field or "prompt", "empty prompt")
    return value


def _prompt_id(row: Row, id_field: str | None, prompt: str) -> str:
    return str(row.get(id_field, kind=(str, int))) if id_field else prompt_key(prompt)


@dataclass
class PromptTask:
    prompt_id: str
    prompt: str
    responses: list[str] | None


@dataclass
class PromptSource:
    """Where prompts are read from. id_field: the prompt id column (default: a hash of the prompt);
    responses_field: an optional list of the user's own N responses per prompt."""

    path: str
    split: str = setting("train", help="split of a Hugging Face dataset")
    limit: int | None = setting(None, type=POSITIVE, help="read the first N rows only")
    prompt_field: str | None = setting(None, help=f"prompt column (default: the first of {', '.join(PROMPT_FIELDS)})")
    id_field: str | None = setting(None, help="prompt id column, matching the rubric sets' prompt_id (default: a "
                                              "hash of the prompt)")
    responses_field: str | None = setting("responses", help="optional column with a list of your own N responses "
                                                            "per prompt (no sampling)")


def read_prompt_tasks(source: PromptSource) -> list[PromptTask]:
    """One task per distinct prompt id, in file order: a repeated prompt is refined once, and another prompt
    under an id already used is kept as ID@LINE (rrd.io.unique_ids)."""
    tasks: list[tuple[PromptTask, str, int]] = []
    for row in read_rows(source.path, split=source.split, limit=source.limit):
        prompt = row_prompt(row, source.prompt_field)
        responses = None
        if source.responses_field and source.responses_field in row.data:
            responses = row.get(source.responses_field, kind=list)
            if not all(isinstance(r, str) for r in responses):
                raise InputError(row.source, row.line, source.responses_field, "expected a list of strings")
        pid = _prompt_id(row, source.id_field, prompt)
        tasks.append((PromptTask(pid, prompt, responses), row.source, row.line))
    unique = unique_ids(tasks, lambda t: t.prompt_id, lambda t, new: replace(t, prompt_id=new))
    return require_records(unique, source.path)


@dataclass
class Pair:
    pair_id: str
    prompt_id: str
    prompt: str
    a: str
    b: str
    label: str | None  # "A", "B", "tie" or None (unlabelled)

    @property
    def content_hash(self) -> str:
        return content_hash(self.prompt, self.a, self.b)


def pair_label(row: Row) -> str | None:
    """"A", "B", "tie" or None (unlabelled); chosen/rejected rows are labelled A."""
    if "chosen" in row.data and "response_A" not in row.data:
        return "A"
    raw = row.data.get("label", row.data.get("winner"))
    if raw is None:
        return None
    text = str(raw).strip()
    if text in LABELS:
        return LABELS[text]
    if text.lower().startswith("tie") or text in ("A=B", "B=A"):
        return "tie"
    raise InputError(row.source, row.line, "label", f"unknown label {raw!r} (use A>B, B>A, A, B or tie)")


def read_pairs(source: PromptSource) -> list[Pair]:
    """Preference pairs (prompt, response_A, response_B[, label]); `source.responses_field` is not used. An exact
    repeat of a pair is judged once, another pair under a used id is kept as ID@LINE (rrd.io.unique_ids)."""
    pairs: list[tuple[Pair, str, int]] = []
    for row in read_rows(source.path, split=source.split, limit=source.limit):
        prompt = row_prompt(row, source.prompt_field)
        a, b = row.get(*A_FIELDS), row.get(*B_FIELDS)
        pair_id = row.get("pair_id", "id", required=False, kind=(str, int))
        if pair_id is None:
            pair_id = "pair-" + content_hash(prompt, a, b)
        pair = Pair(str(pair_id), _prompt_id(row, source.id_field, prompt), prompt, a, b, pair_label(row))
        pairs.append((pair, row.source, row.line))
    unique = unique_ids(pairs, lambda p: p.pair_id, lambda p, new: replace(p, pair_id=new))
    return require_records(unique, source.path)
