"""TrainConfig: everything one `rrd train` run needs, as a dataclass tree read from one YAML file.

Why a tree of dataclasses and not a free dict: a typo in a paid, hours-long GPU run must fail at load time, naming
the key and the file, not after the rubric precompute has spent the budget. Every section maps onto the config
object of the layer it configures (JudgeConfig, RefineConfig, RubricRewardConfig, trl.GRPOConfig), so a field
has one name everywhere. Nothing here imports torch; trl is imported only to check the `grpo` keys.

YAML layout (every section optional except `policy` and `data`):

    output_dir: runs/smoke            # checkpoints, train_log.jsonl, reward_curve.png, rubrics (by default)
    torch_threads: 2                  # torch intra-op threads (None: torch's default)
    policy:   {model, dtype, trust_remote_code, attn_implementation}
    data:     {source, split, prompt_field, language, drop_toxic, drop_redacted, single_turn_only, dedup,
               min_chars, max_chars, max_prompts, scan_limit, seed}
    rubrics:  {path, refine_missing, prompt_concurrency, refine: {profile, RefineConfig fields}}
              # profile: auto (default: local's settings when judge and proposer are local:), paper or local
    judge:    {JudgeConfig fields, api_key_env}
    proposer: {JudgeConfig fields, api_key_env}   # omitted: the judge's settings
    reward:   {per_criterion, per_criterion_k, RubricRewardConfig fields (whitening as a nested dict)}
    grpo:     {trl.GRPOConfig fields; Dr.GRPO defaults below; use_vllm/bf16/use_cpu accept "auto"}
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from judges.judge import JudgeConfig, judge_config_from_mapping
from judges.settings import ConfigError, check_keys, config_from_mapping, validate, yaml_load
from rrd.config import RefineConfig, profile_settings, resolve_profile
from rrd.jobs import BatchConfig

#: Dr.GRPO (Liu et al., 2025, "Understanding R1-Zero-Like Training") as TRL 1.x spells it, plus the paper's RFT
#: setting (8 rollouts per prompt, 1,000 steps). See `grpo_defaults_doc` for why each value.
DR_GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 8,  # paper: 8 rollouts per prompt
    "loss_type": "dr_grpo",  # token losses summed and divided by a constant (batch x max_completion_length)
    "scale_rewards": "none",  # advantage = r - group mean, no division by the group std
    "beta": 0.0,  # no KL term (Dr.GRPO drops it; also no reference model in memory)
    "max_steps": 1000,
    "max_completion_length": 512,
    "learning_rate": 1e-6,
    "per_device_train_batch_size": 8,  # one group of 8 per device per micro-step
    "logging_steps": 1,  # one reward-curve point per step
    "save_steps": 100,
    "report_to": "none",
    "use_vllm": "auto",  # True only with CUDA and vllm importable
    "bf16": "auto",  # True on a bf16-capable GPU, False on CPU (fp32 training)
    "use_cpu": "auto",  # True when no GPU is visible
}

#: keys that are ours, not GRPOConfig's: they are resolved before GRPOConfig is built
AUTO_KEYS = ("use_vllm", "bf16", "use_cpu")


# ----------------------------------------------------------------------------------------------------- sections
@dataclass
class PolicyConfig:
    """The policy being trained.

    model: a Hub id ("Qwen/Qwen3-4B"), a local transformers folder, a .gguf file, or "bundled:NAME" for a model
    shipped in the judges registry (e.g. "bundled:smollm2-135m": the SmolLM2 GGUF, dequantized once and cached).
    dtype: "auto" trains in bfloat16 on a GPU and float32 on CPU (bf16 optimizer steps on CPU are slow and lossy).
    """

    model: str = ""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    attn_implementation: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("policy.model is required")
        validate(self)  # dtype (judges.settings)


@dataclass
class DataConfig:
    """Where prompts come from and which survive (WildChat-style filters; see rft.prompts).

    source: a .jsonl/.json/.csv file or a Hub dataset id ("allenai/WildChat-1M", "name:config" for a config).
    language: keep only prompts in this language (case-insensitive; None keeps all; records without a language
    field are kept). drop_redacted: WildChat marks turns whose PII was replaced by placeholders; off by default
    because redaction is not toxicity. single_turn_only: drop conversations with more than one user turn
    (otherwise their first user turn is the prompt). scan_limit: read at most this many source rows (a cheap
    cap for huge Hub sets). max_prompts: keep this many after filtering, dedup and a seeded shuffle.
    """

    source: str = ""
    split: str = "train"
    prompt_field: str | None = None
    language: str | None = "English"
    drop_toxic: bool = True
    drop_redacted: bool = False
    single_turn_only: bool = False
    dedup: bool = True
    min_chars: int = 1
    max_chars: int | None = None
    max_prompts: int | None = None
    scan_limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("data.source is required (a prompts file or a Hub dataset id)")
        if self.min_chars < 0 or (self.max_chars is not None and self.max_chars < self.min_chars):
            raise ValueError("need 0 <= data.min_chars <= data.max_chars")
        if self.max_prompts is not None and self.max_prompts < 1:
            raise ValueError("data.max_prompts must be >= 1 or null")


@dataclass
class RubricsConfig:
    """Rubric sets for the prompts: read from `path`, refined with RRD first where missing.

    path: a rubrics.jsonl (full RubricSets or the short form {"prompt", "rubrics": [...]}); None means
    <output_dir>/rubrics.jsonl. refine_missing: run `rrd refine` (appending to `path`, resumable) for prompts with
    no set; when false those prompts are dropped from training with a warning, since they could only give None.
    refine: the settings of that refinement; a YAML file's are laid over a profile (`refine.profile`: auto, the
    default, paper or local), resolved from the judge and proposer as `rrd refine` resolves --profile.
    """

    path: str | None = None
    refine_missing: bool = True
    prompt_concurrency: int = BatchConfig.prompt_concurrency
    refine: RefineConfig = field(default_factory=RefineConfig)

    def __post_init__(self) -> None:
        if self.prompt_concurrency < 1:
            raise ValueError("rubrics.prompt_concurrency must be >= 1")


@dataclass
class RewardConfig:
    """How verdicts become rewards: rewards.RubricRewardConfig (`rubric`) plus how the functions are wired.

    per_criterion: one reward function per rubric index (rubric_0..rubric_{K-1}) with TRL's
    multi_objective_aggregation="normalize_then_sum" instead of the single weighted score; K is
    per_criterion_k, or the largest rubric count among the training prompts.
    """

    per_criterion: bool = False
    per_criterion_k: int | None = None
    rubric: Any = None  # rewards.RubricRewardConfig (typed Any so this module does not import rewards)

    def __post_init__(self) -> None:
        if self.rubric is None:
            from rewards import RubricRewardConfig

            self.rubric = RubricRewardConfig()
        if self.per_criterion_k is not None and self.per_criterion_k < 1:
            raise ValueError("reward.per_criterion_k must be >= 1 or null")


@dataclass
class TrainConfig:
    """One GRPO run. Build it with `load_config(path)` or `config_from_dict(d)`."""

    policy: PolicyConfig
    data: DataConfig
    output_dir: str = "runs/train"
    torch_threads: int | None = None
    rubrics: RubricsConfig = field(default_factory=RubricsConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    #: None: the judge's settings (the same model writes and checks rubrics)
    proposer: JudgeConfig | None = None
    reward: RewardConfig = field(default_factory=RewardConfig)
    #: trl.GRPOConfig keyword arguments, DR_GRPO_DEFAULTS filled in; "auto" values resolved by rft.train
    grpo: dict[str, Any] = field(default_factory=lambda: dict(DR_GRPO_DEFAULTS))
    #: where it was read from (for messages), not a setting
    source: str | None = None

    @property
    def rubrics_path(self) -> Path:
        return Path(self.rubrics.path) if self.rubrics.path else Path(self.output_dir) / "rubrics.jsonl"

    @property
    def proposer_config(self) -> JudgeConfig:
        return self.proposer if self.proposer is not None else self.judge

    def to_dict(self) -> dict[str, Any]:
        """A plain, YAML-safe snapshot with API keys redacted (written next to the checkpoints)."""
        d = asdict(self)
        d.pop("source", None)
        for section in ("judge", "proposer"):
            if d.get(section) and d[section].get("api_key"):
                d[section]["api_key"] = "<redacted>"
        return d


# ------------------------------------------------------------------------------------------------------ loading
def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def _grpo(d: Mapping[str, Any] | None, source: str | None) -> dict[str, Any]:
    from trl.trainer.grpo_config import GRPOConfig  # the field list only; the trainer loads in rft.train

    merged = dict(DR_GRPO_DEFAULTS)
    merged.update(dict(d or {}))
    check_keys(merged, _names(GRPOConfig), "grpo", source)
    if "output_dir" in (d or {}):
        raise ConfigError(f"{source or 'config'}: set output_dir at the top level, not in 'grpo'")
    for key in AUTO_KEYS:
        if merged.get(key) not in ("auto", True, False, None):
            raise ConfigError(f"{source or 'config'}: grpo.{key} must be true, false or auto")
    return merged


def _refine_profile(rubrics: Any, judge: JudgeConfig, proposer: JudgeConfig | None,
                    source: str | None) -> Any:
    """The rubrics section with its refine settings laid over their profile (rubrics.refine.profile, auto by
    default), resolved by the rule the commands use (rrd.config.resolve_profile): a run whose judge and proposer
    are local: refines missing sets with the local profile's settings, as `rrd refine` would."""
    rubrics = {} if rubrics is None else rubrics
    if not isinstance(rubrics, Mapping) or not isinstance(rubrics.get("refine") or {}, Mapping):
        return rubrics  # not a mapping: config_from_mapping names the section and the file
    refine = dict(rubrics.get("refine") or {})
    profile = refine.pop("profile", "auto")
    try:
        resolved = resolve_profile(str(profile), judge.model, proposer.model if proposer else None, refine)
        return {**rubrics, "refine": profile_settings(resolved, refine)}
    except ValueError as e:
        raise ConfigError(f"{source or 'config'}: section 'rubrics.refine', key 'profile': {e}") from None


