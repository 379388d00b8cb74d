"""Chat prompt -> token ids, with message contents that can never become control tokens; and where an answer
ends (its stop strings, its final words). What the in-process engines share about a request's text.

A graded response may contain control strings such as "<|im_end|>"; encoding the rendered chat as one string
would turn them into real special tokens, letting the response close its turn and forge an answer. So the template
is rendered around sentinels and only its own text may yield special tokens. Shared by the local backends, which
differ only in how they render a template and tokenize a piece.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..types import Message, SamplingParams

#: render(messages) -> the prompt text with the generation prompt appended
Render = Callable[[Sequence[Message]], str]
#: tokenize(text, special) -> ids; `special=False` must encode control strings as plain text
Tokenize = Callable[[str, bool], list[int]]


def encode_chat(messages: Sequence[Message], render: Render, tokenize: Tokenize) -> list[int]:
    marks = [f"\ue000rrd{i}\ue001" for i in range(len(messages))]
    text = render([{**m, "content": mark} for m, mark in zip(messages, marks)])
    pieces: list[tuple[str, bool]] = []  # (text, is_content)
    pos = 0
    for m, mark in zip(messages, marks):
        at = text.find(mark, pos)
        if at < 0 or text.count(mark) != 1:  # a template that rewrites contents: encode it as rendered
            return tokenize(render(messages), True)
        pieces += [(text[pos:at], False), (m.get("content", ""), True)]
        pos = at + len(mark)
    pieces.append((text[pos:], False))
    ids: list[int] = []
    for piece, is_content in pieces:
        if piece:
            ids += tokenize(piece, not is_content)
    return ids


def encode_request(messages: Sequence[Message], answer_prefix: str, render: Render,
                   tokenize: Tokenize) -> tuple[list[int], int]:
    """encode_chat's ids followed by the answer's known start (SamplingParams.answer_prefix, plain text), and
    how many of the ids are that start: the engine evaluates them as prompt, but they are part of the answer."""
    ids = encode_chat(messages, render, tokenize)
    start = tokenize(answer_prefix, False) if answer_prefix else []
    return ids + start, len(start)


def stop_cut(text: str, stops: Sequence[str]) -> int | None:
    """Where a generated text ends by SamplingParams.stop: the index of the earliest stop string in it, or None."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def answer_ends(text: str, params: SamplingParams) -> bool:
    """Whether a generated text is a whole answer by the request's own rules: it holds one of its stop strings, or
    it is one of its final words (SamplingParams). The in-process engines ask after every token of a request that
    has either."""
    if params.stop and stop_cut(text, params.stop) is not None:
        return True
    word = text.strip().strip("\"'`*").strip().upper()
    return bool(word) and any(word == w.upper() for w in params.final_words)
