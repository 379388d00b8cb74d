"""Strict readers for judge output. Anything we cannot read is reported as unscored (None), never as NO."""

from __future__ import annotations

import json
import math
import re

from .types import TokenLogprobs

_YES = {"YES", "Y", "TRUE"}
_NO = {"NO", "N", "FALSE"}
_WORD = re.compile(r"[A-Za-z]+")


def _norm_token(tok: str) -> str:
    return tok.strip().strip("\"'`*.,:;[]()").upper()


def token_label(tok: str) -> bool | None:
    """True for a YES-like token, False for NO-like, None otherwise ("Yes", " YES", '"NO' all count)."""
    t = _norm_token(tok)
    if t in _YES:
        return True
    if t in _NO:
        return False
    return None


def parse_yes_no(text: str) -> bool | None:
    """Read a one-word verdict. The first word must be YES or NO; hedged or empty answers are unscored."""
    m = _WORD.search(text or "")
    if not m:
        return None
    return token_label(m.group(0))


def p_yes_from_top(top: list[tuple[str, float]]) -> float | None:
    """P(YES) renormalised over the YES/NO mass among the top alternatives at one position.

    Returns None when neither YES nor NO is among them: the model was not answering the question.
    """
    p_yes = p_no = 0.0
    for tok, lp in top:
        label = token_label(tok)
        if label is True:
            p_yes += math.exp(lp)
        elif label is False:
            p_no += math.exp(lp)
    total = p_yes + p_no
    return p_yes / total if total > 0 else None


def first_verdict_p_yes(logprobs: list[TokenLogprobs]) -> float | None:
    """P(YES) at the first generated token that is a YES/NO word (skips leading quotes or spaces)."""
    for tl in logprobs:
        if token_label(tl.token) is not None:
            return p_yes_from_top(tl.top or [(tl.token, tl.logprob)])
        if _norm_token(tl.token):  # a real word came first: the answer did not start with a verdict
            return None
    return None


def parse_json_verdicts(text: str, k: int) -> list[bool | None] | None:
    """Read a strict JSON list of k "YES"/"NO" strings (booleans accepted). Wrong length -> None (all unscored).

    A code fence around the list is tolerated; any other prose is not, so a rambling answer is unscored.
    Individual entries that are neither YES nor NO are unscored on their own.
    """
    s = (text or "").strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", s, flags=re.S)
    if fence:
        s = fence.group(1)
    try:
        data = json.loads(s)
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(data, list) or len(data) != k:
        return None
    out: list[bool | None] = []
    for item in data:
        if isinstance(item, bool):
            out.append(item)
        elif isinstance(item, str):
            out.append(token_label(item))
        else:
            out.append(None)
    return out


def batch_p_yes(logprobs: list[TokenLogprobs], k: int) -> list[float | None]:
    """P(YES) for each of the k verdict tokens of a JSON-list answer, in order; None where not readable."""
    positions = [tl for tl in logprobs if token_label(tl.token) is not None]
    if len(positions) != k:
        return [None] * k
    return [p_yes_from_top(tl.top or [(tl.token, tl.logprob)]) for tl in positions]


_PAIR = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_pairwise(text: str) -> str | None:
    """The last [[A]]/[[B]]/[[C]] in the text; "tie" for C. None when absent."""
    found = _PAIR.findall(text or "")
    if not found:
        return None
    last = found[-1]
    return "tie" if last == "C" else last


def pairwise_p_a(logprobs: list[TokenLogprobs]) -> float | None:
    """P(A) over the A/B mass at the token of the last [[A]]/[[B]]/[[C]] verdict: the token that follows the
    text "[[" (tokenisers split "[[A]]" as "[[", "A", "]]" or fold the brackets into neighbours). None when no
    verdict token is found or neither A nor B is among its alternatives (a confident [[C]] says nothing of A vs B).
    """
    text = ""
    found: TokenLogprobs | None = None
    for tl in logprobs:
        if text.rstrip().endswith("[[") and tl.token.strip().upper() in ("A", "B", "C"):
            found = tl
        text += tl.token
    if found is None:
        return None
    p_a = p_b = 0.0
    for tok, lp in found.top or [(found.token, found.logprob)]:
        t = tok.strip().upper()
        if t == "A":
            p_a += math.exp(lp)
        elif t == "B":
            p_b += math.exp(lp)
    total = p_a + p_b
    return p_a / total if total > 0 else None
