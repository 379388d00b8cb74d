"""Refinement profiles (paper / local / auto) and the refine bar's per-prompt ETA."""

from __future__ import annotations

import argparse

import pytest

from rrd.cli.flags import add_refine_args, profile_note, refine_config_from_args, refine_profile
from rrd.progress import RefineView
from rrd.config import PROFILES, RefineConfig, auto_profile, profile_config
from rrd.refine import Progress


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_refine_args(p)
    return p.parse_args(list(argv))


def test_paper_profile_is_the_dataclass_defaults() -> None:
    assert profile_config("paper") == RefineConfig()
    with pytest.raises(ValueError, match="unknown profile"):
        profile_config("fast")


def test_auto_is_local_only_when_every_model_is_local() -> None:
    assert auto_profile(["local:qwen2.5-coder-1.5b"]) == "local"
    assert auto_profile(["local:qwen2.5-coder-1.5b", "gpt-4o"]) == "paper"
    assert refine_profile(parse()) == "local"  # the embedded default judge
    assert refine_profile(parse("--judge", "gpt-4o")) == "paper"
    assert refine_profile(parse("--samplers", "gpt-4o")) == "paper"  # an API sampler affords the paper's N
    assert refine_profile(parse("--strong-model", "gpt-4o")) == "paper"


def test_local_profile_sizes_and_explicit_flags_win() -> None:
    local = refine_config_from_args(parse())
    for k, v in PROFILES["local"].items():
        assert getattr(local, k) == v
    paper = refine_config_from_args(parse("--profile", "paper"))
    assert (paper.n_samples, paper.satisfy_threshold, paper.sample_max_tokens) == (8, 2, 1024)
    mixed = refine_config_from_args(parse("--n-samples", "6", "--sample-max-tokens", "300"))
    assert (mixed.n_samples, mixed.sample_max_tokens, mixed.reference_max_tokens) == (6, 300, 300)
    assert mixed.satisfy_threshold == PROFILES["local"]["satisfy_threshold"]  # the rest stays the profile's


@pytest.mark.parametrize("command", [["refine", "prompts.jsonl", "--out", "r.jsonl"],
                                     ["judge", "pairs.jsonl", "--rubrics", "r.jsonl", "--out", "v.jsonl"],
                                     ["eval", "pairs", "--data", "pairs.jsonl"]])
def test_every_command_resolves_the_profile_from_its_models(command: list[str]) -> None:
    """rrd eval too: with the embedded judge its RRD sets are the local profile's (the paper's settings give a
    1.5B proposer sets of one or two rubrics, docs/results/small_proposer), with an API judge the paper's."""
    from rrd.cli import build_parser

    def config(*extra: str) -> RefineConfig:
        return refine_config_from_args(build_parser().parse_args([*command, *extra]))

    assert config() == profile_config("local")
    assert config("--judge", "gpt-4o") == RefineConfig()
    assert config("--profile", "paper") == RefineConfig()
    # and says so on stderr, since auto is otherwise invisible
    assert profile_note(parse()).startswith("refinement: the local profile's settings (every model is local:")
    assert "the paper profile's settings (an API model" in profile_note(parse("--judge", "gpt-4o"))
    assert "the paper profile's settings (--profile;" in profile_note(parse("--profile", "paper"))


class Bar:
    def __init__(self) -> None:
        self.postfix = ""

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s


class Acc:
    def postfix(self) -> str:
        return "calls 0"


def progress(stage: str, queue: int = 0, processed: int = 0, pid: str = "p1") -> Progress:
    return Progress(pid, stage, queue, 0, 0, 0, 0.0, processed)


def test_eta_from_the_loop_rate_then_from_finished_prompts() -> None:
    now = [0.0]
    bar = Bar()
    view = RefineView(bar, Acc(), clock=lambda: now[0])
    view(progress("sampling"))
    assert "0:00 eta ?" in bar.postfix  # nothing measured yet
    now[0] = 60.0
    view(progress("grading 10", queue=10))
    now[0] = 90.0
    view(progress("deciding", queue=6, processed=3))  # 3 rubrics in 30 s of loop: 10 s each, 6 queued
    assert "1:30 eta 1:00" in bar.postfix
    now[0] = 120.0
    view(progress("done"))
    # the next prompt, before its loop: the mean duration of finished prompts (120 s) minus the time spent
    view(progress("sampling", pid="p2"))
    now[0] = 150.0
    view.show()
    assert "0:30 eta 1:30" in bar.postfix


def test_in_a_log_the_bar_writes_a_line_per_finished_item_and_a_heartbeat_at_most_every_30_s() -> None:
    import io

    from rrd.progress import LogBar, progress_bar

    now = [0.0]
    log = io.StringIO()
    bar = LogBar(4, "eval pairs", "result", log, clock=lambda: now[0])
    for t in range(1, 30):  # the refine view refreshes the postfix every 2 s: nothing is written for 30 s
        now[0] = float(t)
        bar.set_postfix_str(f"grading q={t}")
    assert log.getvalue() == ""
    now[0] = 30.0
    bar.set_postfix_str("grading q=30")  # the heartbeat
    now[0] = 40.0
    bar.update(1)  # a finished item: always a line
    bar.update(1)
    bar.close()  # nothing new since the last line
    assert log.getvalue().splitlines() == [
        "eval pairs: 0/4 results (0%), 0:30 elapsed | grading q=30",
        "eval pairs: 1/4 results (25%), 0:40 elapsed, eta 2:00 | grading q=30",
        "eval pairs: 2/4 results (50%), 0:40 elapsed, eta 0:40 | grading q=30",
    ]
    assert isinstance(progress_bar(3, "refine", "prompt", file=io.StringIO()), LogBar)  # not a terminal