def config_from_dict(raw: Mapping[str, Any], source: str | None = None) -> TrainConfig:
    """Validate a parsed YAML mapping into a TrainConfig (ConfigError names the bad key and the file)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source or 'config'}: expected a mapping at the top level")
    raw = copy.deepcopy(dict(raw))
    check_keys(raw, [n for n in _names(TrainConfig) if n != "source"], "top level", source)
    for required in ("policy", "data"):
        if required not in raw:
            raise ConfigError(f"{source or 'config'}: missing section {required!r}")

    judge = judge_config_from_mapping(raw.get("judge"), "judge", source)
    proposer = judge_config_from_mapping(raw["proposer"], "proposer", source) if raw.get("proposer") else None
    rubrics = config_from_mapping(RubricsConfig, _refine_profile(raw.get("rubrics"), judge, proposer, source),
                                  "rubrics", source)

    from rewards import RubricRewardConfig

    # YAML keeps reward flat: RewardConfig's own keys beside RubricRewardConfig's (refine_config comes from rubrics)
    reward_raw = dict(raw.get("reward") or {})
    own = {k: reward_raw.pop(k) for k in ("per_criterion", "per_criterion_k") if k in reward_raw}
    check_keys({**reward_raw, **own}, [n for n in _names(RubricRewardConfig) if n != "refine_config"]
               + ["per_criterion", "per_criterion_k"], "reward", source)
    rubric_cfg = config_from_mapping(RubricRewardConfig, reward_raw, "reward", source, refine_config=rubrics.refine)
    reward = config_from_mapping(RewardConfig, own, "reward", source, rubric=rubric_cfg)

    top = {k: raw[k] for k in ("output_dir", "torch_threads") if k in raw}
    if "output_dir" in top and not isinstance(top["output_dir"], str):
        raise ConfigError(f"{source or 'config'}: output_dir must be a path string")
    return TrainConfig(
        policy=config_from_mapping(PolicyConfig, raw.get("policy"), "policy", source),
        data=config_from_mapping(DataConfig, raw.get("data"), "data", source),
        rubrics=rubrics,
        judge=judge,
        proposer=proposer,
        reward=reward,
        grpo=_grpo(raw.get("grpo"), source),
        source=source,
        **top,
    )


def apply_overrides(raw: dict[str, Any], assignments: Sequence[str], source: str | None = None) -> dict[str, Any]:
    """`section.key=value` overrides from the command line (value parsed as YAML: 1e-5, true, [a, b], null)."""
    out = copy.deepcopy(raw)
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. grpo.learning_rate=1e-5")
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = yaml_load(value)
    return out


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML TrainConfig. Relative paths inside stay relative to the working directory (like the CLI)."""
    import yaml

    path = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml_load(fh) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if overrides:
        raw = apply_overrides(raw, overrides, path)
    return config_from_dict(raw, source=path)
