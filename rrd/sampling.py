"""The responses RRD looks at: N samples per prompt, and the strong/weak pair for the misalignment check.

Each sample is a distinct cache entry (SamplingParams.sample_index) with a fixed seed, so a rerun with the same
cache sees exactly the same N responses, and a rerun without it is as reproducible as the backend allows.
A failed generation is dropped and reported, never replaced by an empty string (that would be graded).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Sequence

from judges.judge import Judge
from judges.types import Completion, SamplingParams

from . import prompts
from .config import RefineConfig
from .records import Sample


@dataclass
class JudgePool:
    """Model name -> Judge, for samplers and reference models.

    Names not supplied by the caller get a Judge built from the proposer's config with that model, sharing the
    proposer's cache and accounting (so every call is still counted once); `aclose` releases only those.
    """

    proposer: Judge
    given: Mapping[str, Judge] = field(default_factory=dict)
    built: dict[str, Judge] = field(default_factory=dict)

    def get(self, name: str) -> Judge:
        if name in self.given:
            return self.given[name]
        if name == self.proposer.model or name == self.proposer.config.model:
            return self.proposer
        if name not in self.built:
            config = replace(self.proposer.config, model=name)
            self.built[name] = Judge(config, cache=self.proposer.cache, accounting=self.proposer.accounting)
        return self.built[name]

    def sampler_names(self, config: RefineConfig) -> list[str]:
        """config.samplers, else the caller's samplers in their order, else the proposer alone."""
        if config.samplers:
            return list(config.samplers)
        if self.given:
            return list(self.given)
        return [self.proposer.config.model]

    async def aclose(self) -> None:
        for j in self.built.values():
            await j.aclose()
        self.built.clear()


OnCompletion = Callable[[Completion], object]


def _ignore(_: Completion) -> None:
    return None


async def _sample_one(
    judge: Judge, name: str, prompt: str, count: int, config: RefineConfig, record: OnCompletion
) -> list[Sample | str]:
    calls = [
        (
            prompts.user_turn(prompt),
            SamplingParams(
                temperature=config.sample_temperature,
                top_p=config.sample_top_p,
                max_tokens=config.sample_max_tokens,
                seed=config.seed,
                sample_index=i,
            ),
        )
        for i in range(count)
    ]
    out: list[Sample | str] = []
    for i, c in enumerate(await judge.generate_many(calls)):
        record(c)
        if c.ok and c.text.strip():
            out.append(Sample(c.text, name))
        else:
            out.append(f"sample {i} from {name} failed: {c.error or 'empty response'}")
    return out


async def sample_responses(
    prompt: str, config: RefineConfig, pool: JudgePool, record: OnCompletion = _ignore
) -> tuple[list[Sample], list[str]]:
    """N responses in a fixed order (sampler order, then sample index), plus one error line per failed sample.

    `record` sees every completion (the caller's call/cost tally).
    """
    plan = config.sample_plan(pool.sampler_names(config))
    results = await asyncio.gather(*(_sample_one(pool.get(m), m, prompt, k, config, record) for m, k in plan))
    samples: list[Sample] = []
    errors: list[str] = []
    for batch in results:
        for s in batch:
            (samples if isinstance(s, Sample) else errors).append(s)  # type: ignore[arg-type]
    return samples, errors


def provided_samples(responses: Sequence[str | Sample]) -> list[Sample]:
    return [r if isinstance(r, Sample) else Sample(r, "provided") for r in responses]


async def reference_responses(
    prompt: str, config: RefineConfig, pool: JudgePool, record: OnCompletion = _ignore
) -> tuple[dict[str, Sample], list[str]]:
    """The strong and weak responses for the misalignment check (defaults: see RefineConfig)."""
    strong_name = config.strong_model or pool.sampler_names(config)[0]
    greedy = SamplingParams(temperature=0.0, max_tokens=config.reference_max_tokens, seed=config.seed)
    strong_call = pool.get(strong_name).generate(prompts.user_turn(prompt), greedy)
    if config.weak_model:
        weak_name = config.weak_model
        weak_call = pool.get(weak_name).generate(prompts.user_turn(prompt), greedy)
    else:
        weak_name = f"{pool.proposer.model} (low-effort instruction)"
        weak_call = pool.proposer.generate(prompts.weak_reference(prompt), greedy)
    strong, weak = await asyncio.gather(strong_call, weak_call)
    refs: dict[str, Sample] = {}
    errors: list[str] = []
    for role, name, c in (("strong", strong_name, strong), ("weak", weak_name, weak)):
        record(c)
        if c.ok and c.text.strip():
            refs[role] = Sample(c.text, name)
        else:
            errors.append(f"{role} reference from {name} failed: {c.error or 'empty response'}")
    return refs, errors
