"""The rubric data model: every rubric RRD ever considered, why it was kept or dropped, and the final set.

A RubricSet is the unit written to rubrics.jsonl. It keeps the whole decomposition tree (rejected and
decomposed rubrics included, each with its reason), the sampled responses and the accepted rubrics' verdicts
on them (so whitened weights can be recomputed without new calls), and a content hash over what determines a
score (prompt, accepted texts, weights, config) that serves as its provenance id. `load_rubric_sets` reads such a
file (or the short form {"prompt", "rubrics": [...]}) by prompt id; `prompt_key` is the id of a prompt without one,
shared by `rrd judge`, the reward functions and evaluation, so a set refined once is found by all.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence, Union

from judges.types import Verdict, verdict_value

from . import scoring
from .io import InputError, read_rows

# "split": a child of the deterministic splitter of compound rubrics (rrd.split), no proposer call
Origin = Literal["initial", "decomposed", "provided", "split"]
# "dropped": a repeat in a proposer's answer, removed before any judge call and not counted towards T.
Status = Literal["pending", "accepted", "decomposed", "rejected", "dropped"]
Reason = Literal["duplicate", "near_duplicate", "misaligned", "overlap", "conflict", "failed_decomposition"]

VerdictLike = Union[Verdict, bool, float, None]
#: keys files written before these became derived properties still carry; they are recomputed, not read
DERIVED_RUBRIC_KEYS = ("satisfied",)
DERIVED_SET_KEYS = ("verdicts", "template_version")

_PUNCT = str.maketrans("", "", string.punctuation)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercase, strip punctuation, collapse whitespace: the key for exact-duplicate detection."""
    return _SPACE.sub(" ", text.lower().translate(_PUNCT)).strip()


def rubric_id(text: str, parent: str | None) -> str:
    """Stable across runs: the same text under the same parent always gets the same id."""
    return hashlib.sha256(f"{parent or ''}\x1f{normalise(text)}".encode()).hexdigest()[:12]


@dataclass
class Rubric:
    """One node of the decomposition tree with the evidence behind its fate.

    `verdicts` are the per-sample answers where None means unscored (not counted as YES, and never as NO
    either); `satisfied` is c, their YES count (None before grading), derived from them, not stored.
    `p_yes` are the same verdicts as P(YES) (the hard verdict where the judge gave no probability, None where
    unscored), for soft satisfaction counts; empty in files written before it existed.
    `strong`/`weak` are the misalignment-check verdicts.
    `similarity` is the lexical score (0-100) of a dropped near-duplicate against the rubric it repeats.
    `judge_calls` are backend calls attributed to this rubric (grading calls shared by several criteria are
    split evenly, so it can be fractional); cache hits are not calls.
    """

    id: str
    text: str
    parent: str | None = None
    depth: int = 0
    origin: Origin = "initial"
    status: Status = "pending"
    reason: Reason | None = None
    detail: str | None = None
    verdicts: list[bool | None] = field(default_factory=list)
    p_yes: list[float | None] = field(default_factory=list)
    strong: bool | None = None
    weak: bool | None = None
    children: list[str] = field(default_factory=list)
    judge_calls: float = 0.0
    similarity: float | None = None

    @classmethod
    def new(
        cls, text: str, parent: Rubric | None = None, origin: Origin = "initial", taken: set[str] | None = None
    ) -> Rubric:
        """A fresh pending rubric. Ids already in `taken` (a repeated text) get a deterministic -2, -3 suffix."""
        pid = parent.id if parent is not None else None
        depth = parent.depth + 1 if parent is not None else 0
        rid = base = rubric_id(text, pid)
        n = 1
        while taken is not None and rid in taken:
            n += 1
            rid = f"{base}-{n}"
        if taken is not None:
            taken.add(rid)
        return cls(id=rid, text=text, parent=pid, depth=depth, origin=origin)

    @property
    def satisfied(self) -> int | None:
        """c: how many samples satisfy it (unscored verdicts are not YES); None before it is graded."""
        return sum(1 for v in self.verdicts if v is True) if self.verdicts else None

    @property
    def soft_satisfied(self) -> float | None:
        """c as the sum of P(YES) over the scored samples (RefineConfig.count_mode "soft"); the hard count where
        no probabilities were stored."""
        if not self.p_yes:
            return self.satisfied
        return float(sum(p for p in self.p_yes if p is not None))

    def note(self, detail: str) -> None:
        """Append to `detail` (several stages can leave a remark on one rubric)."""
        self.detail = detail if not self.detail else f"{self.detail}; {detail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rubric:
        return cls(**{k: v for k, v in d.items() if k not in DERIVED_RUBRIC_KEYS})


@dataclass
class Sample:
    """A response used by the loop, with the model that wrote it ("provided" for user-supplied ones)."""

    text: str
    model: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(**d)


