"""Held-out evaluation of trained policies against their base: rubric reward, an independent win rate, lengths.

Why three measures: a rising training reward can come from memorising the training prompts' rubrics, from a
length or format hack the judge likes, or from real improvement. On prompts the policy never trained on, (1) the
mean rubric reward under the same kind of rubric sets and the same judge shows whether the reward generalises;
(2) the direct two-game pairwise judge, which never sees a rubric, checks that the change is one a judge prefers
(it cannot be gamed through the rubric texts); (3) the completion lengths make a length hack visible.

Statistics are clustered by prompt: the K completions of one prompt are not independent, so every 95% CI is a
percentile bootstrap that resamples prompts (all of a prompt's completions travel together), and trained-vs-base
differences are paired within prompt. Every completion, reward and game is appended to a JSONL file as it
arrives, so an interrupted evaluation resumes without regenerating or re-judging anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from judges.judge import DEFAULT_JUDGE, Judge, JudgeConfig
from judges.types import flip
from rrd.io import JsonlAppender, read_rows, write_atomic
from rrd.records import load_rubric_sets, prompt_key

from .prompts import extract, normalise_text

HELDOUT_NAME = "heldout.json"


@dataclass
class HeldoutConfig:
    """How the held-out completions are sampled and judged.

    Sampling matches training (rft_learning.yaml: temperature 1.0, 128 new tokens), so the held-out reward
    measures the distribution GRPO optimised. winrate_pairs: completions per prompt paired with the base's
    same-index completion and played as two games (None: all samples_per_prompt).
    """

    samples_per_prompt: int = 4
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    winrate_pairs: int | None = None
    judge: str = DEFAULT_JUDGE
    cache_path: str | None = None
    pairwise_max_tokens: int = 512
    n_bootstrap: int = 2000
    torch_threads: int | None = 2

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or self.n_bootstrap < 100:
            raise ValueError("samples_per_prompt >= 1, max_new_tokens >= 1 and n_bootstrap >= 100 are required")
        if self.winrate_pairs is not None and not 1 <= self.winrate_pairs <= self.samples_per_prompt:
            raise ValueError("winrate_pairs must be in [1, samples_per_prompt] or None")

    @property
    def pairs(self) -> int:
        return self.samples_per_prompt if self.winrate_pairs is None else self.winrate_pairs


# ------------------------------------------------------------------------------------------------- statistics
def cluster_bootstrap(groups: Sequence[Sequence[float]], n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """{"mean", "ci", "n", "prompts"}: the mean over all values, with a 95% CI from resampling whole groups.

    Empty groups (a prompt whose completions all went unscored) are left out, and said so by `prompts`.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return {"mean": None, "ci": [None, None], "n": 0, "prompts": 0}
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(groups), size=(n, len(groups)))
    boot = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean": float(sums.sum() / counts.sum()), "ci": [float(lo), float(hi)], "n": int(counts.sum()),
            "prompts": len(groups)}


def paired_difference(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]], n: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Mean over prompts of (mean of a - mean of b) within each prompt scored in both, with a bootstrap CI."""
    keys = [k for k in a if len(a[k]) and len(b.get(k, ()))]
    if not keys:
        return {"mean": None, "ci": [None, None], "prompts": 0}
    boot = cluster_bootstrap([[float(np.mean(a[k]) - np.mean(b[k]))] for k in keys], n=n, seed=seed)
    return {"mean": boot["mean"], "ci": boot["ci"], "prompts": len(keys)}


# ------------------------------------------------------------------------------------------------- completions
def read_prompts(path: str | Path) -> list[str]:
    """The prompt texts of a file in any layout rft.prompts reads (a `prompt` column, a conversation, ...)."""
    texts = []
    for row in read_rows(str(path)):
        ex = extract(row.data)
        if ex.text:
            texts.append(normalise_text(ex.text))
    return texts


def _add(store: JsonlAppender, record: dict[str, Any]) -> None:
    """Append to the file and to `store.existing`, which then stays the store's whole content."""
    store.append(record)
    store.existing.append(record)


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:4], "big")


