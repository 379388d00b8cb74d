"""Progress of `rrd refine`, `rrd judge` and `rrd eval`: the bar (a live tqdm bar on a terminal, a line per
finished item in a log) and the refine postfix it shows."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO


def progress_bar(total: int, desc: str, unit: str, file: TextIO | None = None) -> Any:
    """A tqdm bar when `file` (stderr) is a terminal; a LogBar when it is not, since a redrawn bar written to a
    log appends a line at every refresh (an eval log reached hundreds of KB)."""
    file = file if file is not None else sys.stderr
    if getattr(file, "isatty", lambda: False)():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=file)
    return LogBar(total, desc, unit, file)


class LogBar:
    """The bar for a log: one line per finished item, and the live postfix at most every `every_s` seconds while
    nothing finishes (a heartbeat for long refinements). The same calls as tqdm's that the commands use."""

    def __init__(self, total: int, desc: str, unit: str, file: TextIO, every_s: float = 30.0,
                 clock: Any = time.monotonic):
        self.total, self.desc, self.unit, self.file, self.every_s, self.clock = total, desc, unit, file, every_s, clock
        self.n = 0
        self.postfix = ""
        self.t0 = self.last = clock()
        self.dirty = False

    def update(self, n: int = 1) -> None:
        if n:
            self.n += n
            self._line()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix, self.dirty = s, True
        if self.clock() - self.last >= self.every_s:
            self._line()

    def close(self) -> None:
        if self.dirty:
            self._line()

    def _line(self) -> None:
        now = self.clock()
        spent = now - self.t0
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        rest = f", eta {_clock(spent / self.n * (self.total - self.n))}" if 0 < self.n < self.total else ""
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s{share}, {_clock(spent)} elapsed{rest}"
        print(text + (f" | {self.postfix}" if self.postfix else ""), file=self.file, flush=True)
        self.last, self.dirty = now, False


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


class RefineView:
    """The refine bar's live postfix: the stage and rubric counts of the prompt that changed last, its elapsed
    time and ETA, how many prompts are in flight, and the run's calls. A prompt takes minutes on a local model,
    so the bar must move while it runs, not only when it ends; `tick` refreshes it during long grading waves.

    The ETA of a prompt in its loop is queue length x seconds per decided rubric so far (children join the
    queue, so it can grow); before its loop starts, it is the mean duration of the prompts finished in this run
    minus the time spent, and unknown ("?") until one has finished."""

    def __init__(self, bar: Any, accounting: Any, clock: Any = time.monotonic):
        self.bar, self.accounting, self.clock = bar, accounting, clock
        self.live: dict[str | None, Any] = {}
        self.last: Any = None
        self.started: dict[str | None, float] = {}
        self.loop_started: dict[str | None, float] = {}
        self.durations: list[float] = []

    def __call__(self, progress: Any) -> None:
        now = self.clock()
        pid = progress.prompt_id
        self.started.setdefault(pid, now)
        if progress.stage == "done":
            self.live.pop(pid, None)
            self.durations.append(now - self.started.pop(pid))
            self.loop_started.pop(pid, None)
        else:
            if progress.stage.startswith("grading") and pid not in self.loop_started:
                self.loop_started[pid] = now
            self.live[pid] = progress
            self.last = progress
        self.show()

    def eta(self, progress: Any) -> float | None:
        """Seconds left for this prompt, or None when nothing measured yet can tell."""
        now = self.clock()
        loop_t0 = self.loop_started.get(progress.prompt_id)
        if loop_t0 is not None and progress.processed > 0:
            return progress.queue * (now - loop_t0) / progress.processed
        if self.durations:
            spent = now - self.started.get(progress.prompt_id, now)
            return max(0.0, sum(self.durations) / len(self.durations) - spent)
        return None

    def show(self) -> None:
        parts = []
        p = self.last
        if p is not None and p.prompt_id in self.live:
            spent = self.clock() - self.started.get(p.prompt_id, self.clock())
            eta = self.eta(p)
            parts.append(f"{p.stage} q={p.queue} acc={p.accepted} rej={p.rejected} drop={p.dropped} "
                         f"{_clock(spent)} eta {_clock(eta) if eta is not None else '?'}")
        if len(self.live) > 1:
            parts.append(f"{len(self.live)} in flight")
        parts.append(self.accounting.postfix())
        self.bar.set_postfix_str(" | ".join(parts))

    async def tick(self, every_s: float = 2.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.show()
