"""`rrd train` wiring: the subparser the entry point registers, flag overrides, and clean config errors."""

from __future__ import annotations

import argparse

import yaml

from rft.cli import _overrides, main, train_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rrd")
    train_command(parser.add_subparsers(dest="command"))
    return parser


def test_train_subparser_and_overrides():
    args = _parser().parse_args(["train", "configs/smoke_cpu.yaml", "--max-steps", "3", "--output-dir", "runs/x",
                                 "--set", "grpo.learning_rate=1e-5", "--judge", "local:smollm2-135m"])
    assert args.config == "configs/smoke_cpu.yaml" and callable(args.func)
    assert _overrides(args) == ["grpo.learning_rate=1e-5", "output_dir=runs/x", "grpo.max_steps=3",
                                "judge.model=local:smollm2-135m"]


def test_config_errors_exit_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"policy": {"model": "x"}, "data": {"source": "a.jsonl"}, "grpo": {"lr": 1}}))
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'lr' in 'grpo'" in err and str(bad) in err and "Traceback" not in err
