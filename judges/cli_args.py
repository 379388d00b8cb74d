"""Command-line flags for building a Judge, shared by every `rrd` subcommand so they all read the same way."""

from __future__ import annotations

import argparse
import os

from typing import Callable

from .judge import DEFAULT_JUDGE, JudgeConfig


def number(kind: type = int, *, minimum: float = 0, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of `kind` that is >= minimum (> minimum when strict), so a flag such as
    --concurrency 0 (which would wait forever) or --budget-usd -1 is refused before anything runs."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} {bound}, "
                                             f"not {text!r}") from None
        if value != value or value < minimum or (strict and value == minimum):  # value != value: NaN
            raise argparse.ArgumentTypeError(f"expected a number {bound}, not {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE = number(int, minimum=1)
COUNT = number(int, minimum=0)
SECONDS = number(float, minimum=0, strict=True)


def add_judge_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("judge model")
    g.add_argument("--judge", default=DEFAULT_JUDGE,
                   help="model string: gpt-4o, hosted_vllm/meta-llama/Llama-3.1-8B-Instruct, "
                        "local:qwen2.5-coder-1.5b (default), local:smollm2-135m, local:/path/model.gguf")
    g.add_argument("--api-base", default=os.environ.get("RRD_API_BASE"),
                   help="OpenAI-compatible server for the judge (vLLM, llama.cpp), e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the API key for --api-base servers (default OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=POSITIVE, default=16, help="max calls in flight (API backends)")
    g.add_argument("--transport", choices=["auto", "litellm", "openai"], default="auto",
                   help="auto: openai SDK for OpenAI and --api-base servers, litellm for other providers")
    g.add_argument("--max-retries", type=COUNT, default=5)
    g.add_argument("--timeout", type=SECONDS, default=120.0, help="seconds per call before it is retried")
    g.add_argument("--grading-mode", choices=["single", "batch"], default="single",
                   help="single: one criterion per call (paper-faithful); batch: --batch-size criteria per call")
    g.add_argument("--batch-size", type=POSITIVE, default=8)
    g.add_argument("--pairwise-max-tokens", type=POSITIVE, default=JudgeConfig.pairwise_max_tokens,
                   help="length cap of a direct pairwise judgement (reasoning, then the verdict)")
    g.add_argument("--no-logprobs", action="store_true", help="for servers without logprobs: text verdicts only")
    g.add_argument("--reask-unreadable", type=COUNT, default=JudgeConfig.reask_unreadable,
                   help="re-asks of a grading answer that cannot be read, with a reminder of the format "
                        "(default 0: it stays unscored)")
    g.add_argument("--include-prompt", action="store_true",
                   help="show the user prompt to the satisfaction judge (the paper shows only the response)")
    g.add_argument("--cache-path", default=None, help="SQLite cache file (default ~/.cache/rrd/judge-cache.sqlite)")
    g.add_argument("--no-cache", action="store_true")
    g.add_argument("--budget-usd", type=number(float, strict=True), default=None,
                   help="stop cleanly before spending more than this (dollars, > 0); see README, How it behaves")
    g.add_argument("--local-engine", choices=["auto", "hybrid", "llama.cpp", "transformers"], default="auto",
                   help="what runs local: models; hybrid = verdicts on transformers, generation on llama.cpp "
                        "(each where it is faster); auto = hybrid for GGUF/bundled models on CPU when "
                        "llama-cpp-python is installed, else transformers")
    g.add_argument("--local-parallel", type=POSITIVE, default=JudgeConfig.local_parallel,
                   help="llama.cpp: most requests decoded together in one batch")


def add_proposer_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("proposer model (writes and decomposes rubrics)")
    g.add_argument("--proposer", default=None, help="model string; default: the judge model")
    g.add_argument("--proposer-api-base", default=None, help="default: --api-base when the models match")


def judge_config_from_args(args: argparse.Namespace, *, model: str | None = None) -> JudgeConfig:
    return JudgeConfig(
        model=model or args.judge,
        api_base=args.api_base,
        api_key=os.environ.get(args.api_key_env) if args.api_key_env else None,
        concurrency=args.concurrency,
        transport=args.transport,
        max_retries=args.max_retries,
        timeout_s=args.timeout,
        grading_mode=args.grading_mode,
        batch_size=args.batch_size,
        pairwise_max_tokens=args.pairwise_max_tokens,
        reask_unreadable=args.reask_unreadable,
        logprobs=not args.no_logprobs,
        include_prompt=args.include_prompt,
        cache=not args.no_cache,
        cache_path=args.cache_path,
        budget_usd=args.budget_usd,
        local_engine=args.local_engine,
        local_parallel=args.local_parallel,
    )


def proposer_config_from_args(args: argparse.Namespace) -> JudgeConfig:
    model = args.proposer or args.judge
    api_base = args.proposer_api_base
    if api_base is None and model == args.judge:
        api_base = args.api_base
    cfg = judge_config_from_args(args, model=model)
    cfg.api_base = api_base
    return cfg
