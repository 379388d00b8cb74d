"""The numpy sampler of the llama.cpp backend: greedy, nucleus, repetition penalty, logprobs, seeds."""

from __future__ import annotations

import math

import numpy as np

from judges.backends.sampler import Sampler
from judges.types import SamplingParams, TokenLogprobs

V = 5000


def text_of(t: int) -> str:
    return f"t{t}"


def logits(peaks: dict[int, float]) -> np.ndarray:
    x = np.full(V, -10.0, dtype=np.float32)
    for t, v in peaks.items():
        x[t] = v
    return x


def test_greedy_picks_argmax_and_records_raw_logprobs() -> None:
    s = Sampler(SamplingParams(logprobs=True, top_logprobs=3))
    out: list[TokenLogprobs] = []
    x = logits({7: 5.0, 9: 4.0, 11: 1.0})
    assert s.pick(x, [], out, text_of) == 7
    lp = out[0]
    assert lp.token == "t7" and len(lp.top) == 20  # at least 20 alternatives, whatever was asked
    assert [t for t, _ in lp.top[:3]] == ["t7", "t9", "t11"]
    z = x.astype(np.float64)
    expected = z[7] - np.log(np.exp(z).sum())
    assert math.isclose(lp.logprob, expected, abs_tol=1e-4)


def test_repetition_penalty_follows_hf_rule_and_keeps_raw_logprobs() -> None:
    s = Sampler(SamplingParams(repetition_penalty=2.0, logprobs=True))
    out: list[TokenLogprobs] = []
    x = logits({7: 5.0, 9: 3.0})
    # 7 generated before: 5.0 / 2 = 2.5 < 3.0, so 9 wins; logprobs are still the model's own
    assert s.pick(x, [7], out, text_of) == 9
    assert out[0].top[0][0] == "t7"
    neg = logits({7: -1.0, 9: -1.5})
    # a negative logit is multiplied: -1.0 * 2 = -2.0 < -1.5
    assert Sampler(SamplingParams(repetition_penalty=2.0)).pick(neg, [7], [], text_of) == 9
    assert x[7] == 5.0  # the caller's buffer is not modified


def test_nucleus_keeps_only_the_smallest_set_reaching_top_p() -> None:
    x = logits({1: 10.0, 2: 9.0})  # p(1) ~ 0.73, p(2) ~ 0.27, the rest ~ 0
    narrow = Sampler(SamplingParams(temperature=1.0, top_p=0.5, seed=0))
    assert {narrow.pick(x, [], [], text_of) for _ in range(200)} == {1}
    wide = Sampler(SamplingParams(temperature=1.0, top_p=0.99, seed=0))
    picks = [wide.pick(x, [], [], text_of) for _ in range(400)]
    assert set(picks) <= {1, 2} and 0.15 < picks.count(2) / len(picks) < 0.4


def test_flat_distribution_falls_back_to_a_full_sort() -> None:
    s = Sampler(SamplingParams(temperature=1.0, top_p=0.95, seed=3))
    flat = np.zeros(V, dtype=np.float32)
    picks = {s.pick(flat, [], [], text_of) for _ in range(300)}
    assert len(picks) > 250 and max(picks) < V


def test_seed_and_sample_index_fix_the_draws() -> None:
    x = np.random.default_rng(0).normal(size=V).astype(np.float32)

    def draws(seed: int, index: int) -> list[int]:
        s = Sampler(SamplingParams(temperature=1.0, top_p=0.9, seed=seed, sample_index=index))
        return [s.pick(x, [], [], text_of) for _ in range(20)]

    assert draws(5, 0) == draws(5, 0)
    assert draws(5, 0) != draws(5, 1)
