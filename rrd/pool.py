"""Models: the judge, proposer and sampler models of one run, built once and sharing one Accounting and cache."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from judges import Accounting, Judge, JudgeConfig

from .config import RefineConfig


def run_budget(judge_cfg: JudgeConfig, proposer_cfg: JudgeConfig) -> float | None:
    """A run's --budget-usd: the tighter of the judge's and the proposer's (it caps their calls together)."""
    budgets = [b for b in (judge_cfg.budget_usd, proposer_cfg.budget_usd) if b is not None]
    return min(budgets) if budgets else None


@dataclass
class Models:
    """The judge, proposer and sampler models of one run, built once (a local model loads once, not per
    prompt) and sharing one Accounting and cache, so the budget and the summary cover every call."""

    judge: Any
    proposer: Any
    samplers: dict[str, Any]

    @classmethod
    def build(cls, judge_cfg: JudgeConfig, proposer_cfg: JudgeConfig, refine: RefineConfig, *,
              accounting: Accounting | None = None, cache: Any = None) -> Models:
        """Judge, proposer and samplers sharing one Accounting and one cache. The budget is the tighter of the
        judge's and the proposer's budget_usd (it caps their calls together). A sampler named like the judge or
        the proposer reuses that model; any other sampler gets the proposer's settings and no api_base.
        `accounting` and `cache` replace the ones built from the configs (a Ray worker's leased budget and the
        cluster's shared cache, rrd.cluster)."""
        if accounting is None:
            accounting = Accounting(budget_usd=run_budget(judge_cfg, proposer_cfg))
        judge = Judge(judge_cfg, accounting=accounting, cache=cache)
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
