"""Records passed between the judge layer and its callers.

Everything here is a plain dataclass that round-trips through JSON, because verdicts, completions and usage
are written to append-only result files and to the on-disk cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
Message = dict[str, str]  # {"role": ..., "content": ...}, the OpenAI chat shape every backend accepts


def content_text(content: Any) -> str:
    """A chat message's content as text: a string as is, or the text parts of a multimodal content list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) if isinstance(p, dict)
                       and p.get("type", "text") == "text" else "" for p in content)
    return str(content)


def last_user_turn(messages: Any) -> str | None:
    """The text of the last user turn of a chat conversation (the prompt rubrics are written for), or None
    when it has none."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else None


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings; part of the cache key, so two runs with different settings never share answers."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    # Distinguishes the i-th of several samples drawn with identical settings (response sampling), so the
    # cache returns N different samples instead of one sample N times.
    sample_index: int = 0
    # HF/vLLM/llama.cpp semantics (1.0 = off): logits of tokens already generated are divided (if positive) or
    # multiplied by it. Breaks the decoding loops of small models; OpenAI's own API has no such setting.
    repetition_penalty: float = 1.0
    # Text the answer is known to start with (an overlap check's `{"overlaps":`). An in-process engine evaluates
    # it with the prompt, in one batch, instead of decoding it a token at a time, and returns it as the start of
    # the completion; an API model writes it itself. Decoding is the dear part of a short answer on a CPU.
    answer_prefix: str = ""
    # Text that ends the answer (OpenAI's `stop`): generation stops once the generated text holds one, and the
    # completion's text ends before it. A check whose answer is a JSON object stops at its closing brace instead of
    # decoding the end-of-turn token after it: on a CPU every decoded token costs a forward pass.
    stop: tuple[str, ...] = ()
    # Words that are a whole answer by themselves (a verdict's YES and NO): an in-process engine ends the answer
    # once its text is one of them (case aside, leading and trailing spaces, quotes and asterisks aside) instead of
    # decoding one more token to find the end of turn, which on a CPU costs a forward pass per verdict. An API model
    # has no such setting and decodes as usual: the text reads the same unless the model would have gone on to
    # make a longer word of it ("Yes" + "terday": read as YES here, unscored whole; never seen in our judges).
    final_words: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The settings as the cache key holds them: an empty answer_prefix, stop or final_words is left out, so the
        requests that have none keep the keys they had before the fields existed."""
        d = asdict(self)
        for name in ("answer_prefix", "stop", "final_words"):
            if not d[name]:
                del d[name]
        return d


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    #: of the prompt tokens, those served from a cache of evaluated prefixes (a local engine's KV prefix reuse, a
    #: provider's prompt cache) rather than evaluated for this call: prompt evaluation is what a CPU pays for
    cached_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.cached_tokens += other.cached_tokens