def generate(policy: str, label: str, prompts: Sequence[str], store: JsonlAppender, config: HeldoutConfig) -> None:
    """Append `samples_per_prompt` sampled completions per prompt from `policy` (a bundled name, a GGUF, a
    transformers folder such as a checkpoint) under `label`; samples already in `store` are not appended again.

    Each prompt is sampled with its own seed (from config.seed, the label-free prompt id and the sample
    count), so base and trained policies draw with the same random stream and a rerun draws the same text.
    """
    import torch

    from .config import PolicyConfig
    from .train import load_policy

    have = {(r["prompt_id"], r["sample"]) for r in store.existing if r.get("policy") == label}
    todo = [p for p in prompts if any((prompt_key(p), i) not in have for i in range(config.samples_per_prompt))]
    if not todo:
        return
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    model, tokenizer = load_policy(PolicyConfig(model=policy), cuda=False)
    model.eval()
    for text in todo:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        torch.manual_seed(_seed(config.seed, prompt_key(text), config.samples_per_prompt))
        with torch.no_grad():
            out = model.generate(**ids, do_sample=True, temperature=config.temperature, top_p=config.top_p,
                                 top_k=0, max_new_tokens=config.max_new_tokens,
                                 num_return_sequences=config.samples_per_prompt,
                                 pad_token_id=tokenizer.pad_token_id)
        start = ids["input_ids"].shape[1]
        for i, seq in enumerate(out):
            if (prompt_key(text), i) in have:  # a prompt cut off mid-way: its redrawn samples are the same
                continue
            new = seq[start:]
            ended = bool((new == tokenizer.eos_token_id).any())
            n_tokens = int((new != tokenizer.pad_token_id).sum()) + (1 if ended and tokenizer.pad_token_id ==
                                                                      tokenizer.eos_token_id else 0)
            _add(store, {"policy": label, "model": policy, "prompt_id": prompt_key(text), "sample": i,
                          "text": tokenizer.decode(new, skip_special_tokens=True).strip(),
                          "tokens": min(n_tokens, config.max_new_tokens), "finished": ended})
    del model


# ---------------------------------------------------------------------------------------------------- judging
async def _rewards(judge: Judge, sets_path: Path, completions: Sequence[dict], prompts: Mapping[str, str],
                   label: str, rubrics: str, store: JsonlAppender) -> None:
    """Append the rubric reward of every completion not yet scored under `rubrics` (stored weights, hard
    verdicts: the reward the run trained on)."""
    from rewards import RubricReward, RubricRewardConfig

    done = {(r["policy"], r["rubrics"], r["prompt_id"], r["sample"]) for r in store.existing}
    todo = [c for c in completions if (label, rubrics, c["prompt_id"], c["sample"]) not in done]
    if not todo:
        return
    reward = RubricReward(judge, load_rubric_sets(str(sets_path)),
                          RubricRewardConfig(weights="stored", score="hard", log_criteria=0))
    scores = await reward.reward_func(
        prompts=[[{"role": "user", "content": prompts[c["prompt_id"]]}] for c in todo],
        completions=[[{"role": "assistant", "content": c["text"]}] for c in todo],
        prompt_id=[c["prompt_id"] for c in todo])
    for c, s in zip(todo, scores):
        _add(store, {"policy": label, "rubrics": rubrics, "prompt_id": c["prompt_id"], "sample": c["sample"],
                      "reward": s})


def game_score(game1: str | None, game2: str | None) -> float | None:
    """The trained policy's credit for one two-game pair: game1 shows (trained, base), game2 (base, trained)
    already flipped back to (trained, base). +1 per game won, -1 per game lost: win 1, loss 0, otherwise 0.5
    (a split or tied pair). None when neither game could be read."""
    if game1 is None and game2 is None:
        return None
    counter = sum(1 if g == "A" else -1 if g == "B" else 0 for g in (game1, game2))
    return 1.0 if counter > 0 else 0.0 if counter < 0 else 0.5


async def _games(judge: Judge, trained: Sequence[dict], base: Mapping[tuple[str, int], dict],
                 prompts: Mapping[str, str], label: str, pairs: int, store: JsonlAppender) -> None:
    done = {(r["policy"], r["prompt_id"], r["sample"]) for r in store.existing}
    todo = [c for c in trained if c["sample"] < pairs and (label, c["prompt_id"], c["sample"]) not in done
            and (c["prompt_id"], c["sample"]) in base]
    by_prompt: dict[str, list[dict]] = {}
    for c in todo:
        by_prompt.setdefault(c["prompt_id"], []).append(c)
    for pid, mine in by_prompt.items():  # a prompt's games decode together; a crash loses one prompt's games
        prompt = prompts[pid]
        calls = []
        for c in mine:
            b = base[(pid, c["sample"])]["text"]
            calls += [(prompt, c["text"], b), (prompt, b, c["text"])]
        verdicts = await judge.pairwise_many(calls)
        for c, g1, g2 in zip(mine, verdicts[0::2], verdicts[1::2]):
            flipped = flip(g2.winner)
            _add(store, {"policy": label, "prompt_id": pid, "sample": c["sample"], "game1": g1.winner,
                         "game2": flipped, "score": game_score(g1.winner, flipped)})


