"""The CPU learning run, end to end: do rubric rewards train a policy, and do RRD rubrics train it better?

    python examples/rft_learning.py --out runs/rft_learning            # everything, resumable
    python examples/rft_learning.py --out runs/rft_learning --stage train_rrd_wu   # one stage

Stages, in order (each resumes where it stopped; re-running a finished stage costs nothing):
  prepare     WildBench-v2 prompts (curated WildChat, ../shared/data/wildchat) through rft.prompts: English,
              deduplicated, 40-400 characters, seeded shuffle; the first --n-train are the training split, the
              next --n-heldout the disjoint held-out split.
  refine_*    `rrd refine` twice on a split with the embedded judge: RRD (WU weights) and the paper's
              baseline, prompt-only rubrics with uniform weights (no recursion, no filters). Both share the
              judge cache, so the prompt-only run re-uses RRD's sampled responses.
  train_*     `rrd train configs/rft_learning.yaml` once per rubric file, identical GRPO settings and seeds.
  heldout     rft.heldout: base and both trained policies sample --heldout-samples completions per held-out
              prompt; mean rubric reward under each run's rubric sets and judge, the direct two-game win rate of
              trained vs base, and completion lengths, with 95% prompt-cluster bootstrap CIs.
  summary     summary.json, reward_curves.png (both runs on one plot) and heldout.json in --out.

Everything is written under --out; docs/results/rft_learning/ holds a copy of the measured run.

A re-run that changes only how RRD sets are made (new refinement code) need not redo the baseline:
`--baseline-from DIR` takes the prompt-only run from a finished run of this script (its sets, training log and
held-out records; DIR must hold the same prompt splits), so only the RRD run is refined, trained and evaluated
again, about half the time. Its summary compares the new RRD run with that baseline as it was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "wildchat" / "wildbench_v2_subset_392.jsonl"
CONFIG = ROOT / "configs" / "rft_learning.yaml"
JUDGE = "local:qwen2.5-coder-1.5b"
POLICY_SAMPLER = "local:smollm2-135m"

#: the two runs: name -> (rubrics file, `rrd refine` flags that make that kind of set)
RUNS = {
    "rrd_wu": ("rubrics_rrd.jsonl", ["--weights", "whitened"]),
    "prompt_only": ("rubrics_prompt_only.jsonl",
                    ["--initial", "prompt_only", "--weights", "uniform", "--no-decompose", "--no-misalignment",
                     "--no-overlap", "--no-conflict"]),
}
STAGES = ["prepare", "refine_train", "train_rrd_wu", "train_prompt_only", "refine_heldout", "heldout", "summary"]
#: the run --baseline-from takes from an earlier run instead of redoing it
BASELINE = "prompt_only"
#: held-out records and the field that names the run they belong to (a reward belongs to its rubric sets)
HELDOUT_RECORDS = {"heldout_completions.jsonl": "policy", "heldout_rewards.jsonl": "rubrics",
                   "heldout_games.jsonl": "policy"}


def run(cmd: list[str]) -> None:
    """Run one `rrd` command; exit 4 (finished, some calls failed and are written unscored) goes on, and the
    next run of this script redoes them (README, How it behaves)."""
    print("+", " ".join(cmd), flush=True)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
    if rc == 4:
        print("note: some calls failed; run this script again to retry them", flush=True)
    elif rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)


def prepare(args: argparse.Namespace) -> None:
    from rft.config import DataConfig
    from rft.prompts import prepare_prompts
    from rrd.io import write_atomic

    ps = prepare_prompts(DataConfig(source=str(args.source), min_chars=40, max_chars=400,
                                    max_prompts=args.n_train + args.n_heldout, seed=args.seed))
    if len(ps.texts) < args.n_train + args.n_heldout:
        raise SystemExit(f"{args.source}: only {len(ps.texts)} prompts pass the filters")
    splits = {"train": ps.texts[: args.n_train], "heldout": ps.texts[args.n_train:]}
    for name, texts in splits.items():
        path, text = args.out / f"prompts_{name}.jsonl", "".join(json.dumps({"prompt": t}) + "\n" for t in texts)
        if args.baseline_from and path.read_text(encoding="utf-8") != text:  # seed_baseline wrote it
            raise SystemExit(f"prepare: {args.source} gives other {name} prompts than the baseline's "
                             f"({args.baseline_from}): the runs would be compared on different prompts")
        write_atomic(path, text)
    print(f"prepare: {ps.summary()}; train {args.n_train}, held-out {args.n_heldout}", flush=True)


def seed_baseline(args: argparse.Namespace) -> None:
    """Copy the BASELINE run's files from args.baseline_from into args.out; files already there are kept, so a
    resumed run is never overwritten. Held-out records are copied without the other runs' (they describe the old
    sets and policies); the base policy's completions come along (sampled with fixed seeds, the same on a rerun)."""
    import shutil

    from rrd.io import read_jsonl, write_atomic

    src, out = args.baseline_from, args.out
    for split in ("train", "heldout"):
        name = f"prompts_{split}.jsonl"
        if not (src / name).exists():
            raise SystemExit(f"--baseline-from {src}: no {name}: not a run of this script")
        if not (out / name).exists():
            shutil.copyfile(src / name, out / name)
        elif (out / name).read_bytes() != (src / name).read_bytes():
            raise SystemExit(f"--baseline-from {src}: its {name} differs from {out / name}: the runs would be "
                             "compared on different prompts")
    rubrics = RUNS[BASELINE][0]
    for name in (rubrics, f"{BASELINE}/train_log.jsonl", f"{BASELINE}/train_config.yaml"):
        if not (src / name).exists():
            raise SystemExit(f"--baseline-from {src}: no {name}: its {BASELINE} run is not finished")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if not (out / name).exists():
            shutil.copyfile(src / name, out / name)
    for name, owner in HELDOUT_RECORDS.items():
        if (src / name).exists() and not (out / name).exists():
            keep = [r for r in read_jsonl(src / name) if r[owner] in ("base", BASELINE)]
            write_atomic(out / name, "".join(json.dumps(r) + "\n" for r in keep))
    print(f"baseline: {BASELINE} taken from {src}", flush=True)


