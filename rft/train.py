"""The training entry point: prompts -> rubric sets -> GRPO (Dr.GRPO settings) with the rubric reward -> checkpoint.

Why one function over a TrainConfig: `rrd train`, `accelerate launch -m rft.cli` and the tests all run exactly the
same code path; the CLI only parses a file. Under `accelerate launch` every process runs `train`: the main process
prepares prompts and refines missing rubric sets first (the others wait, then read the finished file), each process
builds its own judge (the reward function runs on every process, on its slice of the batch), and only the main
process writes plots, the config snapshot and the final checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import AUTO_KEYS, ConfigError, PolicyConfig, TrainConfig
from .curves import LOG_NAME, PLOT_NAME, RewardCurveCallback, peak_rss_mb

log = logging.getLogger(__name__)
FINAL_DIR = "checkpoint-final"
BUNDLED_PREFIX = "bundled:"


@dataclass
class TrainResult:
    """Where a run left its artefacts, and what it cost."""

    output_dir: Path
    final_checkpoint: Path | None
    steps: int
    prompts: int
    train_log: Path
    reward_curve: Path
    seconds_per_step: float | None
    peak_rss_mb: float
    metrics: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------- devices
def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _vllm_importable() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        return False


def resolve_grpo_args(config: TrainConfig, *, cuda: bool | None = None, vllm: bool | None = None,
                      bf16_ok: bool | None = None) -> dict[str, Any]:
    """GRPOConfig keyword arguments with the "auto" values decided for this machine.

    use_vllm: True only with a GPU and vllm importable (vLLM generation is the GPU recipe; on CPU TRL generates
    with transformers). bf16: on a bf16-capable GPU only (on CPU, bf16 autocast is slow and the smoke run trains
    in fp32). use_cpu: when there is no GPU. Per-criterion rewards switch multi_objective_aggregation to
    "normalize_then_sum" unless the config chose one.
    """
    import torch

    cuda = _cuda() if cuda is None else cuda
    vllm = _vllm_importable() if vllm is None else vllm
    if bf16_ok is None:
        bf16_ok = cuda and torch.cuda.is_bf16_supported()
    args = dict(config.grpo)
    auto = {"use_vllm": cuda and vllm, "bf16": bool(bf16_ok), "use_cpu": not cuda}
    for key in AUTO_KEYS:
        if args.get(key) in ("auto", None):
            args[key] = auto[key]
    if args["use_vllm"] and not (cuda and vllm):
        raise ConfigError(f"{config.source or 'config'}: grpo.use_vllm is true but "
                          + ("no GPU is visible" if not cuda else "vllm is not installed") + "; use auto or false")
    if config.reward.per_criterion:
        args.setdefault("multi_objective_aggregation", "normalize_then_sum")
    args["output_dir"] = config.output_dir
    return args


# ------------------------------------------------------------------------------------------------------ policy
def policy_path(spec: str) -> str:
    """A from_pretrained-able name for the policy: bundled models and .gguf files become cached HF folders."""
    from judges.models import resolve_local_model

    if spec.startswith(BUNDLED_PREFIX):
        return str(resolve_local_model(spec.removeprefix(BUNDLED_PREFIX)))
    if spec.endswith(".gguf") and Path(spec).expanduser().is_file():
        return str(resolve_local_model(spec))
    return spec


def load_policy(policy: PolicyConfig, *, cuda: bool) -> tuple[Any, Any]:
    """(model, tokenizer). The tokenizer needs a chat template (prompts are conversational) and a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = policy_path(policy.model)
    dtype = policy.dtype if policy.dtype != "auto" else ("bfloat16" if cuda else "float32")
    kw: dict[str, Any] = {"trust_remote_code": policy.trust_remote_code}
    tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError(f"policy {policy.model!r}: the tokenizer has no chat template; prompts are chat messages, "
                          "so use an instruct/chat model or a tokenizer folder that has one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if policy.attn_implementation:
        kw["attn_implementation"] = policy.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kw)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ------------------------------------------------------------------------------------------------------ reward
def build_reward_funcs(reward: Any, config: TrainConfig, max_rubrics: int) -> list[Callable[..., Any]]:
    """The aggregate weighted score (default), or one function per rubric index for normalize_then_sum."""
    if not config.reward.per_criterion:
        return [reward.reward_func]
    k = config.reward.per_criterion_k or max(1, max_rubrics)
    return reward.per_criterion_reward_funcs(k)


def _close_judges(judges: list[Any], loop: asyncio.AbstractEventLoop | None) -> None:
    """Close on the loop the judges were used on (API clients are bound to it), else on a fresh one."""

    async def close() -> None:
        seen: set[int] = set()
        for j in judges:
            if j is not None and id(j) not in seen:
                seen.add(id(j))
                await j.aclose()

    try:
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), loop).result(60)
        else:
            asyncio.run(close())
    except Exception as exc:  # noqa: BLE001 - closing is best effort; training already finished
        log.warning("closing the judge failed: %s", exc)


