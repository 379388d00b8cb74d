"""The responses RRD looks at: N samples per prompt, and the strong/weak pair for the misalignment check.

Each sample is a distinct cache entry (SamplingParams.sample_index) with a fixed seed, so a rerun with the same
cache sees exactly the same N responses, and a rerun without it is as reproducible as the backend allows.
A failed generation is dropped and reported, never replaced by an empty string (that would be graded).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Sequence

from judges.judge import Judge
from judges.types import Completion, Message, SamplingParams

from . import prompts
from .config import RefineConfig
from .pool import Models
from .records import Sample


@dataclass(frozen=True)
class _Call:
    judge: Judge
    name: str  # the model, as the records name it
    role: str  # "sample" or a reference role ("strong", "weak")
    messages: list[Message]
    params: SamplingParams


def _sample_calls(prompt: str, config: RefineConfig, pool: Models) -> list[_Call]:
    """N samples in a fixed order (sampler order, then sample index), each its own cache entry."""
    return [
        _Call(pool.sampler(m), m, "sample", prompts.user_turn(prompt),
              SamplingParams(temperature=config.sample_temperature, top_p=config.sample_top_p,
                             max_tokens=config.sample_max_tokens, seed=config.seed, sample_index=i))
        for m, k in config.sample_plan(pool.sampler_names(config))
        for i in range(k)
    ]


def _reference_calls(prompt: str, config: RefineConfig, pool: Models) -> list[_Call]:
    """The strong and weak responses for the misalignment check (defaults: see RefineConfig)."""
    greedy = SamplingParams(temperature=0.0, max_tokens=config.reference_max_tokens, seed=config.seed)
    strong = config.strong_model or pool.sampler_names(config)[0]
    calls = [_Call(pool.sampler(strong), strong, "strong", prompts.user_turn(prompt), greedy)]
    if config.weak_model:
        calls.append(_Call(pool.sampler(config.weak_model), config.weak_model, "weak", prompts.user_turn(prompt), greedy))
    else:
        calls.append(_Call(pool.proposer, f"{pool.proposer.model} (low-effort instruction)", "weak",
                           prompts.weak_reference(prompt), greedy))
    return calls


async def _by_judge(calls: Sequence[_Call]) -> list[Completion]:
    """Every call, as one generate_many per judge: an in-process model then decodes the samples and the references
    it writes as one batch, several times faster than one after the other."""
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(calls):
        groups.setdefault(id(c.judge), []).append(i)
    out: list[Completion] = [Completion()] * len(calls)

    async def run(idx: list[int]) -> None:
        done = await calls[idx[0]].judge.generate_many([(calls[i].messages, calls[i].params) for i in idx])
        for i, c in zip(idx, done):
            out[i] = c

    await asyncio.gather(*(run(idx) for idx in groups.values()))
    return out


@dataclass
class Drawn:
    """What `draw` returns: the samples, the references by role, and one error line per failed generation."""

    samples: list[Sample] = field(default_factory=list)
    references: dict[str, Sample] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def draw(prompt: str, config: RefineConfig, pool: Models, *, samples: bool, references: bool,
               record: Callable[[str, Completion], object] | None = None) -> Drawn:
    """The samples and/or the references of one prompt, asked together. A failed or empty generation is dropped
    and reported, never replaced by an empty string (that would be graded). `record(stage, completion)` sees
    every completion ("sampling" or "references": the caller's call/cost tally)."""
    calls = (_sample_calls(prompt, config, pool) if samples else []) + (
        _reference_calls(prompt, config, pool) if references else [])
    drawn = Drawn()
    for call, c in zip(calls, await _by_judge(calls)):
        if record is not None:
            record("sampling" if call.role == "sample" else "references", c)
        if c.ok and c.text.strip():
            if call.role == "sample":
                drawn.samples.append(Sample(c.text, call.name))
            else:
                drawn.references[call.role] = Sample(c.text, call.name)
        elif call.role == "sample":
            drawn.errors.append(f"sample {call.params.sample_index} from {call.name} failed: "
                                f"{c.error or 'empty response'}")
        else:
            drawn.errors.append(f"{call.role} reference from {call.name} failed: {c.error or 'empty response'}")
    return drawn


def provided_samples(responses: Sequence[str | Sample]) -> list[Sample]:
    return [r if isinstance(r, Sample) else Sample(r, "provided") for r in responses]
