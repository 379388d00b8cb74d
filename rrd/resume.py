"""What a re-run of `rrd refine` or `rrd judge` redoes, and how a run stops at its budget.

Results files are append-only, so a re-run redoes an item by appending a new record; the last record of an item
is its current state (rrd.io.latest_by). An item is redone when:
- its input changed since its record was written (the prompt or responses behind the same id), or the rubric
  set a verdict was judged with is no longer the prompt's set: the old record describes something else;
- `--retry failed` (default): a call behind it failed for a reason that may pass (an error, a timeout, a
  rate limit after all retries); its answered calls come from the cache, so only the failed ones are re-sent;
- `--retry unscored`: also when an answer could not be read (the judge re-asks it with a format reminder,
  --reask-unreadable) or the pair ended undecided;
- `--retry none`: never, except for changed input.
A call refused by the budget was never sent, so its item has no record and is simply pending next time.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Literal, Sequence, TypeVar

T = TypeVar("T")

RetryRule = Literal["failed", "unscored", "none"]
#: exit status of a run that stopped because the next call could take spending past --budget-usd
BUDGET_EXIT = 3
#: exit status of a run that finished with calls that failed after all their retries: their items are written
#: unscored, and the same command run again redoes them (`--retry failed`, the default)
FAILED_CALLS_EXIT = 4


def failed_calls_message(failures: int, redo: bool = True) -> str:
    return (f"{failures} call{'s' if failures != 1 else ''} failed after all retries; their items are written "
            "unscored" + ("; run the same command again to retry them" if redo else
                          " and count as failed verdicts, as the benchmark's protocol says"))


def content_hash(*parts: str) -> str:
    """Identity of an item's content, stored in its record so a re-run notices an edited input."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def judged_redo_reason(record: dict[str, Any], item_hash: str, rubric_hash: str | None, rule: str) -> str | None:
    """Why a judged pair must be judged again, or None to keep its record."""
    if record.get("item_hash", item_hash) != item_hash:
        return "changed"
    if rubric_hash is not None and record.get("rubric_set") != rubric_hash:
        return "rubrics changed"
    if rule == "none":
        return None
    # records written before reasons were kept: an unscored verdict may be a failed call
    failed = record.get("failed", record.get("unscored", 0) if "reasons_A" not in record else 0)
    if failed:
        return "failed"
    if rule == "unscored" and (record.get("unscored") or record.get("undecided")):
        return "unscored"
    return None


def refined_redo_reason(record: dict[str, Any], prompt: str, responses: Sequence[str] | None,
                        rule: str) -> str | None:
    """Why a prompt must be refined again, or None to keep its rubric set."""
    if record.get("prompt") != prompt:
        return "changed"
    if responses is not None:
        provided = [s.get("text") for s in record.get("samples", []) if s.get("model") == "provided"]
        if provided != list(responses):
            return "changed"
    if rule == "none":
        return None
    if record.get("stats", {}).get("failures", 0):
        return "failed"
    if rule == "unscored" and record.get("stopped") == "failed":
        return "unscored"
    return None


@dataclass
class Resume:
    """What a re-run found in its output: items already done and kept, and items redone, by reason."""

    kept: int = 0
    redo: Counter[str] = field(default_factory=Counter)

    def message(self, unit: str) -> str | None:
        if not (self.kept or self.redo):
            return None
        text = f"resuming: {self.kept} {unit}{'' if self.kept == 1 else 's'} done"
        if self.redo:
            text += ", redoing " + ", ".join(f"{n} {why}" for why, n in self.redo.most_common())
        return text


def pending(items: Iterable[T], ids: Callable[[T], Any], latest: dict[Any, dict[str, Any]],
            redo_reason: Callable[[T, dict[str, Any]], str | None], resume: Resume) -> list[T]:
    """The items to run: those without a record in `latest` (by id), and those whose record `redo_reason`
    says must be redone; counts kept and redone items in `resume`."""
    out = []
    for item in items:
        record = latest.get(ids(item))
        why = "new" if record is None else redo_reason(item, record)
        if why is None:
            resume.kept += 1
            continue
        if why != "new":
            resume.redo[why] += 1
        out.append(item)
    return out


@dataclass
class Stop:
    """Set when the budget refused a call: no new item starts, the ones in flight finish, and the run ends with
    its summary and BUDGET_EXIT. Items not started have no record and are pending for the next run."""

    budget: str | None = None
    not_done: int = 0

    def message(self, unit: str) -> str:
        return (f"budget reached ({self.budget}); {self.not_done} {unit}s not done and left for the next run: "
                "re-run with a higher --budget-usd to go on")
