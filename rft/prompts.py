"""The training prompt set: WildChat-style records in, a deduplicated, filtered, shuffled Dataset out.

Why these filters: the paper trains on about 4K English, non-toxic WildChat prompts. WildChat conversations carry
per-turn `language`, `toxic` and `redacted` flags (and record-level `language`/`toxic`, plus OpenAI moderation
results), and real chat logs repeat the same request many times, so an un-deduplicated set over-weights a few
prompts. The prompt is the FIRST user turn, so each training prompt is single-turn and self-contained (later turns
depend on an assistant reply the policy never wrote).

Each kept prompt gets prompt_id = rrd.records.prompt_key(text): the id `rrd refine` gives a prompt without an
id column, so a rubrics.jsonl written by `rrd refine` for these prompts is found again by the reward function.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Container, Iterable, Mapping

from judges.types import content_text
from rrd.io import Row, read_rows
from rrd.records import prompt_key

from .config import DataConfig

log = logging.getLogger(__name__)

CONVERSATION_FIELDS = ("conversation", "conversation_input", "messages")
TEXT_FIELDS = ("prompt", "instruction", "question", "input", "user_query")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass
class PromptSet:
    """The kept prompts (in training order) and why every other record was dropped."""

    texts: list[str]
    read: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def ids(self) -> list[str]:
        return [prompt_key(t) for t in self.texts]

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in self.dropped.most_common()) or "none"
        return f"prompts: read {self.read}, kept {len(self.texts)}; dropped: {reasons}"

    def to_dataset(self, keep: Container[str] | None = None) -> Any:
        """A datasets.Dataset with `prompt` (conversational: one user message) and `prompt_id`, in order;
        with `keep`, only the prompts whose id is in it (e.g. those with a rubric set)."""
        from datasets import Dataset

        rows = [{"prompt": [{"role": "user", "content": t}], "prompt_id": prompt_key(t)} for t in self.texts]
        return Dataset.from_list([r for r in rows if keep is None or r["prompt_id"] in keep])


def normalise_text(text: str) -> str:
    """Tidy whitespace without touching meaning: newlines unified, trailing spaces and runs of blank lines cut.

    Inner spacing is kept (code and tables depend on it); only the dedup key collapses all whitespace.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def dedup_key(text: str) -> str:
    """Exact duplicates up to case and whitespace (the same request pasted with different spacing)."""
    return " ".join(text.split()).casefold()


def _truthy(value: Any) -> bool:
    return bool(value) and str(value).strip().lower() not in ("false", "0", "no", "none")


@dataclass
class Extracted:
    """A record's candidate prompt with the flags the filters look at (None: the record does not say)."""

    text: str | None
    language: str | None = None
    toxic: bool = False
    redacted: bool = False
    user_turns: int = 1


def _moderation_flagged(record: Mapping[str, Any], turn_index: int) -> bool:
    """WildChat's openai_moderation holds one result per turn; a flagged first user turn is toxic."""
    mods = record.get("openai_moderation")
    if isinstance(mods, list) and 0 <= turn_index < len(mods) and isinstance(mods[turn_index], dict):
        return _truthy(mods[turn_index].get("flagged"))
    return False


def extract(record: Mapping[str, Any], prompt_field: str | None = None) -> Extracted:
    """The first user turn of a conversation record, or a plain text field, with its language/toxicity flags."""
    if prompt_field:
        names: tuple[str, ...] = (prompt_field,)
    else:
        names = CONVERSATION_FIELDS + TEXT_FIELDS
    value, name = None, None
    for n in names:
        if record.get(n) is not None:
            value, name = record[n], n
            break
    rec_lang = record.get("language")
    rec_toxic = _truthy(record.get("toxic"))
    rec_redacted = _truthy(record.get("redacted"))
    if isinstance(value, list):
        turns = [t for t in value if isinstance(t, Mapping)]
        users = [(i, t) for i, t in enumerate(turns) if t.get("role") == "user"]
        if not users:
            return Extracted(None, rec_lang if isinstance(rec_lang, str) else None, rec_toxic, rec_redacted, 0)
        i, first = users[0]
        lang = first.get("language") or rec_lang
        return Extracted(
            content_text(first.get("content")),
            lang if isinstance(lang, str) else None,
            rec_toxic or _truthy(first.get("toxic")) or _moderation_flagged(record, i),
            rec_redacted or _truthy(first.get("redacted")),
            len(users),
        )
    if name is None:
        return Extracted(None)
    return Extracted(content_text(value), rec_lang if isinstance(rec_lang, str) else None, rec_toxic, rec_redacted)


def select_prompts(records: Iterable[Mapping[str, Any]], config: DataConfig) -> PromptSet:
    """Apply the filters in order (missing, language, toxic, redacted, multi-turn, length, duplicate), then a
    seeded shuffle and the cap. Deterministic for a given source and config."""
    out = PromptSet([])
    seen: set[str] = set()
    want_lang = config.language.casefold() if config.language else None
    for record in records:
        out.read += 1
        ex = extract(record, config.prompt_field)
        text = normalise_text(ex.text) if ex.text is not None else ""
        if not text:
            reason = "no_prompt"
        elif want_lang and ex.language is not None and ex.language.casefold() != want_lang:
            reason = "language"
        elif config.drop_toxic and ex.toxic:
            reason = "toxic"
        elif config.drop_redacted and ex.redacted:
            reason = "redacted"
        elif config.single_turn_only and ex.user_turns > 1:
            reason = "multi_turn"
        elif len(text) < config.min_chars or (config.max_chars is not None and len(text) > config.max_chars):
            reason = "length"
        elif config.dedup and dedup_key(text) in seen:
            reason = "duplicate"
        else:
            seen.add(dedup_key(text))
            out.texts.append(text)
            continue
        out.dropped[reason] += 1
    random.Random(config.seed).shuffle(out.texts)
    if config.max_prompts is not None and len(out.texts) > config.max_prompts:
        out.dropped["over_max_prompts"] += len(out.texts) - config.max_prompts
        out.texts = out.texts[: config.max_prompts]
    return out


def _records(rows: Iterable[Row]) -> Iterable[Mapping[str, Any]]:
    for row in rows:
        yield row.data


def prepare_prompts(config: DataConfig) -> PromptSet:
    """Read `config.source` (file or Hub id) and select the training prompts."""
    ps = select_prompts(_records(read_rows(config.source, split=config.split, limit=config.scan_limit)), config)
    log.info("%s: %s", config.source, ps.summary())
    return ps
