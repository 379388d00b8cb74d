"""Any pairwise preference data as a benchmark (`rrd eval pairs --data FILE_OR_HUB_ID`).

RewardBench-style chosen/rejected files, Arena exports, HelpSteer-style A/B labels, a user's own pairs: fields are
found by the usual names or given by flags (PairFields), labels are read through a mapping that can be extended
(`--label-map 0=A,1=B,2=tie` for Auto-J's integers), and every bad record is a file:line:field error.

Records are PPE human-preference pairs (plus `swapped`), so the PPE protocol scores them: human ties are dropped
and counted, a judge tie or failure on a decided pair counts wrong, and accuracy is reported per group.
Chosen/rejected data has the better response first on every row; shown in that order, a direct judge's position
bias would be scored as skill, so the order is shuffled per pair with a seed and the swap recorded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from judges.settings import setting
from rrd.io import InputError, Row

from .loaders import PPEPair, Verdict, _disambiguate, _id, _load

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "messages")
A_FIELDS = ("response_A", "response_a", "output_1", "response_1", "response 1", "chosen")
B_FIELDS = ("response_B", "response_b", "output_2", "response_2", "response 2", "rejected")
LABEL_FIELDS = ("label", "winner", "preference")
GROUP_FIELDS = ("subset", "category", "source", "scenario")
HH_HUMAN, HH_ASSISTANT = "\n\nHuman:", "\n\nAssistant:"
LABELS: dict[str, Verdict] = {"a>b": "A", "a": "A", "1": "A", "model_a": "A", "response_a": "A",
                              "b>a": "B", "b": "B", "2": "B", "model_b": "B", "response_b": "B",
                              "tie": "tie", "a=b": "tie", "b=a": "tie"}


def _label_map_flag(text: str) -> dict[str, str]:
    """--label-map: parse_label_map with its message shown by argparse."""
    import argparse

    try:
        return parse_label_map(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class PairFields:
    """Where a preference file keeps each part of a pair; None = the first present of the usual names."""

    prompt: str | None = setting(None, flag="--prompt-field",
                                 help="prompt|question|instruction|input, or a chat messages list")
    a: str | None = setting(None, flag="--a-field", help="response_A|output_1|response_1|chosen")
    b: str | None = setting(None, flag="--b-field", help="response_B|output_2|response_2|rejected")
    label: str | None = setting(None, flag="--label-field",
                                help="label|winner|preference (implicit A for chosen/rejected)")
    group: str | None = setting(None, flag="--group-field",
                                help="subset|category|source|scenario: accuracy per group")
    #: extra label values, e.g. {"0": "A", "1": "B", "2": "tie"}; they take precedence over the built-in ones
    label_map: dict[str, str] = setting(default_factory=dict, type=_label_map_flag,
                                        metavar="MAP", help="extra label values, e.g. 0=A,1=B,2=tie (Auto-J)")
    #: the seed of the per-pair order shuffle of chosen/rejected data
    order_seed: int = setting(0, type=int, help="seed of the per-pair order shuffle of chosen/rejected data "
                                                "(recorded as `swapped`)")


@dataclass(frozen=True)
class PreferencePair(PPEPair):
    """A PPE-shaped pair; `swapped` says the file's first response is shown as B (chosen/rejected shuffle)."""

    swapped: bool = False


def parse_label_map(text: str) -> dict[str, str]:
    """"0=A,1=B,2=tie" -> {"0": "A", "1": "B", "2": "tie"}; ValueError on anything else."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        raw, sep, verdict = part.partition("=")
        if not sep or verdict.strip() not in ("A", "B", "tie"):
            raise ValueError(f"label map entries are VALUE=A, VALUE=B or VALUE=tie, not {part!r}")
        out[raw.strip().lower()] = verdict.strip()
    return out


def _transcript(turns: list[tuple[str, str]]) -> str:
    """One user turn is the prompt itself; a longer conversation is shown whole, so the judge sees the context."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)


def _chat_turns(row: Row, key: str, value: list[Any]) -> list[tuple[str, str]]:
    turns = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
            raise InputError(row.source, row.line, f"{key}[{i}]", "expected {\"role\": str, \"content\": str}")
        turns.append((m["role"], m["content"]))
    return turns


def _split_dialogues(a: str, b: str) -> tuple[str, str, str] | None:
    """HH-RLHF style transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...") -> (the dialogue both share, reply a,
    reply b). The shared part ends at the last "Assistant:" the two have in common (their longest common prefix,
    as TRL's extract_prompt takes it), so a reply that itself holds turns stays whole."""
    cut = os.path.commonprefix([a, b]).rfind(HH_ASSISTANT)
    if cut < 0 or HH_HUMAN not in a[:cut]:
        return None
    start = cut + len(HH_ASSISTANT)
    return a[:cut].strip(), a[start:].strip(), b[start:].strip()


