"""One summary of several training runs: reward trend with CIs, cost, held-out results, and one plot of all runs.

Why these statistics: a reward curve from a handful of GRPO steps is dominated by which prompt each step drew.
With one prompt per step and TRL's per-epoch shuffle, every block of `prompts` consecutive steps holds each
training prompt exactly once, so the first and last blocks compare the same prompts and their difference is not
a prompt-difficulty artefact. The slope is ordinary least squares of the step reward on the step number with a
t-interval; prompt difficulty stays in its residuals, which widens the interval (conservative), never biases it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from judges.files import atomic_file
from rrd.io import write_atomic

from .curves import LOG_NAME, _series, read_log
from .heldout import HELDOUT_NAME, cluster_bootstrap

SUMMARY_NAME = "summary.json"
PLOT_NAME = "reward_curves.png"


def _by_step(records: Sequence[Mapping[str, Any]], key: str) -> dict[int, float]:
    """{step: value} of `key`, steps in order, a resumed run's repeated step at its latest value."""
    return dict(zip(*_series(records, key)))


def mean_ci(values: Sequence[float], n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """{"mean", "ci", "n"}: a percentile-bootstrap 95% CI of the mean (each value its own cluster)."""
    boot = cluster_bootstrap([[v] for v in values], n=n, seed=seed)
    return {"mean": boot["mean"], "ci": boot["ci"], "n": boot["n"]}


def slope_ci(steps: Sequence[float], values: Sequence[float]) -> dict[str, Any]:
    """OLS slope of values on steps (per step) with its 95% t-interval."""
    from scipy import stats

    if len(steps) < 3:
        return {"per_step": None, "ci": [None, None], "n": len(steps)}
    fit = stats.linregress(steps, values)
    half = stats.t.ppf(0.975, len(steps) - 2) * fit.stderr
    return {"per_step": float(fit.slope), "ci": [float(fit.slope - half), float(fit.slope + half)],
            "n": len(steps), "p_value": float(fit.pvalue)}


def train_stats(records: Sequence[Mapping[str, Any]], block: int = 10) -> dict[str, Any]:
    """Reward trend, speed and memory of one run from its train_log.jsonl records."""
    reward = _by_step(records, "reward")
    times = _by_step(records, "step_time_s")
    steps, values = list(reward), list(reward.values())
    first, last = values[:block], values[-block:]
    gain = None
    if first and last and np.mean(first) > 0:
        gain = float(np.mean(last) / np.mean(first) - 1)
    later = [t for s, t in times.items() if s > 1]  # step 1 includes loading the judge
    rss = [r["peak_rss_mb"] for r in records if isinstance(r.get("peak_rss_mb"), (int, float))]
    lengths = _by_step(records, "completions/mean_length")
    std = _by_step(records, "reward_std")
    clipped = list(_by_step(records, "completions/clipped_ratio").values())
    return {
        "steps": max(steps) if steps else 0,
        "seconds_per_step": float(np.mean(later)) if later else None,
        "seconds_first_step": times.get(1),
        "peak_rss_gb": max(rss) / 1024 if rss else None,
        "train_reward_first10": mean_ci(first),
        "train_reward_last10": mean_ci(last),
        "train_reward_change_last10_vs_first10": gain,
        "train_reward_slope": slope_ci(steps, values),
        "train_reward_by_pass": [float(np.mean(values[i:i + block])) for i in range(0, len(values), block)],
        # a step whose 8 rollouts all got the same reward has zero advantage: no gradient from it
        "zero_reward_std_steps": sum(1 for v in std.values() if v == 0),
        "clipped_completion_share": float(np.mean(clipped)) if clipped else None,
        "train_length_first10": mean_ci(list(lengths.values())[:block]),
        "train_length_last10": mean_ci(list(lengths.values())[-block:]),
    }


def plot_runs(logs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, window: int = 5) -> None:
    """Mean reward (with a rolling mean), reward std, per-criterion pass rates and completion length vs step,
    every run on the same axes. A bare Agg Figure: no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 2)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for (name, records), colour in zip(logs.items(), colours):
        reward = _by_step(records, "reward")
        s, v = list(reward), np.array(list(reward.values()))
        axes[0, 0].plot(s, v, color=colour, alpha=0.35, lw=1)
        if len(v) >= window:
            roll = np.convolve(v, np.ones(window) / window, mode="valid")
            axes[0, 0].plot(s[window - 1:], roll, color=colour, lw=2, label=f"{name} ({window}-step mean)")
        std = _by_step(records, "reward_std")
        axes[0, 1].plot(list(std), list(std.values()), color=colour, label=name)
        keys = sorted({k for r in records for k in r if k.startswith("rubric/pass_rate_c")},
                      key=lambda k: int(k.rsplit("c", 1)[1]))
        for k in keys:
            pr = _by_step(records, k)
            axes[1, 0].plot(list(pr), list(pr.values()), color=colour, alpha=0.3, lw=0.8)
        total = _by_step(records, "rubric/pass_rate")
        axes[1, 0].plot(list(total), list(total.values()), color=colour, lw=2, label=f"{name}: all verdicts")
        length = _by_step(records, "completions/mean_length")
        axes[1, 1].plot(list(length), list(length.values()), color=colour, label=name)
    titles = [("mean reward per step (thin: raw)", "reward"), ("reward std within the batch", "std"),
              ("pass rate: all verdicts (thick), each criterion index (thin)", "pass rate"),
              ("mean completion length (tokens)", "tokens")]
    for ax, (title, ylabel) in zip(axes.flat, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    FigureCanvasAgg(fig)
    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


def _fmt(stat: Any, digits: int = 3, pct: bool = False) -> str:
    """"m [lo, hi]" for a {"mean"|"per_step", "ci"} dict, a plain number otherwise, "n/a" for None."""
    if stat is None:
        return "n/a"
    if isinstance(stat, dict):
        mean = stat.get("mean", stat.get("per_step"))
        lo, hi = stat.get("ci", [None, None])
        if mean is None:
            return "n/a"
        if lo is None:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    if isinstance(stat, list):
        return ", ".join(f"{v:.{digits}f}" for v in stat)
    return f"{100 * stat:+.0f}%" if pct else f"{stat:.{digits}f}" if isinstance(stat, float) else str(stat)


#: (row label, summary key, format options) of the markdown table, in order
ROWS = [
    ("GRPO steps", "steps", {}),
    ("seconds per step (steps 2+)", "seconds_per_step", {"digits": 1}),
    ("peak RSS, GB (policy + judge, one process)", "peak_rss_gb", {"digits": 2}),
    ("train reward, first 10 steps", "train_reward_first10", {}),
    ("train reward, last 10 steps", "train_reward_last10", {}),
    ("train reward change, last 10 vs first 10", "train_reward_change_last10_vs_first10", {"pct": True}),
    ("train reward slope per step [95% t-CI]", "train_reward_slope", {"digits": 4}),
    ("train reward per pass over the prompts (blocks of 10 steps)", "train_reward_by_pass", {}),
    ("steps with zero reward std (no gradient)", "zero_reward_std_steps", {}),
    ("completions cut at max_completion_length", "clipped_completion_share", {"digits": 2}),
    ("train completion length, first 10 steps", "train_length_first10", {"digits": 1}),
    ("train completion length, last 10 steps", "train_length_last10", {"digits": 1}),
    ("held-out reward, base", "heldout_reward_base", {}),
    ("held-out reward, trained", "heldout_reward_trained", {}),
    ("held-out reward gain (paired by prompt)", "heldout_reward_gain", {}),
    ("win rate vs base (direct two-game judge)", "winrate_vs_base", {}),
    ("held-out length, base (tokens)", "mean_length_base", {"digits": 1}),
    ("held-out length, trained (tokens)", "mean_length_trained", {"digits": 1}),
]


def markdown_table(summary: Mapping[str, Any]) -> str:
    """The summary's runs side by side as a markdown table (means with 95% CIs)."""
    names = list(summary["runs"])
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key, opts in ROWS:
        lines.append(f"| {label} | " + " | ".join(_fmt(summary["runs"][n].get(key), **opts) for n in names) + " |")
    games = [summary["runs"][n].get("games") for n in names]
    if any(games):
        cells = [f"{g['won']}/{g['split_or_tied']}/{g['lost']}" + (f" ({g['unread']} unread)" if g["unread"] else "")
                 if g else "n/a" for g in games]
        lines.append("| pairs won/split or tied/lost | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: str | Path, names: Sequence[str]) -> Path:
    """Write out/summary.json ({"runs": {name: train stats + held-out results}}), its table as out/summary.md,
    and out/reward_curves.png, from
    out/<name>/train_log.jsonl and out/heldout.json (when the held-out stage has run)."""
    out = Path(out)
    logs = {n: read_log(out / n / LOG_NAME) for n in names}
    heldout_path = out / HELDOUT_NAME
    heldout = json.loads(heldout_path.read_text(encoding="utf-8")) if heldout_path.exists() else {"runs": {}}
    runs = {}
    for n in names:
        runs[n] = {**train_stats(logs[n]), **heldout["runs"].get(n, {})}
    summary = {"runs": runs, "heldout_prompts": heldout.get("prompts"), "heldout_config": heldout.get("config")}
    write_atomic(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    write_atomic(out / "summary.md", markdown_table(summary))
    if any(logs.values()):
        plot_runs(logs, out / PLOT_NAME)
    return out / SUMMARY_NAME


__all__ = ["PLOT_NAME", "SUMMARY_NAME", "markdown_table", "mean_ci", "plot_runs", "slope_ci", "train_stats",
           "write_summary"]
