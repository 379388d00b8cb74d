"""Reward curves next to the checkpoints: every log as a JSONL line, and a PNG re-drawn on each log.

Why files and not a dashboard: a CPU smoke run and a cluster run should leave the same two artefacts a person can
open without an account or a running server — `train_log.jsonl` (one line per logging step: TRL's metrics plus
our timing and memory) and `reward_curve.png` (mean reward, reward std, per-criterion pass rates vs step).
Both are replaced atomically, so a plot opened mid-run is never half-written; only the main process writes.

Keys TRL 1.x logs that are plotted: "reward" and "reward_std" (the weighted sum over reward functions, over the
whole batch), "rewards/<func>/mean"; and from rewards.RubricReward via log_metric: "rubric/pass_rate" (all
verdicts) and "rubric/pass_rate_c{k}" (the k-th rubric of each prompt).
"""

from __future__ import annotations

import json
import math
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from transformers import TrainerCallback

from judges.files import atomic_file

LOG_NAME = "train_log.jsonl"
PLOT_NAME = "reward_curve.png"
_CRITERION = re.compile(r"^rubric/pass_rate_c(\d+)$")
_FUNC_MEAN = re.compile(r"^rewards/(.+)/mean$")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1 << 20) if sys.platform == "darwin" else rss / 1024


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The log's records; a torn last line (crash mid-write) is skipped."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out


def _series(records: Iterable[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) for `key`; a repeated step (a resumed run) keeps its latest value."""
    by_step: dict[int, float] = {}
    for r in records:
        v, step = r.get(key), r.get("step")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and isinstance(step, int):
            by_step[step] = float(v)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def plot_curves(records: list[Mapping[str, Any]], path: str | os.PathLike[str], title: str = "") -> bool:
    """Draw mean reward, reward std and per-criterion pass rates vs step into `path` (atomically).

    Returns False (and writes nothing) when no record has a reward yet. Uses a bare Figure with the Agg canvas,
    never pyplot, so it holds no global state and works in any thread or process.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in records if "reward" in r]
    if not rows:
        return False
    keys = set().union(*(r.keys() for r in rows))
    crit = sorted((int(m.group(1)), k) for k in keys if (m := _CRITERION.match(k)))
    funcs = sorted(k for k in keys if _FUNC_MEAN.match(k))

    fig = Figure(figsize=(13, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax_r, ax_s, ax_c = fig.subplots(1, 3)
    steps, vals = _series(rows, "reward")
    ax_r.plot(steps, vals, marker="o", ms=3, lw=1.5, label="reward (weighted sum)")
    if len(funcs) > 1:  # one line per function only when it adds information
        for k in funcs[:8]:
            ax_r.plot(*_series(rows, k), lw=0.8, alpha=0.7, label=_FUNC_MEAN.match(k).group(1))  # type: ignore
    ax_r.set_title("mean reward")
    ax_s.plot(*_series(rows, "reward_std"), marker="o", ms=3, lw=1.5, color="tab:orange")
    ax_s.set_title("reward std (batch)")
    for k_idx, k in crit:
        ax_c.plot(*_series(rows, k), lw=1.0, label=f"c{k_idx}")
    if "rubric/pass_rate" in keys:
        ax_c.plot(*_series(rows, "rubric/pass_rate"), lw=2.2, color="black", label="all")
    ax_c.set_title("rubric pass rate")
    ax_c.set_ylim(-0.05, 1.05)
    for ax in (ax_r, ax_s, ax_c):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if ax_r.get_legend_handles_labels()[0] and len(funcs) > 1:
        ax_r.legend(fontsize=7)
    if crit or "rubric/pass_rate" in keys:
        ax_c.legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    with atomic_file(path, "wb") as fh:
        fig.savefig(fh, format="png")
    return True


class RewardCurveCallback(TrainerCallback):
    """Appends each log to <output_dir>/train_log.jsonl and re-draws <output_dir>/reward_curve.png.

    Each line is {"step", "time_s" (since training began), "step_time_s" (mean seconds per step since the
    previous log), "peak_rss_mb" (this process), **TRL's logs}. Only the world's main process writes.
    """

    def __init__(self, output_dir: str | os.PathLike[str] | None = None, title: str = "", plot_every: int = 1):
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.title = title
        self.plot_every = max(1, plot_every)
        self._t0: float | None = None
        self._last: tuple[float, int] | None = None
        self._logs = 0
        #: seconds per step of each log of this run (main process only), for the run's summary
        self.step_times: list[float] = []

    def _dir(self, args: Any) -> Path:
        return self.output_dir if self.output_dir is not None else Path(args.output_dir)

    @property
    def log_path(self) -> Path | None:
        return self.output_dir / LOG_NAME if self.output_dir is not None else None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = time.monotonic()
        self._last = (self._t0, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.monotonic()
        t0 = self._t0 if self._t0 is not None else now
        record: dict[str, Any] = {"step": int(state.global_step), "time_s": round(now - t0, 3)}
        if self._last is not None and state.global_step > self._last[1]:
            record["step_time_s"] = round((now - self._last[0]) / (state.global_step - self._last[1]), 3)
            self.step_times.append(record["step_time_s"])
            self._last = (now, state.global_step)
        record["peak_rss_mb"] = round(peak_rss_mb(), 1)
        for k, v in logs.items():
            if isinstance(v, float) and not math.isfinite(v):
                v = None  # JSON has no NaN; a metric with no valid value this step
            record[k] = v
        out = self._dir(args)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / LOG_NAME, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._logs += 1
        if "reward" in logs and self._logs % self.plot_every == 0:
            plot_curves(read_log(out / LOG_NAME), out / PLOT_NAME, self.title)

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            out = self._dir(args)
            plot_curves(read_log(out / LOG_NAME), out / PLOT_NAME, self.title)