def _prompt(row: Row, name: str | None) -> str | None:
    key = name or next((k for k in PROMPT_FIELDS if row.data.get(k) is not None), None)
    if key is None:
        return None  # the prompt is inside the responses (a shared conversation)
    value = row.get(key, kind=(str, list))
    if isinstance(value, list):
        turns = [t for t in _chat_turns(row, key, value) if t[0] != "system"]
        if not turns or turns[-1][0] != "user":
            raise InputError(row.source, row.line, key, "conversation does not end with a user turn")
        value = _transcript(turns)
    if not value.strip():
        raise InputError(row.source, row.line, key, "empty prompt")
    return value


def _response(row: Row, name: str | None, names: tuple[str, ...]) -> tuple[str, str | list[Any]]:
    key = name or next((k for k in names if row.data.get(k) is not None), None)
    if key is None:
        raise InputError(row.source, row.line, " or ".join(names), "missing (or give the field with a flag)")
    return key, row.get(key, kind=(str, list))


def _reply(row: Row, key: str, value: str | list[Any]) -> tuple[str | None, str]:
    """(the conversation before the reply, or None if there is none; the reply) of one response field."""
    if isinstance(value, str):
        return None, value
    turns = [t for t in _chat_turns(row, key, value) if t[0] != "system"]  # a chat ending in the reply
    if not turns or turns[-1][0] != "assistant":
        raise InputError(row.source, row.line, key, "conversation does not end with an assistant turn")
    return (_transcript(turns[:-1]) if len(turns) > 1 else None), turns[-1][1]


def _responses(row: Row, fields: PairFields, prompt: str | None) -> tuple[str, str, str, str]:
    """(prompt, a, b, a's field name). Without a prompt field the prompt is the conversation both responses
    share (HH-RLHF transcripts, RewardBench-style chat lists); with one, only the replies are kept."""
    a_key, a_raw = _response(row, fields.a, A_FIELDS)
    b_key, b_raw = _response(row, fields.b, B_FIELDS)
    if prompt is None and isinstance(a_raw, str) and isinstance(b_raw, str):
        split = _split_dialogues(a_raw, b_raw)
        if split is None:
            raise InputError(row.source, row.line, " or ".join(PROMPT_FIELDS),
                             "missing (or give --prompt-field), and the responses are not one shared "
                             "Human:/Assistant: transcript to take it from")
        return *split, a_key
    (a_ctx, a), (b_ctx, b) = _reply(row, a_key, a_raw), _reply(row, b_key, b_raw)
    if prompt is None:
        if a_ctx is None or b_ctx is None:
            raise InputError(row.source, row.line, " or ".join(PROMPT_FIELDS),
                             "missing (or give --prompt-field); the responses hold no conversation to take it from")
        if a_ctx != b_ctx:
            raise InputError(row.source, row.line, f"{a_key}/{b_key}",
                             "the two conversations differ before the last reply, so there is no shared prompt")
        prompt = a_ctx
    if not prompt.strip():
        raise InputError(row.source, row.line, a_key, "empty prompt")
    return prompt, a, b, a_key


def _label(row: Row, fields: PairFields, a_key: str) -> Verdict:
    key = fields.label or next((k for k in LABEL_FIELDS if row.data.get(k) is not None), None)
    if key is None:
        if a_key == "chosen":
            return "A"  # implicit: the chosen response is the better one
        raise InputError(row.source, row.line, " or ".join(LABEL_FIELDS), "missing (or give --label-field)")
    raw = row.data[key]
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise InputError(row.source, row.line, key, f"expected a string or an integer label, got {raw!r}")
    text = str(raw).strip().lower()
    verdict = fields.label_map.get(text) or LABELS.get(text) or ("tie" if text.startswith("tie") else None)
    if verdict is None:
        raise InputError(row.source, row.line, key, f"unknown label {raw!r}: use A>B, B>A, A, B, 1, 2, model_a, "
                                                    "model_b or tie, or map it with --label-map (e.g. 0=A,1=B,2=tie)")
    return verdict  # type: ignore[return-value]


def _swap(seed: int, pair_id: str) -> bool:
    return hashlib.sha256(f"{seed}\x00{pair_id}".encode()).digest()[0] & 1 == 1


def _pair(row: Row, fields: PairFields) -> PreferencePair:
    prompt, a, b, a_key = _responses(row, fields, _prompt(row, fields.prompt))
    winner = _label(row, fields, a_key)
    group_key = fields.group or next((k for k in GROUP_FIELDS if row.data.get(k) is not None), None)
    group = row.get(group_key, kind=(str, int)) if group_key else None
    pair_id = _id(row, "pair_id", "id", "question_id", "prompt_id")
    swapped = a_key == "chosen" and _swap(fields.order_seed, pair_id)
    if swapped:
        a, b = b, a
        winner = {"A": "B", "B": "A"}.get(winner, winner)  # type: ignore[assignment]
    return PreferencePair(id=pair_id, prompt=prompt, response_1=a, response_2=b, winner=winner,
                          categories=(str(group),) if group is not None else (), language=None, swapped=swapped)


def load_preference_pairs(source: str, *, split: str = "train", limit: int | None = None,
                          fields: PairFields | None = None) -> list[PreferencePair]:
    """Pairs from any preference file or Hub dataset (see the module docstring)."""
    fields = fields or PairFields()
    return _disambiguate(_load(source, split, limit, lambda row: _pair(row, fields)), lambda r: r.id)

