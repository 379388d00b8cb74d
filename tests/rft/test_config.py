"""TrainConfig loading: defaults, Dr.GRPO settings, overrides, and errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rft.config import DR_GRPO_DEFAULTS, ConfigError, apply_overrides, config_from_dict, load_config
from rft.train import resolve_grpo_args

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"policy": {"model": "bundled:smollm2-135m"}, "data": {"source": "examples/train_prompts.jsonl"}}


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_minimal_config_gets_dr_grpo_defaults():
    cfg = config_from_dict(MINIMAL)
    for key, value in DR_GRPO_DEFAULTS.items():
        assert cfg.grpo[key] == value
    assert cfg.grpo["loss_type"] == "dr_grpo" and cfg.grpo["scale_rewards"] == "none" and cfg.grpo["beta"] == 0.0
    assert cfg.grpo["num_generations"] == 8
    assert cfg.data.language == "English" and cfg.data.drop_toxic and cfg.data.dedup
    assert cfg.proposer_config is cfg.judge
    assert cfg.rubrics_path == Path("runs/train/rubrics.jsonl")


@pytest.mark.parametrize("name", ["smoke_cpu.yaml", "paper_gpu.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.grpo["loss_type"] == "dr_grpo" and cfg.grpo["num_generations"] == 8
    if name == "paper_gpu.yaml":
        assert cfg.grpo["max_steps"] == 1000 and cfg.data.max_prompts == 4000
        assert cfg.proposer_config.model == "gpt-4o" and cfg.judge.api_base
        assert cfg.reward.rubric.weights == "online_wu"
        gpu = resolve_grpo_args(cfg, cuda=True, vllm=True, bf16_ok=True)
        assert gpu["use_vllm"] is True and gpu["bf16"] is True and gpu["use_cpu"] is False
    else:
        assert cfg.grpo["max_steps"] == 10 and cfg.policy.model == "bundled:smollm2-135m"
        assert cfg.judge.model == "local:smollm2-135m"


def test_refine_settings_follow_the_profile_the_commands_resolve(tmp_path):
    """A missing set is refined as `rrd refine` would refine it: the local profile's settings when judge and
    proposer are local: (the default judge is), the paper's with an API model, explicit keys on top."""
    from rrd.config import RefineConfig, profile_config

    assert config_from_dict(MINIMAL).rubrics.refine == profile_config("local")
    assert config_from_dict({**MINIMAL, "judge": {"model": "gpt-4o"}}).rubrics.refine == RefineConfig()
    assert config_from_dict({**MINIMAL, "proposer": {"model": "gpt-4o"}}).rubrics.refine == RefineConfig()
    paper = config_from_dict({**MINIMAL, "rubrics": {"refine": {"profile": "paper"}}})
    assert paper.rubrics.refine == RefineConfig() and paper.reward.rubric.refine_config == RefineConfig()
    mixed = config_from_dict({**MINIMAL, "rubrics": {"refine": {"n_samples": 6}}}).rubrics.refine
    assert mixed == profile_config("local", n_samples=6)
    path = _write(tmp_path, {**MINIMAL, "rubrics": {"refine": {"profile": "fast"}}})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(path) in str(exc.value) and "'profile'" in str(exc.value) and "fast" in str(exc.value)


def test_auto_values_on_cpu():
    cfg = config_from_dict(MINIMAL)
    args = resolve_grpo_args(cfg, cuda=False, vllm=True, bf16_ok=False)
    assert args["use_vllm"] is False and args["bf16"] is False and args["use_cpu"] is True
    assert args["output_dir"] == "runs/train"
    cfg.grpo["use_vllm"] = True
    with pytest.raises(ConfigError, match="no GPU"):
        resolve_grpo_args(cfg, cuda=False, vllm=True, bf16_ok=False)


def test_per_criterion_switches_aggregation():
    cfg = config_from_dict({**MINIMAL, "reward": {"per_criterion": True, "weights": "uniform"}})
    assert cfg.reward.per_criterion and cfg.reward.rubric.weights == "uniform"
    args = resolve_grpo_args(cfg, cuda=False, vllm=False, bf16_ok=False)
    assert args["multi_objective_aggregation"] == "normalize_then_sum"


@pytest.mark.parametrize(
    "patch, where, key",
    [
        ({"polcy": {}}, "top level", "polcy"),
        ({"data": {"source": "x.jsonl", "langauge": "English"}}, "data", "langauge"),
        ({"grpo": {"num_generation": 4}}, "grpo", "num_generation"),
        ({"judge": {"modle": "gpt-4o"}}, "judge", "modle"),
        ({"reward": {"weight": "uniform"}}, "reward", "weight"),
        ({"reward": {"whitening": {"ridgee": 1}}}, "reward.whitening", "ridgee"),
        ({"rubrics": {"refine": {"n_sample": 4}}}, "rubrics.refine", "n_sample"),
    ],
)
def test_unknown_keys_name_key_section_and_file(tmp_path, patch, where, key):
    path = _write(tmp_path, {**MINIMAL, **patch})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert str(path) in msg and repr(key) in msg and repr(where) in msg


def test_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="reward"):
        load_config(_write(tmp_path, {**MINIMAL, "reward": {"weights": "fisher"}}))
    with pytest.raises(ConfigError, match="missing section 'data'"):
        load_config(_write(tmp_path, {"policy": {"model": "x"}}))
    with pytest.raises(ConfigError, match="policy"):
        load_config(_write(tmp_path, {**MINIMAL, "policy": {"model": "x", "dtype": "int3"}}))
    with pytest.raises(ConfigError, match="top level"):
        load_config(_write(tmp_path, {**MINIMAL, "grpo": {"output_dir": "elsewhere"}}))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_and_api_key_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-test")
    raw = {**MINIMAL, "judge": {"model": "gpt-4o", "api_key_env": "MY_JUDGE_KEY"}}
    raw = apply_overrides(raw, ["grpo.learning_rate=1e-5", "data.max_prompts=3", "reward.weights=online_wu",
                                "output_dir=out/x"])
    cfg = config_from_dict(raw)
    assert cfg.grpo["learning_rate"] == 1e-5 and cfg.data.max_prompts == 3
    assert cfg.reward.rubric.weights == "online_wu" and cfg.output_dir == "out/x"
    assert cfg.judge.api_key == "sk-test"
    assert cfg.to_dict()["judge"]["api_key"] == "<redacted>"
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides(raw, ["grpo.learning_rate"])


def test_exponent_floats_without_a_dot(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("policy: {model: x}\ndata: {source: a.jsonl}\ngrpo: {learning_rate: 1e-5, max_steps: 3}\n"
                    "judge: {model: '1e5'}\n")
    cfg = load_config(path)
    assert cfg.grpo["learning_rate"] == 1e-5 and cfg.grpo["max_steps"] == 3 and cfg.judge.model == "1e5"
