"""The weights a step's scores use: the RubricSet's, uniform, or whitened-uniform recomputed from the verdict
matrix of the current rollout group ("online_wu").

A group is every completion of one call that shares a prompt and rubric set (TRL puts a group's num_generations
completions consecutively). When torch.distributed is initialised the groups' verdict rows are gathered from all
processes first (a group may straddle processes); otherwise only the local rows are used. With fewer than
`wu_min_rows` rows, or when WU itself is degenerate (e.g. every rubric constant over the group), the stored
weights are used."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from rrd.records import RubricSet
from rrd.weights import impute_unscored, whitened_uniform_weights

from .config import RubricRewardConfig

Rows = dict[str, list[list[float | None]]]


def distributed_world() -> int:
    """Processes in the torch.distributed group (1 when it is not initialised)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency of the rft extra only
        return 1
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size()


class RowGather:
    """Pools each group's verdict rows from every process (rank order) when torch.distributed is up.

    Every rank calls the reward function once per step, so every rank reaches this collective in step. The
    gather runs over a CPU (gloo) group created on first use (`group`), so it never touches a CUDA device from
    TRL's reward-loop thread; it runs in a worker thread so the event loop keeps serving other rewards."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.group: Any = None

    async def pool(self, rows: Rows) -> Rows:
        if not self.enabled or distributed_world() <= 1:
            return rows
        import torch.distributed as dist

        def gather() -> list[Rows]:
            if self.group is None:
                self.group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
            out: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(out, rows, group=self.group)
            return out

        pooled: Rows = {}
        for part in await asyncio.to_thread(gather):
            for k, r in (part or {}).items():
                pooled.setdefault(k, []).extend(r)
        return pooled


def group_keys(texts: list[str], sets: list[RubricSet | None]) -> list[str | None]:
    """The rollout group of each completion: its prompt and rubric set (None where it has no set)."""
    return [
        None if rs is None else hashlib.sha256(json.dumps([t, rs.texts], ensure_ascii=False).encode()).hexdigest()[:24]
        for t, rs in zip(texts, sets)
    ]


def _stored(rs: RubricSet | None, uniform: bool) -> list[float] | None:
    if rs is None:
        return None
    if uniform or len(rs.weights) != len(rs.texts):
        return [1.0 / len(rs.texts)] * len(rs.texts)
    return list(rs.weights)


async def step_weights(texts: list[str], sets: list[RubricSet | None], values: list[list[float | None]],
                       config: RubricRewardConfig, gather: RowGather) -> tuple[list[list[float] | None], int, int]:
    """(weights per completion, groups scored with online WU, groups that fell back to stored weights)."""
    out = [_stored(rs, config.weights == "uniform") for rs in sets]
    if config.weights != "online_wu":
        return out, 0, 0
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(group_keys(texts, sets)):
        if k is not None:
            groups.setdefault(k, []).append(i)
    rows = await gather.pool({k: [values[i] for i in idx] for k, idx in groups.items()})
    used = fell_back = 0
    for k, idx in groups.items():
        X_rows = rows.get(k, [])
        m = len(values[idx[0]])
        if len(X_rows) < config.wu_min_rows or m == 0 or any(len(r) != m for r in X_rows):
            fell_back += 1
            continue
        result = whitened_uniform_weights(impute_unscored(X_rows, 0.5)[0], config.whitening)
        if result.fell_back:
            fell_back += 1
            continue
        used += 1
        w = [float(x) for x in result.weights]
        for i in idx:
            out[i] = w
    return out, used, fell_back
