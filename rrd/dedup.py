"""Duplicate and near-duplicate rubrics, caught before any judge call is spent on them.

Small proposers repeat themselves: asked to decompose a rubric they hand back the parent, a sibling or a rubric
they were shown as "already in use", often with different markup ("the set \\( A \\)" vs "the set A") or word
order. Exact text matching misses those, and each copy then costs N grading calls and a rejection. This module
gives every rubric a canonical key (markup, punctuation, case and whitespace removed) and a cheap lexical
similarity (rapidfuzz's character token-sort ratio and the overlap of whole words, so word order does not
matter and extra or missing words do), so the loop can drop repeats once, with the score and the rubric they
repeat recorded.

Lexical similarity is deliberately conservative: a refinement of a rubric adds words and so scores well below a
copy, and two rubrics that differ by a negation ("does not", "never") or a number are never near-duplicates
however many words they share. Semantic overlap stays the job of the LLM overlap check.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from rapidfuzz import fuzz

# LaTeX math delimiters and markdown emphasis/code/heading markers: presentation, not meaning.
_LATEX_DELIMS = re.compile(r"\\[()\[\]]|\$+")
_LATEX_CMD = re.compile(r"\\(?:text|mathrm|mathbf|mathit|operatorname|textbf|emph)\s*\{([^{}]*)\}")
_LATEX_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad")
_MARKDOWN = re.compile(r"[*_`#~>]+")
# Punctuation goes, except a dot or comma inside a token ("3.5", "1,000", "v2.1"): numbers keep their meaning.
_NON_WORD = re.compile(r"[^\w\s.,]+|(?<!\w)[.,]+|[.,]+(?!\w)")
_SPACE = re.compile(r"\s+")
# Every rubric starts "The response ...": the shared stem would make any two short rubrics look alike.
_STEM = re.compile(
    r"^(?:(?:does|do|is|did)\s+)?(?:the\s+)?(?:response|answer|reply|output)(?:\s+(?:should|must))?(?:\s+|$)")
_NEGATIONS = frozenset({"not", "no", "never", "none", "without", "nor", "neither", "cannot", "fails", "lacks",
                        "avoids", "omits", "doesnt", "isnt", "dont", "wont", "cant"})


def canonical(text: str) -> str:
    """Lowercase words only: LaTeX delimiters and spacing, markdown, punctuation and extra whitespace removed."""
    s = _LATEX_CMD.sub(r"\1", text or "")
    s = _LATEX_SPACING.sub(" ", s)
    s = _LATEX_DELIMS.sub(" ", s)
    s = _MARKDOWN.sub(" ", s)
    s = s.replace("'", "").replace("\u2019", "")  # "doesn't" -> "doesnt", one negation word
    s = _NON_WORD.sub(" ", s.lower())
    return _SPACE.sub(" ", s).strip()


def _body(key: str) -> str:
    return _STEM.sub("", key)


def _signature(key: str) -> Counter[str]:
    """Words that change a rubric's meaning however few they are: negations and numbers ("x = 3" vs "x = 4")."""
    return Counter(w for w in key.split() if w in _NEGATIONS or any(ch.isdigit() for ch in w))


def _score(a_body: str, b_body: str, cutoff: float = 0.0) -> float:
    """0-100, the lower of two word-order-free similarities of two stem-less canonical texts: characters
    (rapidfuzz token-sort ratio: tolerates a slipped letter) and whole words (Dice overlap of the word
    multisets: one different word in a short rubric is another rubric, one in a long rubric may be a slip)."""
    chars = fuzz.token_sort_ratio(a_body, b_body, score_cutoff=cutoff)
    if chars < cutoff or chars == 0:
        return float(chars)
    a, b = Counter(a_body.split()), Counter(b_body.split())
    words = 200 * sum((a & b).values()) / (sum(a.values()) + sum(b.values()))
    return float(min(chars, words))


def similarity(a: str, b: str) -> float:
    """0-100: how nearly `a` repeats `b` (markup, case, word order and the "The response" stem ignored)."""
    return _score(_body(canonical(a)), _body(canonical(b)))


