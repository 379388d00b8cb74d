"""Command-line flags for building a Judge, shared by every `rrd` subcommand so they all read the same way.

The flags are JudgeConfig's fields (judges.settings): a new setting is added there, once."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from .judge import JudgeConfig
from .settings import COUNT, POSITIVE, SECONDS, add_config_args, config_values, number

__all__ = ["COUNT", "POSITIVE", "SECONDS", "add_judge_args", "add_proposer_args", "judge_config_from_args",
           "number", "proposer_config_from_args"]


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("judge model")
    add_config_args(g, JudgeConfig)
    g.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key for --api-base servers (default OPENAI_API_KEY)")


def add_proposer_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("proposer model (writes and decomposes rubrics)")
    g.add_argument("--proposer", default=None, help="model string; default: the judge model")
    g.add_argument("--proposer-api-base", default=None, help="default: --api-base when the models match")


def judge_config_from_args(args: argparse.Namespace, *, model: str | None = None) -> JudgeConfig:
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    cfg = JudgeConfig(**config_values(JudgeConfig, args), api_key=api_key)
    return replace(cfg, model=model) if model else cfg


def proposer_config_from_args(args: argparse.Namespace) -> JudgeConfig:
    model = args.proposer or args.judge
    api_base = args.proposer_api_base
    if api_base is None and model == args.judge:
        api_base = args.api_base
    return replace(judge_config_from_args(args, model=model), api_base=api_base)