@dataclass
class RubricSet:
    """The outcome of refining one prompt.

    `rubrics` are the accepted rubrics in acceptance order and `weights` align with them. `verdicts[k][j]` is
    accepted rubric k on sample j (read off the rubrics themselves; empty for a set with no samples). `tree`
    holds every rubric considered (accepted ones included, same objects).
    `stopped` says why the loop ended: "queue_empty", "rejection_budget", "max_queue" or "failed" (with
    `failure` saying why; the set is then empty). Rubrics still "pending" in the tree were never processed.
    `fallback` is set when the loop accepted nothing and `rubrics` are initial rubrics instead (see
    RefineConfig.fallback); it says why and which ones. Their tree status stays what the loop decided.
    """

    prompt: str
    prompt_id: str | None = None
    rubrics: list[Rubric] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    weight_scheme: str = "uniform"
    weight_note: str | None = None
    tree: list[Rubric] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    references: dict[str, Sample] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    stopped: str = "queue_empty"
    failure: str | None = None
    fallback: str | None = None
    content_hash: str = ""

    # -- identity ---------------------------------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.rubrics]

    @property
    def verdicts(self) -> list[list[bool | None]]:
        """Accepted rubric k's verdict on sample j, for recomputing weights without calls."""
        return [list(r.verdicts) for r in self.rubrics] if self.samples else []

    @property
    def template_version(self) -> str:
        """The prompt templates' version the set was made with (part of the config snapshot, so of the hash)."""
        return str(self.config.get("template_version", ""))

    def compute_hash(self) -> str:
        """sha256 over what determines scores: prompt, accepted texts, weights and the config snapshot."""
        payload = {
            "prompt": self.prompt,
            "rubrics": self.texts,
            "weights": self.weights,
            "weight_scheme": self.weight_scheme,
            "config": self.config,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def seal(self) -> RubricSet:
        self.content_hash = self.compute_hash()
        return self

    @classmethod
    def provided(
        cls, prompt: str, texts: Sequence[str], weights: Sequence[float] | None = None, prompt_id: str | None = None
    ) -> RubricSet:
        """A set from rubrics a user already has (no refinement): uniform weights unless given."""
        taken: set[str] = set()
        rubrics = [Rubric.new(t, origin="provided", taken=taken) for t in texts]
        for r in rubrics:
            r.status = "accepted"
        w = list(weights) if weights is not None else [1.0 / len(rubrics)] * len(rubrics) if rubrics else []
        if len(w) != len(rubrics):
            raise ValueError(f"{len(w)} weights for {len(rubrics)} rubrics")
        scheme = "provided" if weights is not None else "uniform"
        return cls(prompt, prompt_id, rubrics, w, scheme, tree=list(rubrics)).seal()

    # -- scoring ----------------------------------------------------------------------------------------------
    def score(self, verdicts: Sequence[VerdictLike]) -> float | None:
        """Weighted satisfied fraction over the accepted rubrics; unscored verdicts are dropped, weights renormalised.

        Accepts judge Verdicts (their binary `met` is used, as in the paper), bools, P(yes) floats or None.
        """
        return scoring.score_response(self.weights, _plain(verdicts))

    def compare(
        self, va: Sequence[VerdictLike], vb: Sequence[VerdictLike], tie_margin: float = 0.0
    ) -> scoring.PairVerdict | None:
        """"A", "B", "tie", or None when no rubric was scored for both (see rrd.scoring.compare)."""
        return scoring.compare(self.weights, _plain(va), _plain(vb), tie_margin)

    # -- persistence ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "rubrics"}
        d["accepted"] = [r.id for r in self.rubrics]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RubricSet:
        d = {k: v for k, v in d.items() if k not in DERIVED_SET_KEYS}
        tree = [Rubric.from_dict(r) for r in d.pop("tree", [])]
        by_id = {r.id: r for r in tree}
        accepted = [by_id[i] for i in d.pop("accepted", [])]
        samples = [Sample.from_dict(s) for s in d.pop("samples", [])]
        refs = {k: Sample.from_dict(v) for k, v in d.pop("references", {}).items()}
        return cls(rubrics=accepted, tree=tree, samples=samples, references=refs, **d)

    @classmethod
    def from_json(cls, text: str) -> RubricSet:
        return cls.from_dict(json.loads(text))


def _plain(verdicts: Sequence[VerdictLike]) -> list[bool | float | None]:
    """Judge Verdicts as their hard value under the one verdict rule; bools, floats and None as they are."""
    return [verdict_value(v) if isinstance(v, Verdict) else v for v in verdicts]


# ------------------------------------------------------------------------------------------- rubric files
def prompt_key(prompt: str) -> str:
    """Default prompt id: a hash of the text, so rubric sets and pairs match without an id column."""
    return "p-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def load_rubric_sets(path: str) -> dict[str, RubricSet]:
    """RubricSets by prompt id. Lines are full RubricSets, or the short form {"prompt", "rubrics": [...]}."""
    sets: dict[str, RubricSet] = {}
    if not os.path.exists(path):
        return sets
    for row in read_rows(path):
        d = row.data
        try:
            if "tree" in d:
                rs = RubricSet.from_dict(d)
            else:
                texts = row.get("rubrics", kind=list)
                prompt = row.get("prompt")
                rs = RubricSet.provided(prompt, texts, d.get("weights"), prompt_id=d.get("prompt_id"))
        except InputError:  # already says where and what
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, row.line, None, f"not a rubric set: {exc}") from exc
        sets[rs.prompt_id or prompt_key(rs.prompt)] = rs
    return sets
