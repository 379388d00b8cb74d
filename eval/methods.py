"""The judge methods compared side by side under one judge model, as named on the command line.

`direct` is the pairwise judge (order-sensitive: two games). Every other method is pointwise rubric scoring
(order-free: one game) and differs only in how its rubrics are made, which is a RefineConfig override on top of
the user's settings: prompt-only rubrics, response-conditioned rubrics without recursion or filters, full RRD
with each weighting, and full RRD (WU weights) with one stage switched off at a time (ablations).
Methods that share rubric-generation calls share them through the judge cache, so running several is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rrd.config import RefineConfig

MethodKind = Literal["pairwise", "rubric"]

_NO_LOOP = {"decompose": False, "misalignment": False, "overlap": False, "conflict": False}


@dataclass(frozen=True)
class Method:
    name: str
    kind: MethodKind
    description: str
    refine: dict[str, Any] = field(default_factory=dict)

    @property
    def games(self) -> int:
        return 2 if self.kind == "pairwise" else 1

    def refine_config(self, base: RefineConfig) -> RefineConfig:
        """The user's settings with this method's overrides (seed, sampling, budgets stay the user's)."""
        return replace(base, **self.refine)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("direct", "pairwise", "direct pairwise judge, two games (A,B) and (B,A)"),
    Method("prompt-only", "rubric", "rubrics from the prompt alone, no recursion or filters, uniform weights",
           {"initial_source": "prompt_only", "weight_scheme": "uniform", **_NO_LOOP}),
    Method("conditioned", "rubric", "response-conditioned rubrics, no recursion or filters, uniform weights",
           {"initial_source": "responses", "weight_scheme": "uniform", **_NO_LOOP}),
    Method("rrd-uniform", "rubric", "RRD, uniform weights", {"weight_scheme": "uniform"}),
    Method("rrd-llm", "rubric", "RRD, LLM-assigned weights", {"weight_scheme": "llm"}),
    Method("rrd-wu", "rubric", "RRD, whitened-uniform weights", {"weight_scheme": "whitened"}),
    *(Method(f"rrd-no-{stage}", "rubric", f"RRD (WU weights) with the {stage} stage switched off",
             {"weight_scheme": "whitened", stage: False})
      for stage in ("decompose", "misalignment", "overlap", "conflict")),
]}

GROUPS = {
    "all": list(METHODS),
    "baselines": ["direct", "prompt-only", "conditioned"],
    "rrd": ["rrd-uniform", "rrd-llm", "rrd-wu"],
    "ablations": ["rrd-no-decompose", "rrd-no-misalignment", "rrd-no-overlap", "rrd-no-conflict"],
}


def resolve_methods(spec: str) -> list[Method]:
    """'direct,rrd-wu' or a group name ('all', 'baselines', 'rrd', 'ablations') -> methods, in order, once each."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        for name in GROUPS.get(part, [part]):
            if name not in METHODS:
                known = ", ".join([*METHODS, *GROUPS])
                raise ValueError(f"unknown method {name!r}; known: {known}")
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("no method given")
    return [METHODS[n] for n in names]
