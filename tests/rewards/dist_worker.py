"""Two real processes (gloo on CPU) sharing one rollout group for online WU; run by test_distributed.py.

Usage: python -m tests.rewards.dist_worker INIT_FILE OUT_DIR
"""

from __future__ import annotations

import asyncio
import json
import sys


def worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    from rewards import RubricReward, RubricRewardConfig
    from tests.rewards.helpers import make_judge, trl_kwargs
    from tests.rewards.test_reward_func import GROUP, P3, WU_SETS

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        part = GROUP[:2] if rank == 0 else GROUP[2:]  # the group straddles the two processes
        judge, _ = make_judge()
        rr = RubricReward(judge, WU_SETS, RubricRewardConfig(weights="online_wu", score="hard"))
        out = asyncio.run(rr.reward_func(**trl_kwargs([P3] * len(part), part)))
        with open(f"{out_dir}/rank{rank}.json", "w") as fh:
            json.dump(out, fh)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    mp.spawn(worker, args=(sys.argv[1], sys.argv[2]), nprocs=2, join=True)