@dataclass
class TokenLogprobs:
    """One generated token with its alternatives; enough to read P(YES) at a verdict position."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Request:
    """One chat completion to run. `template_version` makes prompt-template edits invalidate the cache."""

    messages: list[Message]
    params: SamplingParams = field(default_factory=SamplingParams)
    template_version: str = ""


@dataclass
class Completion:
    """What a backend returns for a Request. `error` set means the call failed after all retries."""

    text: str = ""
    logprobs: list[TokenLogprobs] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    cached: bool = False
    error: str | None = None
    attempts: int = 1
    refused: bool = False  # not sent because the budget would be exceeded
    #: whether sending the request again may succeed; False for errors that would repeat (a 4xx other than
    #: 408/409/425/429, a prompt longer than the model's context), which a re-run does not retry
    retryable: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Completion:
        return cls(
            text=d.get("text", ""),
            logprobs=[
                TokenLogprobs(t["token"], t["logprob"], [tuple(x) for x in t.get("top", [])])  # type: ignore[misc]
                for t in d.get("logprobs", [])
            ],
            usage=Usage(**d.get("usage", {})),
            latency_s=d.get("latency_s", 0.0),
            cached=d.get("cached", False),
            error=d.get("error"),
            attempts=d.get("attempts", 1),
            refused=d.get("refused", False),
            retryable=d.get("retryable", True),
        )


#: how the reason of an unscored verdict starts when its call failed (text for people; code reads the typed
#: `Verdict.error` / `Verdict.retryable`, never this prefix)
CALL_FAILED = "call failed: "
#: ... and when the failure would repeat (not retried)
CALL_FAILED_PERMANENTLY = "call failed (not retryable): "


def failure_reason(completion: Completion) -> str:
    """The reason recorded for a verdict whose call failed; says whether a re-run retries it."""
    prefix = CALL_FAILED if completion.retryable else CALL_FAILED_PERMANENTLY
    return prefix + (completion.error or "")


def unscored_kind(error: str | None, retryable: bool, missing: bool) -> str | None:
    """The class of an answer that gave nothing usable, from typed facts: a call that failed and may pass on a
    re-run, one that would fail again, or an answer that arrived unreadable; None when the answer is usable."""
    if error is not None:
        return "call failed" if retryable else "failed, not retryable"
    return "unreadable" if missing else None


@dataclass
class Verdict:
    """The judge's answer to one criterion for one response.

    `met` is None when the answer could not be read ("unscored"): callers must drop it, never count it as NO.
    """

    criterion: str
    met: bool | None
    p_yes: float | None = None
    raw: str = ""
    reason: str | None = None  # why it is unscored, or the grader's explanation where one is given
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    #: the call's error when the call failed after all retries (the verdict is then unscored); None otherwise
    error: str | None = None
    #: with `error`: whether sending the call again may succeed (a re-run retries only these)
    retryable: bool = True

    @property
    def scored(self) -> bool:
        return self.met is not None

    @property
    def failed(self) -> bool:
        """The call behind it failed (as opposed to an answer that arrived and could not be read)."""
        return self.error is not None

    @property
    def unreadable(self) -> bool:
        """An answer arrived but held no readable YES/NO."""
        return self.met is None and self.error is None

    @property
    def kind(self) -> str | None:
        """Why it is unscored, as a class: "call failed", "failed, not retryable", "unreadable"; None if scored."""
        return unscored_kind(self.error, self.retryable, self.met is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: how a verdict becomes g_k: "soft" = P(YES) where the judge gave one, "hard" = the 0/1 verdict (the paper)
ScoreMode = Literal["soft", "hard"]


def verdict_value(verdict: Verdict, soft: bool = False) -> bool | float | None:
    """The one rule that turns a verdict into the g_k a score uses, for rewards, `rrd judge` and `rrd eval`.

    An unscored verdict (a failed call, or an answer with no readable YES/NO) is None, dropped from the score,
    whatever the logprobs say: a P(YES) read off an answer that is not a verdict measures nothing. Otherwise the
    hard verdict, or with `soft` its P(YES), falling back to the hard verdict where the judge gave none."""
    if verdict.met is None:
        return None
    if soft and verdict.p_yes is not None:
        return float(verdict.p_yes)
    return verdict.met


@dataclass
class PairVerdict:
    """A direct pairwise judgement. winner is "A", "B", "tie", or None when unparseable/failed."""

    winner: Literal["A", "B", "tie"] | None
    raw: str = ""
    reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    #: the call's error when it failed after all retries (winner is then None)
    error: str | None = None
    retryable: bool = True
    #: P(A) over A and B at the verdict token (judges.parsing.pairwise_p_a), when the judge gave logprobs and the
    #: verdict was readable; the soft tie-break of the two-game protocol
    p_a: float | None = None

    @property
    def kind(self) -> str | None:
        """Why there is no winner, as a class (see Verdict.kind); None when there is one."""
        return unscored_kind(self.error, self.retryable, self.winner is None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flip(winner: str | None) -> str | None:
    """A pairwise winner on the swapped pair (B, A), expressed in the original order."""
    return {"A": "B", "B": "A"}.get(winner, winner) if winner else winner
