"""The report's figures and the rubric statistics behind them: accuracy by method and by slice, rubric edges,
and the correlation heatmap of the largest stored rubric set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rrd.io import read_jsonl
from rrd.records import RubricSet


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _error(value: float, ci: Sequence[float]) -> list[float]:
    return [max(0.0, value - ci[0]), max(0.0, ci[1] - value)]


def plot_accuracy(summaries: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    plt = _plt()
    names = list(summaries)
    acc = [summaries[n]["accuracy"] for n in names]
    err = np.array([_error(summaries[n]["accuracy"], summaries[n]["ci"]) for n in names]).T
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 3.6))
    ax.bar(names, acc, yerr=err, capsize=4, color="#4c72b0")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="chance (0.5)")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_by_slice(summaries: dict[str, dict[str, Any]], key: str, path: Path, title: str) -> bool:
    """Bars per slice and method; False (and no file) when no method has slices, so no dead link is written."""
    plt = _plt()
    names = list(summaries)
    slices = sorted({s for n in names for s in summaries[n].get(key, {})})
    if not slices:
        return False
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.6 * len(slices) + 2.5, 3.8))
    for i, n in enumerate(names):
        per = summaries[n].get(key, {})
        xs = [j + i * width for j, s in enumerate(slices) if s in per]
        ys = [per[s]["accuracy"] for s in slices if s in per]
        err = np.array([_error(per[s]["accuracy"], per[s]["ci"]) for s in slices if s in per]).T
        ax.bar(xs, ys, width, yerr=err if len(ys) else None, capsize=3, label=n)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(slices))])
    ax.set_xticklabels([f"{s}\n(n={max(summaries[n].get(key, {}).get(s, {}).get('n', 0) for n in names)})"
                        for s in slices], fontsize=8)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def sets_path(out_dir: Path, method: str) -> Path:
    """Where a run keeps the rubric sets of one method (appended by eval.judging as they are refined)."""
    return out_dir / "rubrics" / f"{method}.jsonl"


def stored_sets(out_dir: Path, method: str) -> list[RubricSet]:
    """The latest stored rubric set per key for a method (a re-refined set supersedes an earlier one)."""
    latest = {d["prompt_id"]: d for d in read_jsonl(sets_path(out_dir, method))}
    return [RubricSet.from_dict(d) for d in latest.values()]


def tree_reasons(sets: Sequence[RubricSet], status: str) -> Counter[str]:
    """Reasons of the tree nodes with `status` ("rejected" or "dropped") over several rubric sets."""
    return Counter(r.reason for rs in sets for r in rs.tree if r.status == status)


def verdict_matrix(rubric_set: RubricSet) -> np.ndarray:
    """Rubrics x responses (the samples, then the misalignment references), 1/0 with NaN where unscored: every
    response to this prompt each accepted rubric was graded on."""
    rows = []
    for rubric, sample_verdicts in zip(rubric_set.rubrics, rubric_set.verdicts):
        cells = [*sample_verdicts, rubric.strong, rubric.weak]
        rows.append([np.nan if v is None else float(v) for v in cells])
    return np.array(rows, dtype=float)


def rubric_correlation(rubric_set: RubricSet) -> np.ndarray:
    x = verdict_matrix(rubric_set)
    x = x[:, ~np.isnan(x).any(axis=0)] if x.size else x
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(x) if x.shape[1] >= 3 else np.full((len(x), len(x)), np.nan)


def plot_heatmap(rubric_set: RubricSet, method: str, path: Path) -> str:
    plt = _plt()
    corr = rubric_correlation(rubric_set)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(np.nan_to_num(corr, nan=0.0), vmin=-1, vmax=1, cmap="RdBu_r")
    k = len(corr)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels([f"r{i}" for i in range(k)], fontsize=7)
    ax.set_yticklabels([f"r{i}" for i in range(k)], fontsize=7)
    n_resp = verdict_matrix(rubric_set).shape[1] if k else 0
    ax.set_title(f"{method}: rubric verdict correlation\n({k} rubrics over {n_resp} responses; grey = constant)",
                 fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"{k} rubrics of prompt `{rubric_set.prompt_id}` over {n_resp} graded responses"


def rubric_edges(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Per-rubric edge on labelled pairs: verdict on the preferred response minus on the other (in [-1, 1])."""
    edges = []
    for r in rows:
        label, verdicts = r.get("label"), r.get("verdicts")
        if label not in ("A", "B") or not verdicts or len(verdicts) != 2:
            continue
        win, lose = (verdicts[0], verdicts[1]) if label == "A" else (verdicts[1], verdicts[0])
        edges += [float(w) - float(v) for w, v in zip(win, lose) if w is not None and v is not None]
    return edges


def plot_edges(edges_by_method: dict[str, list[float]], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    bins = np.linspace(-1.05, 1.05, 22)
    for name, edges in edges_by_method.items():
        ax.hist(edges, bins=bins, alpha=0.55, label=f"{name} (n={len(edges)}, mean {np.mean(edges):+.3f})")
    ax.set_xlabel("edge = verdict(preferred) - verdict(other)")
    ax.set_ylabel("rubric x pair count")
    ax.set_title("per-rubric edges on labelled pairs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
