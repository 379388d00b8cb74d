"""Next-token choice from raw logits with numpy, for backends that hand us logits (llama.cpp).

The semantics are the transformers backend's (judges/backends/local.py `_pick`): logprobs are those of the raw
model distribution; the repetition penalty follows HF's rule over the tokens this request generated (not the
prompt: rubrics may quote it); greedy when temperature is 0, else nucleus sampling from one generator per request,
seeded by (seed, sample_index) so the i-th sample is reproducible and distinct from the others.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import numpy as np

from ..types import SamplingParams, TokenLogprobs

#: at least this many top alternatives are returned per token when logprobs are requested (P(YES) needs them)
MIN_TOP_LOGPROBS = 20
#: nucleus candidates looked at before falling back to a full sort (a 150k-entry sort per token is slow)
_NUCLEUS_CANDIDATES = 2048


def seed_for(params: SamplingParams) -> int:
    if params.seed is None:
        return secrets.randbits(62)
    return (params.seed * 1_000_003 + params.sample_index) % (1 << 62)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = float(x.max())
    return x - (m + float(np.log(np.exp(x - m).sum())))


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first."""
    k = min(k, values.shape[0])
    idx = np.argpartition(-values, k - 1)[:k]
    return idx[np.argsort(-values[idx], kind="stable")]


class Sampler:
    """Chooses one request's tokens, one call per step."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self.rng = np.random.default_rng(seed_for(params)) if params.temperature > 0 else None

    def pick(
        self,
        logits: np.ndarray,
        generated: list[int],
        logprobs: list[TokenLogprobs],
        text_of: Callable[[int], str],
    ) -> int:
        """The next token; appends its TokenLogprobs to `logprobs` when the request asked for them."""
        p = self.params
        x = np.asarray(logits, dtype=np.float32)
        raw = x
        if p.repetition_penalty != 1.0 and generated:
            x = x.copy()
            seen = np.fromiter(set(generated), dtype=np.int64)
            vals = x[seen]
            x[seen] = np.where(vals > 0, vals / p.repetition_penalty, vals * p.repetition_penalty)
        if p.temperature <= 0 or self.rng is None:
            tok = int(np.argmax(x))
        else:
            tok = self._nucleus(x / p.temperature, p.top_p)
        if p.logprobs:
            logp = _log_softmax(raw)
            k = max(p.top_logprobs, MIN_TOP_LOGPROBS)
            top = [(text_of(int(i)), float(logp[i])) for i in _top(logp, k)]
            logprobs.append(TokenLogprobs(token=text_of(tok), logprob=float(logp[tok]), top=top))
        return tok

    def _nucleus(self, z: np.ndarray, top_p: float) -> int:
        assert self.rng is not None
        z = z - z.max()
        probs = np.exp(z)
        probs /= probs.sum()
        if top_p >= 1.0:
            return int(self.rng.choice(probs.shape[0], p=probs))
        order = _top(probs, _NUCLEUS_CANDIDATES)
        if float(probs[order].sum()) < top_p:  # a flat distribution: the nucleus is wider than the candidates
            order = np.argsort(-probs, kind="stable")
        sp = probs[order]
        keep = (np.cumsum(sp) - sp) < top_p  # the smallest prefix whose mass reaches top_p (HF's rule)
        sp = sp[keep]
        return int(order[keep][self.rng.choice(sp.shape[0], p=sp / sp.sum())])
