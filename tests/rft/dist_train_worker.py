"""One process of a 2-process GRPO run (started by `accelerate launch`); run by test_distributed_train.py.

It spies on rewards.online_wu.RowGather.pool to record, per reward call, how many verdict rows of each rollout
group this process held and how many the cross-process gather pooled, then writes them to OUT_DIR/rank{RANK}.json.

Usage: accelerate launch --cpu --num_processes 2 -m tests.rft.dist_train_worker CONFIG.yaml OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys


def main(config_path: str, out_dir: str) -> None:
    from rewards.online_wu import RowGather, distributed_world
    from rft.config import load_config
    from rft.train import train

    calls: list[dict] = []
    original = RowGather.pool

    async def spy(self, rows):
        pooled = await original(self, rows)
        calls.append({"world": distributed_world(), "local": {k: len(v) for k, v in rows.items()},
                      "pooled": {k: len(v) for k, v in pooled.items()}})
        return pooled

    RowGather.pool = spy
    result = train(load_config(config_path))
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump({"calls": calls, "steps": result.steps, "finished": True}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
