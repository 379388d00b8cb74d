"""Models: the judge, proposer and sampler models of one run, sharing one Accounting and cache. The only place a
run's Judges are built, so a sampler name reaches the same model from the CLI, `rrd eval`, training and a library
call."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from judges import Accounting, Judge, JudgeConfig

from .config import RefineConfig


def run_budget(judge_cfg: JudgeConfig, proposer_cfg: JudgeConfig) -> float | None:
    """A run's --budget-usd: the tighter of the judge's and the proposer's (it caps their calls together)."""
    budgets = [b for b in (judge_cfg.budget_usd, proposer_cfg.budget_usd) if b is not None]
    return min(budgets) if budgets else None


@dataclass
class Models:
    """The judge, proposer and sampler models of one run, built once (a local model loads once, not per
    prompt) and sharing one Accounting and cache, so the budget and the summary cover every call.

    `samplers` maps model names to Judges (the callers' own, or built here). A name that is not there is the judge
    or the proposer when it names one, else a Judge built once with the proposer's settings, that model and no
    api_base (the proposer's server serves the proposer), sharing its cache and accounting."""

    judge: Judge
    proposer: Judge
    samplers: dict[str, Judge] = field(default_factory=dict)
    #: the policy `rrd eval` evaluates (HealthBench, BiGGen), when there is one
    policy: Judge | None = None
    #: the Judges built here, which `aclose` releases (a caller's own are the caller's to close)
    owned: list[Judge] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, judge_cfg: JudgeConfig, proposer_cfg: JudgeConfig, refine: RefineConfig, *,
              accounting: Accounting | None = None, cache: object = None,
              policy_cfg: JudgeConfig | None = None) -> Models:
        """Judge, proposer, the samplers and references `refine` names, and the policy, built now. The budget is
        the tighter of the judge's and the proposer's budget_usd; a proposer with the judge's model and api_base is
        the judge.
        `accounting` and `cache` replace the ones built from the configs (a Ray worker's leased budget and the
        cluster's shared cache, rrd.cluster)."""
        if accounting is None:
            accounting = Accounting(budget_usd=run_budget(judge_cfg, proposer_cfg))
        judge = Judge(judge_cfg, accounting=accounting, cache=cache)
        same = (proposer_cfg.model, proposer_cfg.api_base) == (judge_cfg.model, judge_cfg.api_base)
        proposer = judge if same else Judge(proposer_cfg, accounting=accounting, cache=judge.cache)
        policy = None if policy_cfg is None else Judge(policy_cfg, accounting=accounting, cache=judge.cache)
        models = cls(judge, proposer, policy=policy,
                     owned=[judge] + ([] if same else [proposer]) + ([] if policy is None else [policy]))
        for name in (*refine.samplers, refine.strong_model, refine.weak_model):
            if name:
                models.sampler(name)
        return models

    def sampler(self, name: str) -> Judge:
        """The model called `name` (see the class)."""
        if name in self.samplers:
            return self.samplers[name]
        for known in (self.judge, self.proposer):
            if name in (known.model, known.config.model):
                self.samplers[name] = known
                return known
        built = Judge(replace(self.proposer.config, model=name, api_base=None), accounting=self.proposer.accounting,
                      cache=self.proposer.cache)
        self.samplers[name] = built
        self.owned.append(built)
        return built

    def sampler_names(self, config: RefineConfig) -> list[str]:
        """Who writes the N samples: config.samplers, else the proposer (RefineConfig)."""
        return list(config.samplers) or [self.proposer.config.model]

    @property
    def accounting(self) -> Accounting:
        return self.judge.accounting

    async def aclose(self) -> None:
        """Release the Judges built here."""
        for j in self.owned:
            await j.aclose()
        self.owned.clear()