async def _judge_all(judge: Judge, runs: Mapping[str, tuple[Any, Any]], completions: Sequence[dict],
                     prompts: Mapping[str, str], pairs: int, reward_store: JsonlAppender,
                     game_store: JsonlAppender) -> None:
    """Every run's rubric rewards (its trained policy and the base, under its rubric sets), then its games."""
    try:
        for name, (_, sets_path) in runs.items():
            for label in ("base", name):
                mine = [c for c in completions if c["policy"] == label]
                await _rewards(judge, Path(sets_path), mine, prompts, label, name, reward_store)
        base_by = {(c["prompt_id"], c["sample"]): c for c in completions if c["policy"] == "base"}
        for name in runs:
            await _games(judge, [c for c in completions if c["policy"] == name], base_by, prompts, name, pairs,
                         game_store)
    finally:
        await judge.aclose()


# --------------------------------------------------------------------------------------------------- the driver
def _by_prompt(records: Sequence[dict], key: str, **match: Any) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            out.setdefault(r["prompt_id"], [])
            if r.get(key) is not None:
                out[r["prompt_id"]].append(float(r[key]))
    return out


def evaluate_runs(out: str | Path, *, prompts: str | Path, runs: Mapping[str, tuple[str | Path, str | Path]],
                  base: str, config: HeldoutConfig | None = None) -> dict[str, Any]:
    """Evaluate each run's trained policy against `base` on the held-out prompts and write `out/heldout.json`.

    runs: name -> (trained policy, rubrics file). The base is sampled once and scored under every run's
    rubric sets. Records go to out/heldout_completions.jsonl, heldout_rewards.jsonl and heldout_games.jsonl.
    """
    config = config or HeldoutConfig()
    out = Path(out)
    texts = read_prompts(prompts)
    by_id = {prompt_key(t): t for t in texts}
    with JsonlAppender(out / "heldout_completions.jsonl") as comp_store, \
            JsonlAppender(out / "heldout_rewards.jsonl") as reward_store, \
            JsonlAppender(out / "heldout_games.jsonl") as game_store:
        for label, policy in [("base", base), *((name, str(p)) for name, (p, _) in runs.items())]:
            generate(policy, label, texts, comp_store, config)
        completions = [r for r in comp_store.existing if r["prompt_id"] in by_id]
        judge = Judge(JudgeConfig(model=config.judge, cache_path=config.cache_path,
                                  pairwise_max_tokens=config.pairwise_max_tokens))
        asyncio.run(_judge_all(judge, runs, completions, by_id, config.pairs, reward_store, game_store))
        rewards = [r for r in reward_store.existing if r["prompt_id"] in by_id]
        games = [g for g in game_store.existing if g["prompt_id"] in by_id]
    boot = {"n": config.n_bootstrap, "seed": config.seed}
    result: dict[str, Any] = {"prompts": len(texts), "config": asdict(config), "base": base, "runs": {}}
    for name, (policy, sets_path) in runs.items():
        r_base = _by_prompt(rewards, "reward", policy="base", rubrics=name)
        r_trained = _by_prompt(rewards, "reward", policy=name, rubrics=name)
        wins = _by_prompt(games, "score", policy=name)
        unscored = sum(r["reward"] is None for r in rewards if r["rubrics"] == name)
        result["runs"][name] = {
            "policy": str(policy), "rubrics": str(sets_path),
            "heldout_reward_base": cluster_bootstrap(list(r_base.values()), **boot),
            "heldout_reward_trained": cluster_bootstrap(list(r_trained.values()), **boot),
            "heldout_reward_gain": paired_difference(r_trained, r_base, **boot),
            "unscored_completions": unscored,
            "winrate_vs_base": cluster_bootstrap(list(wins.values()), **boot),
            "games": {k: sum(1 for g in games if g["policy"] == name and g["score"] == v)
                      for k, v in (("won", 1.0), ("split_or_tied", 0.5), ("lost", 0.0), ("unread", None))},
            "mean_length_base": cluster_bootstrap(
                list(_by_prompt(completions, "tokens", policy="base").values()), **boot),
            "mean_length_trained": cluster_bootstrap(
                list(_by_prompt(completions, "tokens", policy=name).values()), **boot),
            "finished_base": _rate(completions, "base"),
            "finished_trained": _rate(completions, name),
        }
    write_atomic(out / HELDOUT_NAME, json.dumps(result, indent=2) + "\n")
    return result


def _rate(completions: Sequence[dict], label: str) -> float | None:
    mine = [c["finished"] for c in completions if c["policy"] == label]
    return sum(mine) / len(mine) if mine else None


__all__ = ["HELDOUT_NAME", "HeldoutConfig", "cluster_bootstrap", "evaluate_runs", "game_score", "generate",
           "paired_difference", "read_prompts"]
