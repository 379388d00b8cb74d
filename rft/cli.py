"""`rrd train CONFIG.yaml`: GRPO with rubric rewards from one YAML file (see rft.config for the schema).

Registered through the "rrd.commands" entry point, so `rrd --help` never imports torch or trl: they load when the
command runs. Also runnable on its own, which is what multi-GPU launches use:

    accelerate launch --multi_gpu --num_processes 8 -m rft.cli configs/paper_gpu.yaml   # or: -m rrd.cli train ...
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _add_args(p: argparse.ArgumentParser) -> None:
    from judges.cli_args import POSITIVE

    p.add_argument("config", metavar="CONFIG.yaml", help="training config (configs/smoke_cpu.yaml, "
                   "configs/paper_gpu.yaml)")
    p.add_argument("--output-dir", default=None, help="override output_dir (checkpoints, train_log.jsonl, "
                   "reward_curve.png)")
    p.add_argument("--max-steps", type=POSITIVE, default=None, help="override grpo.max_steps")
    p.add_argument("--max-prompts", type=POSITIVE, default=None, help="override data.max_prompts")
    p.add_argument("--rubrics", default=None, help="override rubrics.path")
    p.add_argument("--judge", default=None, help="override judge.model (e.g. local:smollm2-135m)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other field, dotted, value parsed as YAML: --set grpo.learning_rate=1e-5 "
                        "--set reward.weights=online_wu (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")


def _overrides(args: argparse.Namespace) -> list[str]:
    out = list(args.overrides)
    for flag, key in (("output_dir", "output_dir"), ("max_steps", "grpo.max_steps"),
                      ("max_prompts", "data.max_prompts"), ("rubrics", "rubrics.path"), ("judge", "judge.model")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={value}")
    return out


def _run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import describe, train

    config = load_config(args.config, _overrides(args))  # a ConfigError is the user's: the entry point says so
    result = train(config, resume=args.resume)
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(describe(result))
    return 0


def train_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="GRPO fine-tuning with rubric rewards (Dr.GRPO defaults) from a YAML config",
        description="Prepares the prompt set, refines missing rubric sets with RRD, runs TRL GRPO with the rubric "
                    "reward, and writes checkpoints, train_log.jsonl and reward_curve.png to output_dir. "
                    "Multi-GPU: accelerate launch -m rft.cli CONFIG.yaml",
    )
    _add_args(p)
    p.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rft.cli CONFIG.yaml [flags]`: the same command without the `rrd` dispatcher."""
    import logging
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = argparse.ArgumentParser(prog="rrd train", description="GRPO fine-tuning with rubric rewards")
    parser.add_argument("-v", "--verbose", action="store_true")
    _add_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from judges import BudgetExceeded
    from rrd.io import USER_ERRORS
    from rrd.resume import BUDGET_EXIT

    try:
        return _run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BudgetExceeded as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return BUDGET_EXIT


if __name__ == "__main__":
    sys.exit(main())
