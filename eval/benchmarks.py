"""The benchmarks `rrd eval NAME` knows: each one's loader, default source and split, and kind (which metrics and
report sections it gets)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal

from .loaders import load_judgebench, load_ppe_best_of_k, load_ppe_human
from .policy_loaders import HEALTHBENCH_BLOB, HEALTHBENCH_FILES, HEALTHBENCH_HUB, load_biggen, load_healthbench

Kind = Literal["pairs", "bok", "rm-bench", "rewardbench2", "healthbench", "biggen"]
#: the kinds that evaluate a policy (generate, then grade with the benchmark's own rubrics); the rest judge pairs
POLICY_KINDS: frozenset[str] = frozenset({"healthbench", "biggen"})


@dataclass(frozen=True)
class BenchmarkSpec:
    """What `rrd eval NAME` loads by default; `note` tells the user anything the default cannot do for them."""

    name: str
    loader: Callable[..., list[Any]]
    default_source: str
    default_split: str
    kind: Kind
    note: str = ""

    @property
    def evaluates_policy(self) -> bool:
        return self.kind in POLICY_KINDS


_HB_NOTE = ("Official file: " + HEALTHBENCH_BLOB + "{file} (also on the Hub as openai/healthbench/{file}); "
            "pass the downloaded path as the source, or the Hub id with split {split}.")


def _bok(name: str, hub: str, benchmark: str) -> BenchmarkSpec:
    return BenchmarkSpec(name, partial(load_ppe_best_of_k, benchmark=benchmark), hub, "train", "bok")


def _hb(name: str, split: str) -> BenchmarkSpec:
    note = _HB_NOTE.format(file=HEALTHBENCH_FILES[split], split=split)
    return BenchmarkSpec(name, load_healthbench, HEALTHBENCH_HUB, split, "healthbench", note)


def _rm_bench(source: str, *, split: str = "train", limit: int | None = None) -> list[Any]:
    from .rm_bench import load_rm_bench  # it builds on this module's helpers

    return load_rm_bench(source, split=split, limit=limit)


def _rewardbench2(source: str, *, split: str = "test", limit: int | None = None) -> list[Any]:
    from .rewardbench2 import load_rewardbench2

    return load_rewardbench2(source, split=split, limit=limit)


def _preference_pairs(source: str, *, split: str = "train", limit: int | None = None, fields: Any = None) -> list[Any]:
    from .preference import load_preference_pairs  # it builds on this module's records

    return load_preference_pairs(source, split=split, limit=limit, fields=fields)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("judgebench", load_judgebench, "ScalerLab/JudgeBench", "gpt", "pairs"),
        BenchmarkSpec("pairs", _preference_pairs, "", "train", "pairs",
                      "any preference data: give --data FILE or a Hub id (fields by name or --prompt-field ...)"),
        BenchmarkSpec("rm-bench", _rm_bench, "THU-KEG/RM-Bench", "train", "rm-bench",
                      "or the repository's files, comma-separated: chat_filtered.json,code_filtered.json,..."),
        BenchmarkSpec("rewardbench2", _rewardbench2, "allenai/reward-bench-2", "test", "rewardbench2"),
        BenchmarkSpec("ppe-human", load_ppe_human, "lmarena-ai/PPE-Human-Preference-V1", "test", "pairs"),
        _bok("ppe-mmlu-pro", "lmarena-ai/PPE-MMLU-Pro-Best-of-K", "mmlu-pro"),
        _bok("ppe-math", "lmarena-ai/PPE-MATH-Best-of-K", "math"),
        _bok("ppe-gpqa", "lmarena-ai/PPE-GPQA-Best-of-K", "gpqa"),
        _bok("ppe-ifeval", "lmarena-ai/PPE-IFEval-Best-of-K", "ifeval"),
        _bok("ppe-mbpp-plus", "lmarena-ai/PPE-MBPP-Plus-Best-of-K", "mbpp-plus"),
        _hb("healthbench", "oss_eval"),
        _hb("healthbench-hard", "hard"),
        _hb("healthbench-consensus", "consensus"),
        BenchmarkSpec("biggen", load_biggen, "prometheus-eval/BiGGen-Bench", "test", "biggen"),
    )
}
