"""Dry run: how many calls and tokens (and dollars, for priced models) a run would spend, before spending any.

Exact where the protocol fixes the calls (two pairwise games per pair, one grader call per HealthBench item,
one Prometheus call per BiGGen instance, one generation per policy item) and modelled where the method decides
at run time (RRD's loop). For rubric methods, per-item figures measured on this run's own finished items are
used when there are any (run `--limit 5` first for a calibrated estimate); otherwise the model below, whose
assumptions are printed with the estimate. Items already in results.jsonl are not counted: they cost nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from judges import templates as judge_templates
from rrd.config import RefineConfig

from . import templates
from .methods import Method


@dataclass
class Assumptions:
    """Typical sizes for the parts a run decides itself (ours, from the refine benchmark in docs/results)."""

    pairwise_completion_tokens: int = 300
    initial_rubrics: int = 10
    #: rubrics processed per set = initial x this (children of decomposed rubrics are processed too)
    processed_per_initial: float = 2.0
    accepted_per_set: int = 12
    proposer_completion_tokens: int = 400
    grader_completion_tokens: int = 150
    policy_completion_tokens: int = 500


@dataclass
class Estimate:
    calls: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0

    def add(self, calls: float, prompt_tokens: float, completion_tokens: float) -> None:
        self.calls += calls
        self.prompt_tokens += calls * prompt_tokens
        self.completion_tokens += calls * completion_tokens

    def merge(self, other: Estimate) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


def count_tokens(model: str, messages: list[dict[str, str]]) -> int:
    """litellm's tokenizer for the model (tiktoken for OpenAI models, shipped offline), else ~4 chars a token."""
    try:
        import litellm

        return int(litellm.token_counter(model=model.removeprefix("local:"), messages=messages))
    except Exception:
        return sum(len(m["content"]) for m in messages) // 4 + 4 * len(messages)


def price(model: str, est: Estimate) -> float | None:
    """Dollars for priced models; None for local models and servers litellm has no price for."""
    if model.startswith("local:"):
        return None
    try:
        import litellm

        p, c = litellm.cost_per_token(model=model, prompt_tokens=int(est.prompt_tokens),
                                      completion_tokens=int(est.completion_tokens))
        return float(p + c)
    except Exception:
        return None


def _measured(method: str, results: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    rows = [r["usage"] for r in results if r.get("method") == method and r.get("usage")]
    if not rows:
        return None
    return {k: sum(u.get(k, 0.0) for u in rows) / len(rows) for k in ("calls", "prompt_tokens", "completion_tokens")}


def refinement_key(method: Method, refine: RefineConfig) -> str | None:
    """Methods with equal keys make the same refinement calls and grade the same rubrics on the same responses,
    so the judge cache answers all but the first of them; only their weights differ. None for pairwise methods."""
    if method.kind != "rubric":
        return None
    d = method.refine_config(refine).to_dict()
    d.pop("weight_scheme")
    d.pop("whitening")
    return json.dumps(d, sort_keys=True, default=str)


def estimate_method(method: Method, items: Sequence[Any], judge_model: str, refine: RefineConfig,
                    results: Sequence[dict[str, Any]], a: Assumptions, item_samples: bool = False,
                    shares_with: str | None = None) -> tuple[Estimate, str]:
    """Estimate for one judge method over the pending items (each an ItemResponses), and how it was made.

    `shares_with` names an earlier method of the same run with the same refinement_key: everything but this
    method's own weighting call (LLM weights) is then a cache hit and costs nothing.
    """
    est = Estimate()
    measured = _measured(method.name, results)
    if measured is not None and method.kind == "rubric":
        n = len(items)
        est.calls, est.prompt_tokens, est.completion_tokens = (measured[k] * n for k in
                                                               ("calls", "prompt_tokens", "completion_tokens"))
        return est, f"measured on {sum(r.get('method') == method.name for r in results)} finished items"
    cfg = method.refine_config(refine)
    for item in items:
        if method.kind == "pairwise":  # two games per comparison (a pair item is one comparison)
            for i, j in item.comparisons if item.comparisons is not None else [(0, 1)]:
                msgs = judge_templates.pairwise(item.prompt, item.responses[i], item.responses[j])
                est.add(2, count_tokens(judge_model, msgs), a.pairwise_completion_tokens)
            continue
        q = count_tokens(judge_model, [{"role": "user", "content": item.prompt}])
        if cfg.weight_scheme == "llm":
            est.add(1, q + 400, 200)  # the importance-scoring call
        if shares_with is not None:
            continue  # everything else is the same requests as the earlier method's: cache hits
        resp_tokens = [count_tokens(judge_model, [{"role": "user", "content": r}]) for r in item.responses]
        mean_resp = sum(resp_tokens) / max(1, len(resp_tokens))
        n_samples = len(item.responses) if item_samples else cfg.n_samples
        if not item_samples:
            est.add(n_samples, q, cfg.sample_max_tokens / 2)  # sampling responses to condition on
        est.add(1, q + n_samples * mean_resp, a.proposer_completion_tokens)  # initial rubrics
        looped = cfg.decompose or cfg.misalignment or cfg.overlap or cfg.conflict
        processed = a.initial_rubrics * (a.processed_per_initial if cfg.decompose else 1.0) if looped else 0
        refs = 2 if cfg.misalignment else 0
        est.add(refs, q, cfg.reference_max_tokens / 2)
        est.add(processed * (n_samples + refs), mean_resp + 80, 2)  # satisfaction grading in the loop
        est.add(processed * (int(cfg.overlap) + int(cfg.conflict)), 300, 8)  # filter checks
        if cfg.decompose:
            est.add(processed / 2, q + 200, a.proposer_completion_tokens)
        accepted = a.accepted_per_set if looped else a.initial_rubrics
        for r in resp_tokens:  # scoring the item's responses
            est.add(accepted, r + 80, 2)
    if shares_with is not None:
        return est, f"rubric sets and grading shared with {shares_with} through the cache; only the weights differ"
    return est, "modelled (assumptions: " + ", ".join(f"{k}={v}" for k, v in vars(a).items()) + ")"


def estimate_policy(kind: str, items: Sequence[Any], policy_model: str, grader_model: str,
                    a: Assumptions) -> tuple[Estimate, Estimate]:
    """(policy generation, grading) for HealthBench (one grader call per rubric item) or BiGGen (one per item)."""
    gen, grade = Estimate(), Estimate()
    for item in items:
        if kind == "healthbench":
            gen.add(1, count_tokens(policy_model, list(item.conversation)), a.policy_completion_tokens)
            for r in item.rubrics:
                msgs = templates.healthbench_grader(item.conversation, "x" * (4 * a.policy_completion_tokens),
                                                    r.criterion, r.points)
                grade.add(1, count_tokens(grader_model, msgs), a.grader_completion_tokens)
        else:
            prompt = [{"role": "user", "content": f"{item.system_prompt}\n\n{item.input}"}]
            gen.add(1, count_tokens(policy_model, prompt), a.policy_completion_tokens)
            msgs = templates.prometheus_absolute(prompt[0]["content"], "x" * (4 * a.policy_completion_tokens),
                                                 item.reference_answer, item.score_rubric)
            grade.add(1, count_tokens(grader_model, msgs), 300)
    return gen, grade