def rubrics_file(args: argparse.Namespace, name: str) -> Path:
    """Where run `name`'s sets are written and read: OUT/<its file>, or --rrd-rubrics for the RRD run."""
    return args.rrd_rubrics if name == "rrd_wu" and args.rrd_rubrics else args.out / RUNS[name][0]


def refine(args: argparse.Namespace, split: str) -> None:
    common = ["--judge", JUDGE, "--samplers", JUDGE, POLICY_SAMPLER, "--n-samples", "4",
              "--sample-max-tokens", str(args.sample_max_tokens), "--max-rejections", "6", "--max-depth", "1",
              "--on-failed-decomposition", "keep",
              "--cache-path", str(args.out / "cache.sqlite"), "--prompt-concurrency", "2", "--seed", str(args.seed)]
    for name, (_, flags) in RUNS.items():  # RRD first: prompt-only then re-uses its cached samples
        if args.baseline_from and name == BASELINE:
            continue  # its sets came with the baseline
        extra = shlex.split(args.rrd_flags) if name == "rrd_wu" else []
        run([sys.executable, "-m", "rrd.cli", "refine", str(args.out / f"prompts_{split}.jsonl"),
             "--out", str(rubrics_file(args, name)), *common, *flags, *extra])


def train(args: argparse.Namespace, name: str) -> None:
    if args.baseline_from and name == BASELINE:
        print(f"train_{name}: taken from {args.baseline_from} (--baseline-from)", flush=True)
        return
    run([sys.executable, "-m", "rrd.cli", "train", str(CONFIG), "--output-dir", str(args.out / name),
         "--rubrics", str(rubrics_file(args, name)), "--set", f"data.source={args.out / 'prompts_train.jsonl'}",
         "--set", f"judge.cache_path={args.out / 'cache.sqlite'}"])


def heldout(args: argparse.Namespace) -> None:
    from rft.heldout import HeldoutConfig, evaluate_runs

    evaluate_runs(
        args.out,
        prompts=args.out / "prompts_heldout.jsonl",
        runs={name: (args.out / name / "checkpoint-final", rubrics_file(args, name)) for name in RUNS},
        base="bundled:smollm2-135m",
        config=HeldoutConfig(samples_per_prompt=args.heldout_samples, winrate_pairs=args.winrate_pairs,
                             seed=args.seed, judge=JUDGE,
                             cache_path=str(args.out / "cache.sqlite")),
    )


def summary(args: argparse.Namespace) -> None:
    from rft.summary import write_summary

    path = write_summary(args.out, list(RUNS))
    print(f"summary: {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/rft_learning"))
    p.add_argument("--stage", choices=STAGES, action="append", help="run only these stages (default: all)")
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="WildChat-style prompts file")
    p.add_argument("--n-train", type=int, default=10)
    p.add_argument("--n-heldout", type=int, default=10)
    p.add_argument("--heldout-samples", type=int, default=4, help="completions per held-out prompt and policy")
    p.add_argument("--winrate-pairs", type=int, default=None,
                   help="completions per held-out prompt played against the base (default: all)")
    p.add_argument("--sample-max-tokens", type=int, default=256, help="refinement samples and references")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-from", type=Path, default=None,
                   help=f"a finished run of this script: take its {BASELINE} run instead of redoing it")
    p.add_argument("--rrd-flags", default="",
                   help='more `rrd refine` flags for the RRD run, one string (e.g. "--decompose-others hidden")')
    p.add_argument("--rrd-rubrics", type=Path, default=None,
                   help="write and read the RRD run's sets here instead of OUT/rubrics_rrd.jsonl (an ablation of "
                        "its refinement on the same judge cache)")
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.rrd_rubrics:
        args.rrd_rubrics = args.rrd_rubrics.resolve()  # the rrd commands run from the repository root
        args.rrd_rubrics.parent.mkdir(parents=True, exist_ok=True)
    if args.baseline_from:
        args.baseline_from = args.baseline_from.resolve()
        seed_baseline(args)
    for stage in args.stage or STAGES:
        print(f"== {stage}", flush=True)
        if stage.startswith("train_"):
            train(args, stage.removeprefix("train_"))
        elif stage.startswith("refine_"):
            refine(args, stage.removeprefix("refine_"))
        else:
            {"prepare": prepare, "heldout": heldout, "summary": summary}[stage](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
