"""The flags the `rrd` subcommands that refine share (refine, judge, eval): RefineConfig's fields (judges.settings)
over a profile, the judge and proposer flags of judges.cli_args, the score mode and the Ray cluster."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, Field, replace
from typing import Any

from judges.cli_args import (POSITIVE, add_judge_args, add_proposer_args, judge_config_from_args,
                             proposer_config_from_args)
from judges import JudgeConfig
from judges.settings import add_config_args, config_values

from ..config import PROFILES, RefineConfig, profile_config, resolve_profile
from ..pool import Models


def _profile_note(f: Field) -> str | None:
    """The help's note on a refine setting's default: the paper's value, and the local profile's where it differs."""
    if f.default is None or isinstance(f.default, bool) or f.default is MISSING:
        return None
    local = PROFILES["local"].get(f.name)
    return f"paper {f.default}" + (f", local profile {local}" if local is not None else "")


def add_refine_args(p: argparse.ArgumentParser) -> None:
    add_judge_args(p)
    add_proposer_args(p)
    local = PROFILES["local"]
    g = p.add_argument_group("refinement (defaults: the paper's, or the local profile's where they differ)")
    g.add_argument("--profile", choices=["auto", *PROFILES], default="auto",
                   help="paper: the paper's settings and its 0/1 verdicts (unless --score says otherwise); "
                        "local: sized for a small model on a CPU (n-samples "
                        f"{local['n_samples']}, threshold {local['satisfy_threshold']}, max tokens "
                        f"{local['sample_max_tokens']}); auto (every command's default, rrd eval's included): "
                        "local's settings when every model is local:, else the paper's, scored softly either way. "
                        "Explicit flags override the profile")
    add_config_args(g, RefineConfig, unset=True, describe_default=_profile_note)


def add_score_args(p: argparse.ArgumentParser) -> None:
    """After the config flags that declare --score (JudgeRunConfig, EvalConfig): leave it unset unless given, so
    score_mode can tell the user's choice from the default."""
    p.set_defaults(score=None)


def score_mode(args: argparse.Namespace) -> str:
    """--score/--soft/--hard as given; else hard under an explicit --profile paper (the paper's 0/1 verdicts),
    else soft (P(YES) wherever the judge gives it). Stored back in args, so config_values reads it."""
    if getattr(args, "score", None) is None:
        args.score = "hard" if args.profile == "paper" else "soft"
    return args.score


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("on a Ray cluster (pip install 'rrd-judge[ray]'; README, Running on a cluster)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the items on Ray workers: the ADDRESS of a running cluster (ray://head:10001, auto), "
                        "or nothing to start a local Ray instance on this machine")
    g.add_argument("--ray-workers", type=POSITIVE, default=None,
                   help="Ray workers (default: one per CPU of the cluster); each runs as many items at once as "
                        "the command's concurrency flag says")


def cluster_from_args(args: argparse.Namespace, concurrency: int) -> Any:
    """The ClusterConfig of `--ray`, or None to run in this process; UsageError when Ray is not installed."""
    if args.ray is None:
        return None
    import importlib.util

    from ..io import UsageError

    if importlib.util.find_spec("ray") is None:
        raise UsageError("--ray needs Ray: pip install 'rrd-judge[ray]'")
    from ..cluster import ClusterConfig

    return ClusterConfig(address=None if args.ray == "local" else args.ray, workers=args.ray_workers,
                         concurrency=concurrency)


def worker_model_configs(args: argparse.Namespace) -> tuple[JudgeConfig, JudgeConfig]:
    """The judge and proposer of a --ray run, as configs the workers build from; a local: model that is missing
    fails here, on the driver, before any worker starts."""
    from judges.models import check_local_model

    configs = judge_config_from_args(args), proposer_config_from_args(args)
    for cfg in configs:
        if cfg.model.startswith("local:"):
            check_local_model(cfg.model)
    return configs


def refine_profile(args: argparse.Namespace) -> str:
    """The profile a run uses: --profile, with auto resolved from the models that write and grade."""
    # the refine flags are unset=True: only those given are in args
    return resolve_profile(args.profile, args.judge, args.proposer, config_values(RefineConfig, args))


def profile_note(args: argparse.Namespace) -> str:
    """One line for stderr: which settings the refinement runs with, and why (auto is silent otherwise)."""
    profile = refine_profile(args)
    why = ("every model is local:" if profile == "local" else "an API model is in the mix") \
        if args.profile == "auto" else "--profile"
    other = "paper" if profile == "local" else "local"
    return f"refinement: the {profile} profile's settings ({why}; --profile {other} for the {other} profile's)"


def refine_config_from_args(args: argparse.Namespace) -> RefineConfig:
    """The profile's RefineConfig with the flags the user gave on top."""
    return profile_config(refine_profile(args), **config_values(RefineConfig, args))


def models_from_args(args: argparse.Namespace, config: RefineConfig, *, policy: str | None = None,
                     policy_api_base: str | None = None) -> Models:
    """The run's models; `policy` (rrd eval) gets the judge's flags with its own model and api_base."""
    policy_cfg = None
    if policy:
        policy_cfg = replace(judge_config_from_args(args, model=policy), api_base=policy_api_base)
    return Models.build(judge_config_from_args(args), proposer_config_from_args(args), config, policy_cfg=policy_cfg)