# ------------------------------------------------------------------------------------------------------- train
def _write_snapshot(config: TrainConfig, out: Path, extra: dict[str, Any]) -> None:
    import yaml

    from rrd.io import write_atomic

    snap = config.to_dict()
    snap["resolved"] = extra
    write_atomic(out / "train_config.yaml", yaml.safe_dump(snap, sort_keys=False, allow_unicode=True))
    os.chmod(out / "train_config.yaml", 0o644)  # a record to read, not a secret (API keys are redacted)


def train(config: TrainConfig, *, resume: bool = False) -> TrainResult:
    """Run GRPO for `config` and return where everything went. See the module docstring for multi-process use."""
    import torch
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    from rewards import RubricReward
    from rrd.config import RefineConfig
    from rrd.pool import Models

    from .precompute import ensure_rubric_sets
    from .prompts import prepare_prompts

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    out = Path(config.output_dir)
    cuda = _cuda()
    # GRPOConfig first: building it sets up the (possibly multi-process, gloo on CPU) distributed state that
    # PartialState then shares; a bare PartialState() made earlier would see one process on a CPU-only machine.
    grpo_kwargs = resolve_grpo_args(config, cuda=cuda)
    args = GRPOConfig(**grpo_kwargs)
    state = PartialState()

    with state.main_process_first():  # main: download, filter, refine; then the others read the finished files
        prompts = prepare_prompts(config.data)
        index = ensure_rubric_sets(
            prompts.ids, prompts.texts, config.rubrics_path,
            refine_missing=config.rubrics.refine_missing, judge=config.judge, proposer=config.proposer_config,
            refine=config.rubrics.refine, prompt_concurrency=config.rubrics.prompt_concurrency,
        )
    dataset = prompts.to_dataset(keep=index.sets)
    if len(dataset) == 0:
        raise ConfigError(f"{config.source or 'config'}: no training prompt has a rubric set in "
                          f"{config.rubrics_path} ({prompts.summary()})")
    if state.is_main_process:
        print(f"rrd train: {prompts.summary()}; {len(dataset)} with rubric sets "
              f"({index.refined} refined now, max {index.max_rubrics} rubrics per prompt)", flush=True)

    model, tokenizer = load_policy(config.policy, cuda=cuda)

    # the judge, and for on-the-fly refinement of prompts added later (rare; off by default) the proposer and the
    # samplers it names, sharing one accounting and the tighter budget (rrd.pool.Models)
    refine_missing = config.reward.rubric.refine_missing
    models = Models.build(config.judge, config.proposer_config if refine_missing else config.judge,
                          config.rubrics.refine if refine_missing else RefineConfig())
    proposer = models.proposer if refine_missing else None
    reward = RubricReward(models.judge, index.sets, config.reward.rubric, proposer=proposer)
    funcs = build_reward_funcs(reward, config, index.max_rubrics)

    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        _write_snapshot(config, out, {
            "grpo": {k: v for k, v in grpo_kwargs.items() if k != "output_dir"},
            "prompts": len(dataset), "policy_path": policy_path(config.policy.model),
            "reward_funcs": [f.__name__ for f in funcs], "num_processes": state.num_processes,
        })
    title = f"{Path(config.policy.model).name} | judge {config.judge.model} | {config.reward.rubric.weights}"
    curves = RewardCurveCallback(out, title=title)
    trainer = GRPOTrainer(
        model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer,
        callbacks=[curves],
    )
    checkpoint = get_last_checkpoint(str(out)) if resume and out.is_dir() else None
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        final = out / FINAL_DIR
        trainer.save_model(str(final))
    finally:
        _close_judges(models.owned, getattr(trainer, "async_loop", None))
        reward.close()
    state.wait_for_everyone()

    metrics = dict(result.metrics)
    steps = int(result.global_step)
    runtime = metrics.get("train_runtime")
    # the mean of this run's logged step times: policy loading and data preparation are not in it (step 1 does
    # include the judge's lazy first load)
    per_step = sum(curves.step_times) / len(curves.step_times) if curves.step_times else None
    if per_step is None and runtime and steps:
        per_step = float(runtime) / steps
    return TrainResult(
        output_dir=out,
        final_checkpoint=final if state.is_main_process else None,
        steps=steps,
        prompts=len(dataset),
        train_log=out / LOG_NAME,
        reward_curve=out / PLOT_NAME,
        seconds_per_step=per_step if per_step is None or math.isfinite(per_step) else None,
        peak_rss_mb=peak_rss_mb(),
        metrics=metrics,
    )


def describe(result: TrainResult) -> str:
    """The lines `rrd train` prints at the end."""
    sps = f"{result.seconds_per_step:.1f} s/step" if result.seconds_per_step else "n/a s/step"
    lines = [
        f"trained {result.steps} steps on {result.prompts} prompts: {sps}, peak RSS {result.peak_rss_mb:.0f} MB "
        f"(this process)",
        f"checkpoint: {result.final_checkpoint}",
        f"log: {result.train_log}   curve: {result.reward_curve}",
    ]
    return "\n".join(lines)


__all__ = ["FINAL_DIR", "TrainResult", "build_reward_funcs", "describe", "load_policy", "policy_path",
           "resolve_grpo_args", "train"]
