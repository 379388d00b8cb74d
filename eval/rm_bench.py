"""RM-Bench (THU-KEG, arXiv 2410.16184): three chosen and three rejected responses per prompt, in three styles.

Styles are [concise, detailed plain text, detailed markdown]. The official score (THU-KEG/RM-Bench at 73c52d7,
scripts/utils.py `compute_accuracy`) compares every chosen[i] with every rejected[j]: a 3x3 matrix of accuracies
over the items, whose upper triangle (chosen plainer than rejected) is *hard*, diagonal *normal* and lower
triangle *easy*. A domain's score is the mean of the three, domains are chat, code, math and safety (the two
safety files are one domain, as `split_dataset_by_domain` matches on the prefix), and the overall score is the
mean of the domains; a comparison is won only with a strictly higher score.

Rubric methods score the six responses pointwise, exactly as a reward model does. The pairwise direct judge plays
the nine (chosen[i], rejected[j]) comparisons as two-game pairs; a cell is won iff the counter favours the
chosen one (the repository defines no protocol for pairwise judges; docs/protocols.md).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from rrd.io import InputError, Row

from .loaders import ChosenRejectedItem, _id, _load, _unique

HUB_ID = "THU-KEG/RM-Bench"
DOMAINS = ("chat", "code", "math", "safety")
STYLES = ("concise", "detailed", "markdown")
N_STYLES = len(STYLES)


@dataclass(frozen=True)
class RMBenchItem(ChosenRejectedItem):
    """One prompt; `chosen` and `rejected` hold one response per style, in STYLES order."""

    domain: str  # as the file names it (e.g. safety-refuse); scoring merges it by prefix
    subset: str

    @property
    def comparisons(self) -> list[tuple[int, int]]:
        """(chosen index, rejected index) of the 3x3 matrix, as indices into `responses`."""
        return [(i, N_STYLES + j) for i in range(N_STYLES) for j in range(N_STYLES)]


def score_domain(domain: str) -> str:
    """The domain an item is scored in: the official code matches chat/code/math/safety by prefix."""
    for name in DOMAINS:
        if domain.startswith(name):
            return name
    return domain


def _file_domain(source: str) -> str | None:
    stem = Path(source.partition("[")[0]).name.split("_filtered")[0].split(".")[0].lower()
    return stem if stem.startswith(DOMAINS) else None


def _styles(row: Row, key: str) -> tuple[str, ...]:
    value = row.get(key, kind=list)
    if len(value) != N_STYLES or not all(isinstance(v, str) for v in value):
        raise InputError(row.source, row.line, key, f"expected {N_STYLES} strings ({', '.join(STYLES)})")
    return tuple(value)


def _item(row: Row) -> RMBenchItem:
    domain = row.get("domain", required=False) or _file_domain(row.source)
    if domain is None:
        raise InputError(row.source, row.line, "domain", "missing: add the field, or name the file after its "
                                                         "domain (chat_filtered.json, safety-refuse_filtered.json)")
    return RMBenchItem(id=f"{domain}:{_id(row, 'id')}", prompt=row.get("prompt"), chosen=_styles(row, "chosen"),
                       rejected=_styles(row, "rejected"), domain=domain,
                       subset=str(row.get("subset", required=False) or domain))


def load_rm_bench(source: str, *, split: str = "train", limit: int | None = None) -> list[RMBenchItem]:
    """RM-Bench items from the Hub (THU-KEG/RM-Bench, whose rows name their domain) or from the repository's
    files; several files are given comma-separated (`chat_filtered.json,code_filtered.json`). Ids are prefixed
    with the domain, since the files number their items independently."""
    located = [x for part in source.split(",") if part.strip()
               for x in _load(part.strip(), split, limit, _item)]
    return _unique(located, lambda r: r.id, "id")[:limit]


# --- scoring ---


def _two_game_won(game1: str | None, game2: str | None) -> bool:
    score = sum({"A": 1, "B": -1}.get(g or "", 0) for g in (game1, game2))
    return score > 0  # the chosen response is always shown as A in the first game


def cell_matrix(row: Mapping[str, Any]) -> np.ndarray:
    """3x3 of 1/0: did the method rank chosen[i] above rejected[j]? From pointwise `scores` (six: chosen, then
    rejected; a missing score loses) or from pairwise `comparisons` ([i, j, game1, game2] per cell)."""
    m = np.zeros((N_STYLES, N_STYLES))
    if row.get("comparisons") is not None:
        for i, j, g1, g2 in row["comparisons"]:
            m[i][j - N_STYLES] = float(_two_game_won(g1, g2))
        return m
    scores = row["scores"]
    chosen, rejected = scores[:N_STYLES], scores[N_STYLES:]
    for i, c in enumerate(chosen):
        for j, r in enumerate(rejected):
            m[i][j] = float(c is not None and r is not None and c > r)
    return m


def accuracies(matrix: np.ndarray) -> dict[str, float]:
    """hard / normal / easy of a mean cell matrix, as compute_accuracy defines them."""
    off = N_STYLES * (N_STYLES - 1) / 2
    return {"hard_acc": float(np.sum(np.triu(matrix, 1)) / off), "normal_acc": float(np.mean(np.diag(matrix))),
            "easy_acc": float(np.sum(np.tril(matrix, -1)) / off)}


def _scores(mats: Mapping[str, np.ndarray]) -> dict[str, float]:
    """{domain: avg, hard_acc, normal_acc, easy_acc, total_avg_acc} from per-domain stacks of cell matrices."""
    per = {d: accuracies(m.mean(axis=0)) for d, m in mats.items()}
    out: dict[str, float] = {d: float(np.mean(list(a.values()))) for d, a in per.items()}
    for key in ("hard_acc", "normal_acc", "easy_acc"):
        out[key] = float(np.mean([a[key] for a in per.values()]))
    out["total_avg_acc"] = float(np.mean([out[d] for d in per]))
    return out


def _missing(row: Mapping[str, Any]) -> int:
    if row.get("comparisons") is not None:
        return sum(g is None for c in row["comparisons"] for g in c[2:])
    return sum(s is None for s in row["scores"])


def rm_bench_summary(rows: Iterable[Mapping[str, Any]], n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The official RM-Bench scores of one method's rows {domain, scores | comparisons}, with percentile
    bootstrap 95% CIs (items resampled within each domain)."""
    rows = [r for r in rows if not r.get("skipped")]
    by_domain: dict[str, list[np.ndarray]] = defaultdict(list)
    missing = 0
    for row in rows:
        by_domain[score_domain(row["domain"])].append(cell_matrix(row))
        missing += _missing(row)
    if not by_domain:
        return {"n": 0, "total_avg_acc": math.nan, "ci": {}, "per_domain": {}, "matrix": None, "missing": 0}
    mats = {d: np.stack(v) for d, v in sorted(by_domain.items())}
    point = _scores(mats)
    rng = np.random.default_rng(seed)
    boot: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_bootstrap):
        sample = {d: m[rng.integers(0, len(m), len(m))] for d, m in mats.items()}
        for key, value in _scores(sample).items():
            boot[key].append(value)
    ci = {key: tuple(float(x) for x in np.percentile(v, [2.5, 97.5])) for key, v in boot.items()}
    per_domain = {d: {"n": len(m), "avg": point[d], **accuracies(m.mean(axis=0))} for d, m in mats.items()}
    return {"n": len(rows), **{k: point[k] for k in ("total_avg_acc", "hard_acc", "normal_acc", "easy_acc")},
            "ci": ci, "per_domain": per_domain, "matrix": np.mean([m.mean(axis=0) for m in mats.values()],
                                                                  axis=0).tolist(),
            "missing": missing}