@dataclass(frozen=True)
class Reference:
    """A rubric a candidate is compared against; `owner` identifies it to the caller (e.g. a rubric id)."""

    text: str
    owner: str


@dataclass(frozen=True)
class Match:
    """Why a candidate repeats an existing rubric: `kind` is "duplicate" (same canonical text) or
    "near_duplicate" (similarity >= threshold); `ref` is the rubric it repeats, `score` the similarity."""

    kind: str
    ref: Reference
    score: float


class DuplicateIndex:
    """Canonical keys of every rubric seen so far, and the near-duplicate test against them.

    `threshold` is the similarity (0-100) from which two rubrics with the same negations and numbers count as
    repeats;
    None switches the near-duplicate test off (exact canonical matches are still caught).
    """

    def __init__(self, threshold: float | None = 90.0):
        self.threshold = threshold
        # (body without the stem, its negations and numbers, reference), computed once per rubric
        self._refs: list[tuple[str, Counter[str], Reference]] = []
        self._keys: dict[str, Reference] = {}

    def add(self, text: str, owner: str) -> None:
        key = canonical(text)
        ref = Reference(text, owner)
        self._keys.setdefault(key, ref)
        self._refs.append((_body(key), _signature(key), ref))

    def match(self, text: str, extra: Sequence[Reference] = ()) -> Match | None:
        """The rubric `text` repeats, among those added and `extra` (e.g. earlier rubrics of the same answer),
        or None. An exact canonical match wins over a near one; among near ones the most similar wins."""
        key = canonical(text)
        if not _body(key):
            return Match("duplicate", Reference("", ""), 100.0)  # nothing but the stem or markup: no rubric
        candidates = [(canonical(r.text), r) for r in extra]
        for k, r in candidates:
            if k == key:
                return Match("duplicate", r, 100.0)
        if key in self._keys:
            return Match("duplicate", self._keys[key], 100.0)
        if self.threshold is None:
            return None
        signature = _signature(key)
        body = _body(key)
        best: Match | None = None
        for b, sig, r in [(_body(k), _signature(k), r) for k, r in candidates] + self._refs:
            if sig != signature:
                continue  # "mentions X" vs "does not mention X", "3 steps" vs "4 steps": other checks
            score = _score(body, b, self.threshold)
            if score >= self.threshold and (best is None or score > best.score):
                best = Match("near_duplicate", r, score)
        return best


def degenerate(texts: Sequence[str], repeats: int) -> tuple[str, int] | None:
    """(the repeated rubric, how often) when one canonical rubric occurs `repeats` or more times in one answer:
    the decoding loop of a small model, not a list of rubrics."""
    if not texts:
        return None
    key, n = Counter(canonical(t) for t in texts).most_common(1)[0]
    if n < repeats:
        return None
    first = next(t for t in texts if canonical(t) == key)
    return first, n


#: owner of an earlier rubric of the same answer in the duplicate index
SIBLING = "\x00sibling"


def describe_repeat(m: Match, parent_id: str | None) -> str:
    """The rubric a proposed one repeats, in words for the proposer and the tree."""
    if m.ref.owner == SIBLING:
        return f"another rubric of the same answer ({m.ref.text!r})"
    if not m.ref.text:
        return "nothing (the rubric is empty once markup is removed)"
    if parent_id is not None and m.ref.owner == parent_id:
        return f"the rubric being refined ({m.ref.text!r})"
    return f"rubric {m.ref.owner}, already proposed ({m.ref.text!r})"


def repeat_problems(texts: Sequence[str], repeats: Sequence[tuple[int, str, Match]], parent_id: str | None,
                    degenerate_repeats: int) -> list[str]:
    """What is wrong with a proposer's answer, for the repair turn: a decomposition's children that repeat
    existing rubrics, or an initial list that is one rubric over and over."""
    if parent_id is not None:
        return [f"rubric {i + 1} ({t!r}) is {'a copy' if m.kind == 'duplicate' else 'a rewording'} of "
                f"{describe_repeat(m, parent_id)}" for i, t, m in repeats]
    loop = degenerate(texts, degenerate_repeats)
    return [f"it repeats the rubric {loop[0]!r} {loop[1]} times"] if loop else []
