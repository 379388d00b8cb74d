"""Held-out evaluation (rft.heldout) and the run summary (rft.summary): statistics by hand, then a real run with
a tiny random policy and the SmolLM2 judge (plumbing only: SmolLM2's verdicts are never asserted on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rft.heldout import (HeldoutConfig, cluster_bootstrap, evaluate_runs, game_score, generate,
                         paired_difference, read_prompts)
from rft.summary import markdown_table, slope_ci, train_stats, write_summary
from rrd.io import JsonlAppender
from rrd.records import prompt_key
from tests.rft.conftest import write_data

ROOT = Path(__file__).resolve().parents[2]
WILDBENCH = ROOT.parent / "shared" / "data" / "wildchat" / "wildbench_v2_subset_392.jsonl"


# ------------------------------------------------------------------------------------------------- statistics
def test_cluster_bootstrap_weights_values_not_prompts_and_skips_empty_groups():
    r = cluster_bootstrap([[1.0, 1.0, 1.0], [0.0], []], n=500)
    assert r["mean"] == pytest.approx(0.75) and r["n"] == 4 and r["prompts"] == 2
    assert 0.0 <= r["ci"][0] <= 0.75 <= r["ci"][1] <= 1.0
    assert cluster_bootstrap([[0.5, 0.5], [0.5]], n=200)["ci"] == [0.5, 0.5]  # no spread, no interval
    assert cluster_bootstrap([[], []])["mean"] is None


def test_cluster_bootstrap_is_wider_than_an_iid_bootstrap_when_prompts_differ():
    """Completions of one prompt are alike: resampling prompts must see that, resampling values would not."""
    groups = [[1.0] * 8, [0.0] * 8, [1.0] * 8, [0.0] * 8]
    clustered = cluster_bootstrap(groups, n=2000)
    flat = np.concatenate(groups)
    boot = flat[np.random.default_rng(0).integers(0, len(flat), size=(2000, len(flat)))].mean(axis=1)
    iid = np.percentile(boot, [2.5, 97.5])
    assert clustered["ci"][1] - clustered["ci"][0] > 1.5 * (iid[1] - iid[0])


def test_paired_difference_pairs_within_prompt():
    trained = {"p": [0.6, 0.8], "q": [0.2], "r": []}
    base = {"p": [0.5], "q": [0.1, 0.1], "r": [0.9]}
    d = paired_difference(trained, base, n=300)
    assert d["prompts"] == 2  # r has no trained score
    assert d["mean"] == pytest.approx(((0.7 - 0.5) + (0.2 - 0.1)) / 2)
    assert d["ci"][0] == pytest.approx(0.1) and d["ci"][1] == pytest.approx(0.2)


@pytest.mark.parametrize("g1,g2,score", [("A", "A", 1.0), ("A", "tie", 1.0), ("B", "B", 0.0), ("A", "B", 0.5),
                                         ("tie", "tie", 0.5), (None, "B", 0.0), (None, None, None)])
def test_game_score(g1, g2, score):
    assert game_score(g1, g2) == score


def test_slope_ci_recovers_a_known_slope_and_covers_zero_for_noise():
    rng = np.random.default_rng(0)
    steps = np.arange(1, 41)
    rising = slope_ci(steps, 0.01 * steps + rng.normal(0, 0.02, 40))
    assert rising["ci"][0] > 0.005 and rising["ci"][1] < 0.015
    flat = slope_ci(steps, rng.normal(0.5, 0.1, 40))
    assert flat["ci"][0] < 0 < flat["ci"][1]
    assert slope_ci([1, 2], [0.0, 1.0])["per_step"] is None


def test_train_stats_from_a_log():
    records = [{"step": s, "reward": 0.2 if s <= 10 else 0.5, "step_time_s": 100.0 if s == 1 else 10.0,
                "peak_rss_mb": 1024.0 * (1 + s / 40), "completions/mean_length": 50.0} for s in range(1, 41)]
    records.append({"step": 40, "train_runtime": 500.0})  # the trainer's last log has no reward
    st = train_stats(records)
    assert st["steps"] == 40 and st["seconds_per_step"] == 10.0 and st["seconds_first_step"] == 100.0
    assert st["peak_rss_gb"] == pytest.approx(2.0)
    assert st["train_reward_first10"]["mean"] == pytest.approx(0.2)
    assert st["train_reward_last10"]["mean"] == pytest.approx(0.5)
    assert st["train_reward_change_last10_vs_first10"] == pytest.approx(1.5)
    assert st["train_reward_slope"]["per_step"] > 0
    assert st["train_reward_by_pass"] == pytest.approx([0.2, 0.5, 0.5, 0.5])
    assert st["zero_reward_std_steps"] == 0 and st["clipped_completion_share"] is None
    records[0]["reward_std"] = 0.0
    assert train_stats(records)["zero_reward_std_steps"] == 1


def test_markdown_table_shows_cis_and_marks_what_was_not_measured():
    summary = {"runs": {"a": {"steps": 40, "train_reward_first10": {"mean": 0.25, "ci": [0.1, 0.4]},
                              "train_reward_change_last10_vs_first10": 0.6},
                        "b": {"steps": 40, "heldout_reward_base": {"mean": None, "ci": [None, None]}}}}
    table = markdown_table(summary)
    assert "| train reward, first 10 steps | 0.250 [0.100, 0.400] | n/a |" in table
    assert "| train reward change, last 10 vs first 10 | +60% | n/a |" in table
    assert "| held-out reward, base | n/a | n/a |" in table
    assert "won/split" not in table  # no games were played


# ------------------------------------------------------------------------------------------------ a real run
def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.local_model
def test_generate_is_seeded_and_resumes(tmp_path, tiny_policy):
    prompts, _ = write_data(tmp_path)
    texts = read_prompts(prompts)
    cfg = HeldoutConfig(samples_per_prompt=2, max_new_tokens=6)
    for name in ("a", "b"):
        with JsonlAppender(tmp_path / f"{name}.jsonl") as store:
            generate(str(tiny_policy), "base", texts[:2], store, cfg)
    ra, rb = _read(tmp_path / "a.jsonl"), _read(tmp_path / "b.jsonl")
    assert [r["text"] for r in ra] == [r["text"] for r in rb]  # same seed, same draws
    assert [(r["prompt_id"], r["sample"]) for r in ra] == [(prompt_key(t), i) for t in texts[:2] for i in (0, 1)]
    assert all(1 <= r["tokens"] <= 6 for r in ra)
    with JsonlAppender(tmp_path / "a.jsonl") as store:  # resume: only the two new prompts are generated
        generate(str(tiny_policy), "base", texts, store, cfg)
    again = _read(tmp_path / "a.jsonl")
    assert len(again) == 8 and [r["text"] for r in again[:4]] == [r["text"] for r in ra]


@pytest.mark.local_model
def test_evaluate_runs_and_summary_end_to_end(tmp_path, tiny_policy):
    prompts, rubrics = write_data(tmp_path)
    out = tmp_path / "exp"
    cfg = HeldoutConfig(samples_per_prompt=2, max_new_tokens=8, winrate_pairs=1, judge="local:smollm2-135m",
                        cache_path=str(tmp_path / "cache.sqlite"), pairwise_max_tokens=16, n_bootstrap=200)
    runs = {"one": (tiny_policy, rubrics), "two": (tiny_policy, rubrics)}
    result = evaluate_runs(out, prompts=prompts, runs=runs, base=str(tiny_policy), config=cfg)

    assert result["prompts"] == 4
    rewards = _read(out / "heldout_rewards.jsonl")
    assert len(rewards) == 2 * 2 * 4 * 2  # (base, trained) x runs x prompts x samples
    assert all(r["reward"] is None or 0.0 <= r["reward"] <= 1.0 for r in rewards)
    games = _read(out / "heldout_games.jsonl")
    assert len(games) == 2 * 4 and all(g["sample"] == 0 for g in games)
    one = result["runs"]["one"]
    assert sum(one["games"].values()) == 4
    assert one["mean_length_base"]["n"] == 8 and 1 <= one["mean_length_base"]["mean"] <= 8
    # the same policy is "trained" and base: identical seeded completions, so their reward means are equal
    assert one["heldout_reward_trained"]["mean"] == one["heldout_reward_base"]["mean"]

    # a rerun judges nothing new and writes the same numbers
    again = evaluate_runs(out, prompts=prompts, runs=runs, base=str(tiny_policy), config=cfg)
    assert again["runs"] == result["runs"]
    assert len(_read(out / "heldout_rewards.jsonl")) == len(rewards)

    for name in runs:  # a minimal train log per run, as RewardCurveCallback writes it
        (out / name).mkdir()
        (out / name / "train_log.jsonl").write_text("".join(
            json.dumps({"step": s, "reward": s / 20, "reward_std": 0.1, "step_time_s": 5.0, "peak_rss_mb": 900.0,
                        "rubric/pass_rate": 0.5, "rubric/pass_rate_c0": 0.4}) + "\n" for s in range(1, 21)))
    path = write_summary(out, list(runs))
    summary = json.loads(path.read_text())
    run = summary["runs"]["one"]
    for key in ("steps", "seconds_per_step", "peak_rss_gb", "train_reward_first10", "train_reward_last10",
                "heldout_reward_base", "heldout_reward_trained", "winrate_vs_base", "mean_length_base",
                "mean_length_trained"):
        assert key in run, key
    assert run["steps"] == 20 and run["winrate_vs_base"] == one["winrate_vs_base"]
    assert (out / "reward_curves.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "summary.md").read_text()
    assert table.startswith("| | one | two |") and "| GRPO steps | 20 | 20 |" in table
    assert "| pairs won/split or tied/lost |" in table


def _script():
    """examples/rft_learning.py as a module (it is a script, not part of the package)."""
    from tests.scripts import load_script

    return load_script("examples/rft_learning.py")


def test_experiment_script_prepares_disjoint_deduplicated_splits(tmp_path):
    """examples/rft_learning.py's first stage on the offline WildBench prompts: the two splits never share a
    prompt, have the asked sizes, respect the length filter, and come out the same on a rerun."""
    if not WILDBENCH.exists():
        pytest.skip(f"{WILDBENCH} is not here")
    script = _script()
    for run in ("a", "b"):
        script.main(["--out", str(tmp_path / run), "--stage", "prepare", "--n-train", "6", "--n-heldout", "5"])
    train, held = (read_prompts(tmp_path / "a" / f"prompts_{s}.jsonl") for s in ("train", "heldout"))
    assert len(train) == 6 and len(held) == 5 and not set(train) & set(held)
    assert all(40 <= len(t) <= 400 for t in train + held)
    assert (tmp_path / "a" / "prompts_train.jsonl").read_text() == (tmp_path / "b" / "prompts_train.jsonl").read_text()


def test_a_rerun_takes_the_prompt_only_baseline_and_redoes_only_rrd(tmp_path, monkeypatch):
    """examples/rft_learning.py --baseline-from: the finished run's prompt-only files come over, its RRD held-out
    records stay behind (they describe the old sets and policy), nothing of the baseline is retrained, and a run
    on other prompts is refused instead of compared."""
    script = _script()
    base, out = tmp_path / "base", tmp_path / "out"
    (base / "prompt_only").mkdir(parents=True)
    for split in ("train", "heldout"):
        (base / f"prompts_{split}.jsonl").write_text(json.dumps({"prompt": f"{split} prompt"}) + "\n")
    (base / "rubrics_prompt_only.jsonl").write_text("{}\n")
    (base / "rubrics_rrd.jsonl").write_text("old rrd sets\n")
    (base / "prompt_only" / "train_log.jsonl").write_text('{"step": 1}\n')
    (base / "prompt_only" / "train_config.yaml").write_text("seed: 0\n")
    rows = {"heldout_completions.jsonl": [{"policy": p} for p in ("base", "prompt_only", "rrd_wu")],
            "heldout_rewards.jsonl": [{"policy": p, "rubrics": r} for p, r in
                                      (("base", "prompt_only"), ("prompt_only", "prompt_only"), ("base", "rrd_wu"),
                                       ("rrd_wu", "rrd_wu"))],
            "heldout_games.jsonl": [{"policy": p} for p in ("prompt_only", "rrd_wu")]}
    for name, rs in rows.items():
        (base / name).write_text("".join(json.dumps(r) + "\n" for r in rs))
    commands = []
    monkeypatch.setattr(script, "run", commands.append)
    script.main(["--out", str(out), "--baseline-from", str(base), "--stage", "train_prompt_only"])
    assert commands == []  # the baseline is not trained again
    assert (out / "prompt_only" / "train_log.jsonl").read_text() == '{"step": 1}\n'
    assert (out / "rubrics_prompt_only.jsonl").exists() and not (out / "rubrics_rrd.jsonl").exists()
    kept = {n: [json.loads(x) for x in (out / n).read_text().splitlines()] for n in rows}
    assert kept["heldout_completions.jsonl"] == [{"policy": "base"}, {"policy": "prompt_only"}]
    assert kept["heldout_rewards.jsonl"] == rows["heldout_rewards.jsonl"][:2]
    assert kept["heldout_games.jsonl"] == [{"policy": "prompt_only"}]
    # the RRD run is refined and trained as before; the baseline's sets are not refined again
    script.main(["--out", str(out), "--baseline-from", str(base), "--stage", "refine_train", "--stage", "train_rrd_wu"])
    assert [c[3:5] for c in commands] == [["refine", str(out / "prompts_train.jsonl")], ["train", str(script.CONFIG)]]
    assert all("rubrics_prompt_only.jsonl" not in " ".join(c) for c in commands)
    # a resumed run keeps what it has: its own records are not replaced by the baseline's
    (out / "heldout_games.jsonl").write_text('{"policy": "rrd_wu"}\n')
    script.main(["--out", str(out), "--baseline-from", str(base), "--stage", "train_prompt_only"])
    assert (out / "heldout_games.jsonl").read_text() == '{"policy": "rrd_wu"}\n'
    (out / "prompts_train.jsonl").write_text(json.dumps({"prompt": "another prompt"}) + "\n")
    with pytest.raises(SystemExit, match="different prompts"):
        script.main(["--out", str(out), "--baseline-from", str(base), "--stage", "summary"])


def test_an_ablation_of_the_rrd_refine_writes_its_own_sets_with_its_own_flags(tmp_path, monkeypatch):
    """--rrd-flags reach the RRD run's `rrd refine` only, and --rrd-rubrics is where its sets are written and, for
    the later stages, read: an ablation on the same cache leaves the run's own sets alone."""
    script = _script()
    out, sets = tmp_path / "out", tmp_path / "ablation" / "rubrics_rrd.jsonl"
    out.mkdir()
    commands = []
    monkeypatch.setattr(script, "run", commands.append)
    script.main(["--out", str(out), "--stage", "refine_train", "--stage", "train_rrd_wu",
                 "--rrd-rubrics", str(sets), "--rrd-flags", "--decompose-others hidden --seed 3"])
    rrd, prompt_only, train = commands
    assert rrd[rrd.index("--out") + 1] == str(sets) and rrd[-4:] == ["--decompose-others", "hidden", "--seed", "3"]
    assert prompt_only[prompt_only.index("--out") + 1] == str(out / "rubrics_prompt_only.jsonl")
    assert "--decompose-others" not in prompt_only
    assert train[train.index("--rubrics") + 1] == str(sets)
    assert sets.parent.is_dir() and not (out / "rubrics_rrd.jsonl").exists()


def test_prepare_refuses_a_baseline_made_on_other_prompts(tmp_path):
    if not WILDBENCH.exists():
        pytest.skip(f"{WILDBENCH} is not here")
    script = _script()
    base = tmp_path / "base"
    script.main(["--out", str(base), "--stage", "prepare", "--n-train", "3", "--n-heldout", "2"])
    for name in ("rubrics_prompt_only.jsonl", "prompt_only/train_log.jsonl", "prompt_only/train_config.yaml"):
        (base / name).parent.mkdir(exist_ok=True)
        (base / name).write_text("{}\n")
    # same source and sizes: the same prompts, accepted
    script.main(["--out", str(tmp_path / "same"), "--baseline-from", str(base), "--stage", "prepare", "--n-train", "3",
                 "--n-heldout", "2"])
    with pytest.raises(SystemExit, match="different prompts"):  # another split size: other training prompts
        script.main(["--out", str(tmp_path / "other"), "--baseline-from", str(base), "--stage", "prepare",
                     "--n-train", "4", "--n-heldout", "1"])
