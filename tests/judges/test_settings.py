"""Config fields are the one source of truth for flags: every flag that existed before the fields drove them still
parses to the same setting, every JudgeConfig/RefineConfig field has a flag, and YAML sections are checked
against the same fields."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import pytest

from judges import JudgeConfig
from judges.cli_args import judge_config_from_args, proposer_config_from_args
from judges.settings import (POSITIVE, ConfigError, add_config_args, config_from_mapping, config_values, flag_fields,
                             setting)
from rrd.cli import build_parser
from rrd.cli.flags import refine_config_from_args
from rrd.cli.commands import judge_run_config_from_args
from rrd.config import RefineConfig
from rrd.weights import WhiteningConfig

# every flag `rrd judge` had when each was typed by hand, with a value and the setting it must reach
OLD_JUDGE_FLAGS = [
    (["--judge", "gpt-4o"], "judge", "model", "gpt-4o"),
    (["--api-base", "http://h/v1"], "judge", "api_base", "http://h/v1"),
    (["--concurrency", "3"], "judge", "concurrency", 3),
    (["--transport", "litellm"], "judge", "transport", "litellm"),
    (["--max-retries", "0"], "judge", "max_retries", 0),
    (["--timeout", "7.5"], "judge", "timeout_s", 7.5),
    (["--grading-mode", "batch"], "judge", "grading_mode", "batch"),
    (["--batch-size", "4"], "judge", "batch_size", 4),
    (["--pairwise-max-tokens", "99"], "judge", "pairwise_max_tokens", 99),
    (["--no-logprobs"], "judge", "logprobs", False),
    (["--reask-unreadable", "2"], "judge", "reask_unreadable", 2),
    (["--include-prompt"], "judge", "include_prompt", True),
    (["--cache-path", "c.sqlite"], "judge", "cache_path", "c.sqlite"),
    (["--no-cache"], "judge", "cache", False),
    (["--budget-usd", "1.5"], "judge", "budget_usd", 1.5),
    (["--local-engine", "llama.cpp"], "judge", "local_engine", "llama.cpp"),
    (["--local-parallel", "2"], "judge", "local_parallel", 2),
    (["--samplers", "a", "b"], "refine", "samplers", ["a", "b"]),
    (["--n-samples", "5"], "refine", "n_samples", 5),
    (["--sample-max-tokens", "300"], "refine", "reference_max_tokens", 300),  # one flag caps both
    (["--proposer-max-tokens", "200"], "refine", "proposer_max_tokens", 200),
    (["--threshold", "0"], "refine", "satisfy_threshold", 0),
    (["--max-rejections", "4"], "refine", "max_rejections", 4),
    (["--max-depth", "1"], "refine", "max_depth", 1),
    (["--strong-model", "s"], "refine", "strong_model", "s"),
    (["--weak-model", "w"], "refine", "weak_model", "w"),
    (["--initial", "prompt_only"], "refine", "initial_source", "prompt_only"),
    (["--weights", "uniform"], "refine", "weight_scheme", "uniform"),
    (["--no-decompose"], "refine", "decompose", False),
    (["--no-misalignment"], "refine", "misalignment", False),
    (["--no-overlap"], "refine", "overlap", False),
    (["--no-conflict"], "refine", "conflict", False),
    (["--near-duplicate-threshold", "off"], "refine", "near_duplicate_threshold", None),
    (["--repair-attempts", "2"], "refine", "repair_attempts", 2),
    (["--on-failed-decomposition", "reject"], "refine", "on_failed_decomposition", "reject"),
    (["--max-decompose-calls", "none"], "refine", "max_decompose_calls", None),
    (["--fallback", "none"], "refine", "fallback", "none"),
    (["--proposer-repetition-penalty", "1.0"], "refine", "proposer_repetition_penalty", 1.0),
    (["--seed", "3"], "refine", "seed", 3),
    (["--tie-rule", "pairwise"], "run", "tie_rule", "pairwise"),
    (["--tie-margin", "0.1"], "run", "tie_margin", 0.1),
    (["--hard"], "run", "score", "hard"),
    (["--score", "hard"], "run", "score", "hard"),
    (["--pair-concurrency", "2"], "run", "pair_concurrency", 2),
    (["--no-refine-missing"], "run", "refine_missing", False),
    (["--prompt-concurrency", "2"], "run", "prompt_concurrency", 2),
    (["--retry", "none"], "run", "retry", "none"),
]


def _judge_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["judge", "pairs.jsonl", "--rubrics", "r.jsonl", "--out", "v.jsonl", *extra])


@pytest.mark.parametrize("argv,config,name,value", OLD_JUDGE_FLAGS, ids=[a[0][0] for a in OLD_JUDGE_FLAGS])
def test_every_old_flag_reaches_its_setting(argv, config, name, value):
    args = _judge_args(*argv)
    built = {"judge": judge_config_from_args, "refine": refine_config_from_args,
             "run": judge_run_config_from_args}[config](args)
    assert getattr(built, name) == value
    default = {"judge": JudgeConfig(), "refine": refine_config_from_args(_judge_args()),
               "run": judge_run_config_from_args(_judge_args())}[config]
    assert getattr(default, name) != value, "the flag must change something"


def test_every_field_has_a_flag_and_defaults_are_the_dataclass_defaults(monkeypatch):
    monkeypatch.delenv("RRD_API_BASE", raising=False)
    flagged = {f.name for f in flag_fields(JudgeConfig)}
    assert {f.name for f in fields(JudgeConfig)} - flagged == {"api_key"}  # a key is named by --api-key-env
    assert {f.name for f in fields(RefineConfig)} - {f.name for f in flag_fields(RefineConfig)} == {"whitening"}
    args = _judge_args("--profile", "paper")
    assert judge_config_from_args(args) == JudgeConfig(api_key=judge_config_from_args(args).api_key)
    assert refine_config_from_args(args) == RefineConfig()


def test_api_key_env_proposer_and_env_default(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    monkeypatch.setenv("RRD_API_BASE", "http://env/v1")
    args = _judge_args("--api-key-env", "MY_KEY", "--proposer", "gpt-4o-mini")
    judge, proposer = judge_config_from_args(args), proposer_config_from_args(args)
    assert judge.api_key == "sk-test" and judge.api_base == "http://env/v1"
    assert proposer.model == "gpt-4o-mini" and proposer.api_base is None  # another model: not the judge's server


@dataclass
class Inner:
    k: int = setting(1, type=POSITIVE, help="k")


@dataclass
class Outer:
    name: str = setting("x", flag="--the-name", aliases=["--old-name"], help="a name")
    on: bool = setting(True, flag="--no-on", negate=True, help="off switch")
    cap: int = setting(5, type=POSITIVE, also=("cap2",), help="cap")
    cap2: int = setting(5, type=POSITIVE, help="second cap")
    inner: Inner | None = None


def test_helper_aliases_negation_also_and_unset():
    p = argparse.ArgumentParser()
    add_config_args(p, Outer)
    assert config_values(Outer, p.parse_args(["--old-name", "y", "--no-on", "--cap", "2"])) == {
        "name": "y", "on": False, "cap": 2, "cap2": 5}  # set: cap2 was given its default, not by the user
    q = argparse.ArgumentParser()
    add_config_args(q, Outer, unset=True)
    assert config_values(Outer, q.parse_args([])) == {}
    assert config_values(Outer, q.parse_args(["--cap", "2"])) == {"cap": 2, "cap2": 2}
    assert config_values(Outer, q.parse_args(["--cap", "2", "--cap2", "9"])) == {"cap": 2, "cap2": 9}
    with pytest.raises(SystemExit):
        q.parse_args(["--cap", "0"])


def test_mappings_are_checked_against_the_fields_recursively():
    built = config_from_mapping(Outer, {"name": "z", "inner": {"k": 3}}, "outer", "run.yaml")
    assert built.inner == Inner(3)
    with pytest.raises(ConfigError, match=r"run.yaml: unknown key 'kk' in 'outer.inner'"):
        config_from_mapping(Outer, {"inner": {"kk": 3}}, "outer", "run.yaml")
    with pytest.raises(ConfigError, match=r"run.yaml: section 'refine'.*n_samples"):
        config_from_mapping(RefineConfig, {"n_samples": 0}, "refine", "run.yaml")
    rc = config_from_mapping(RefineConfig, {"whitening": {"shrinkage": "ledoit_wolf"}}, "refine")
    assert isinstance(rc.whitening, WhiteningConfig)


def test_soft_is_the_default_and_both_shortcuts_still_parse():
    assert judge_run_config_from_args(_judge_args()).score == "soft"
    assert judge_run_config_from_args(_judge_args("--soft")).score == "soft"
    assert judge_run_config_from_args(_judge_args("--hard")).score == "hard"


@pytest.mark.parametrize("command", ["judge", "eval"])
@pytest.mark.parametrize("extra,expected", [
    ([], "soft"),                                   # the default: P(YES) wherever the judge gives it
    (["--profile", "paper"], "hard"),               # the paper's protocol, verdicts included
    (["--profile", "paper", "--soft"], "soft"),     # a score flag wins over the profile
    (["--profile", "local", "--hard"], "hard"),
    (["--profile", "local"], "soft"),
])
def test_an_explicit_paper_profile_means_hard_verdicts_unless_a_score_flag_says_otherwise(command, extra, expected):
    from rrd.cli import build_parser
    from rrd.cli.flags import score_mode

    argv = (["judge", "pairs.jsonl", "--rubrics", "r.jsonl", "--out", "v.jsonl"] if command == "judge"
            else ["eval", "pairs", "--data", "pairs.jsonl"])
    args = build_parser().parse_args([*argv, *extra])
    assert score_mode(args) == expected
    if not extra:  # the default profile resolves from the models; the paper's settings alone stay soft
        assert args.profile == "auto"
        assert score_mode(build_parser().parse_args([*argv, "--judge", "gpt-4o"])) == "soft"


# ------------------------------------------------------------------------------ validation in the config types
BAD_VALUES = [  # (field, value, flag, the flag's argument)
    ("concurrency", 0, "--concurrency", "0"),
    ("timeout_s", -5, "--timeout", "-5"),
    ("grading_mode", "bogus", "--grading-mode", "bogus"),
    ("budget_usd", -1, "--budget-usd", "-1"),
]


@pytest.mark.parametrize("name,value,flag,text", BAD_VALUES)
def test_a_config_refuses_what_its_flag_refuses_with_the_same_line(name: str, value: object, flag: str,
                                                                   text: str) -> None:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_args(parser, JudgeConfig)
    with pytest.raises(argparse.ArgumentError) as from_flag:
        parser.parse_args([flag, text])
    flag_problem = str(from_flag.value).split(": ", 1)[1]  # "argument --concurrency: <problem>"
    with pytest.raises(ConfigError) as from_yaml:  # a YAML section (rrd train, the verl reward's settings)
        config_from_mapping(JudgeConfig, {name: value}, "judge", "run.yaml")
    with pytest.raises(ValueError) as from_library:
        JudgeConfig(**{name: value})  # type: ignore[arg-type]
    assert str(from_yaml.value) == f"run.yaml: section 'judge': {name} ({flag}): {flag_problem}"
    assert str(from_library.value) == f"{name} ({flag}): {flag_problem}"
    assert "\n" not in str(from_yaml.value)


def test_the_checks_cover_every_config_that_has_flags() -> None:
    from eval.policy import PolicyConfig
    from eval.runner import EvalConfig
    from rrd.jobs import JudgeRunConfig

    with pytest.raises(ValueError, match=r"n_samples \(--n-samples\): expected a finite number >= 1, not '0'"):
        RefineConfig(n_samples=0)
    with pytest.raises(ValueError, match=r"max_rejections \(--max-rejections\)"):
        RefineConfig(max_rejections=0)
    with pytest.raises(ValueError, match=r"near_duplicate_threshold .*\(0, 100\]"):
        RefineConfig(near_duplicate_threshold=150)
    with pytest.raises(ValueError, match=r"tie_rule \(--tie-rule\): expected one of half, pairwise, tie"):
        JudgeRunConfig(tie_rule="coin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"item_concurrency"):
        EvalConfig(bench="pairs", out_dir=None, item_concurrency=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_tokens \(--policy-max-tokens\)"):
        PolicyConfig(max_tokens=0)
    assert RefineConfig(near_duplicate_threshold=None, max_decompose_calls=None).max_decompose_calls is None
