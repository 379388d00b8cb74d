"""Models: the judge, proposer and sampler models of one run, built once and sharing one Accounting and cache."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from judges import Accounting, Judge, JudgeConfig

from .config import RefineConfig


@dataclass
class Models:
    """The judge, proposer and sampler models of one run, built once (a local model loads once, not per
    prompt) and sharing one Accounting and cache, so the budget and the summary cover every call."""

    judge: Any
    proposer: Any
    samplers: dict[str, Any]

    @classmethod
    def build(cls, judge_cfg: JudgeConfig, proposer_cfg: JudgeConfig, refine: RefineConfig) -> Models:
        """Judge, proposer and samplers sharing one Accounting and one cache. The budget is the tighter of the
        judge's and the proposer's budget_usd (it caps their calls together). A sampler named like the judge or
        the proposer reuses that model; any other sampler gets the proposer's settings and no api_base."""
        budgets = [b for b in (judge_cfg.budget_usd, proposer_cfg.budget_usd) if b is not None]
        accounting = Accounting(budget_usd=min(budgets) if budgets else None)
        judge = Judge(judge_cfg, accounting=accounting)
        built = {(judge_cfg.model, judge_cfg.api_base): judge}

        def get(cfg: JudgeConfig) -> Any:
            key = (cfg.model, cfg.api_base)
            if key not in built:
                built[key] = Judge(cfg, accounting=accounting, cache=judge.cache)
            return built[key]

        proposer = get(proposer_cfg)
        samplers: dict[str, Any] = {}
        for name in [*refine.samplers, refine.strong_model, refine.weak_model]:
            if name and name not in samplers:
                samplers[name] = (judge if name == judge_cfg.model else proposer if name == proposer_cfg.model
                                  else get(replace(proposer_cfg, model=name, api_base=None)))
        return cls(judge, proposer, samplers)

    @property
    def accounting(self) -> Accounting:
        return self.judge.accounting

    async def aclose(self) -> None:
        closed: set[int] = set()
        for j in (self.judge, self.proposer, *self.samplers.values()):
            if id(j) not in closed:
                closed.add(id(j))
                await j.aclose()
