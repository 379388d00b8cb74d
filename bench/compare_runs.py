"""Compare `rrd eval` pair-benchmark runs on the items they all finished: accuracy with its 95% CI (the
benchmark's official metric), rubric-set health and calls per item, one row per (run, method).

    python bench/compare_runs.py before=docs/results/judgebench after-keep=runs/jb-keep after-reject=runs/jb-reject \
        --methods conditioned,rrd-uniform,rrd-wu [--mode soft|hard|both] [--json] [--summary FILE --dataset NAME]

Only items present for every (run, method) are counted, so a run stopped early is compared on the same pairs.
Rubric columns read each run's stored sets (rubrics/METHOD.jsonl): empty and fallback sets, median and mean
accepted rubrics, decomposition success (a decomposed parent gave at least one child that is not a repeat; in
brackets, the share whose children include one that some but not all samples satisfy: one that separates them),
rejections (and the share that were repeats of another rubric), repeats dropped before grading, and the tie rate.
`--mode` scores the records' `games_by_mode` (records written before both were kept have their one `games`);
paired bootstrap CIs of each method's accuracy minus every other's are printed below the table (same pairs,
same resamples). `--summary FILE --dataset NAME` merges the figures into FILE as
{"runs": {LABEL: {"median_accepted", "decomposition_success", "tie_rate", "accuracy": {NAME: {METHOD: acc}},
"datasets": {NAME: {MODE: {...}}}}}}: the headline figures pool every data set collected so far (soft scores, the
default, with the hard ones beside them), so several data sets collect into one file run by run.

A run may also be an `rrd refine` rubrics file (LABEL=FILE.jsonl): prompts without pairs, so its row has the set
columns only, over the prompts every file holds, and in --summary its data set's entry is "sets" instead of a
scoring mode.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from eval.report import by_mode, summarise
from eval.report_figures import stored_sets, tree_reasons
from rrd.io import latest_by, read_jsonl
from rrd.records import RubricSet
from rrd.summaries import decompositions

REPEATS = ("duplicate", "near_duplicate")


def _scored(records: list[dict[str, Any]], mode: str | None) -> list[dict[str, Any]]:
    """The records as they score under `mode` (None: as written)."""
    if mode is None:
        return records
    return by_mode(records, mode) or records


def correct_by_item(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Each item's credit under the benchmark's own rule (its summary on that item alone)."""
    return {r["item_id"]: float(summarise("pairs", [r])["accuracy"]) for r in rows}


def paired_differences(per_method: dict[str, dict[str, float]], n: int = 10000, seed: int = 0
                       ) -> list[dict[str, Any]]:
    """Accuracy of a minus b with a 95% percentile-bootstrap CI over the same items, for every pair of methods."""
    names = list(per_method)
    items = sorted(set.intersection(*(set(v) for v in per_method.values()))) if names else []
    if not items:
        return []
    idx = np.random.default_rng(seed).integers(0, len(items), size=(n, len(items)))
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = np.array([per_method[a][k] - per_method[b][k] for k in items])
            boot = d[idx].mean(axis=1)
            out.append({"a": a, "b": b, "diff": float(d.mean()), "ci": [float(np.percentile(boot, 2.5)),
                                                                      float(np.percentile(boot, 97.5))],
                        "n": len(items)})
    return out


def run_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each later run's accuracy minus the first run's, per (method, scores), over the same items and resamples:
    the before/after comparison, paired by item."""
    rows = [r for r in rows if "correct" in r]
    labels = list(dict.fromkeys(r["run"] for r in rows))
    out = []
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in rows):
        mine = {r["run"]: r["correct"] for r in rows if (r["method"], r["mode"]) == (method, mode)}
        for later in labels[1:]:
            for d in paired_differences({later: mine[later], labels[0]: mine[labels[0]]}):
                out.append({**d, "method": method, "mode": mode})
    return out


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]


def _row(label: str, run: Path, method: str, items: list[str], records: list[dict[str, Any]],
         mode: str | None = None) -> dict[str, Any]:
    by_item = {r["item_id"]: r for r in records if r["method"] == method}
    rows = _scored([by_item[i] for i in items], mode)
    summary = summarise("pairs", rows)
    ties = sum(r["games"] and all(g == "tie" for g in r["games"]) for r in rows) if method != "direct" else None
    row: dict[str, Any] = {"run": label, "method": method, "mode": mode or rows[0].get("score_mode", "hard"),
                           "n": len(rows), "accuracy": summary["accuracy"], "ci": summary["ci"],
                           "tie_rate": summary.get("judge_tie_rate", summary.get("tie_rate")),
                           "calls_per_item": sum(r["usage"]["calls"] for r in rows) / len(rows),
                           "correct": correct_by_item(rows)}
    if method == "direct":
        return row
    row["rubric_tie_rate"] = ties / len(rows)
    keys = {f"item:{i}" for i in items}
    row.update(set_health([rs for rs in stored_sets(run, method) if rs.prompt_id in keys]))
    return row


def set_health(sets: list[RubricSet]) -> dict[str, Any]:
    """The rubric-set columns of a row: size, empty and fallback sets, decomposition success, rejections."""
    rejected, dropped = tree_reasons(sets, "rejected"), tree_reasons(sets, "dropped")
    n_rej = sum(rejected.values())
    tried, ok, separating = decompositions(rs.tree for rs in sets)
    return dict(
        sets=len(sets),
        empty=sum(not rs.rubrics for rs in sets),
        fallback=sum(bool(getattr(rs, "fallback", None)) for rs in sets),
        accepted_per_set=[len(rs.rubrics) for rs in sets],
        mean_rubrics=sum(len(rs.rubrics) for rs in sets) / max(1, len(sets)),
        median_rubrics=float(np.median([len(rs.rubrics) for rs in sets])) if sets else None,
        decomposition_success=ok / tried if tried else None,
        decomposed_ok=ok,
        separating_decompositions=separating / tried if tried else None,
        decomposed_separating=separating,
        decomposed_parents=tried,
        rejections=n_rej,
        repeat_share=(sum(rejected[k] for k in REPEATS) / n_rej) if n_rej else 0.0,
        rejected_by=dict(rejected.most_common()),
        dropped=sum(dropped.values()),
        repairs=sum(rs.stats.get("repairs", 0) for rs in sets),
        repaired=sum(rs.stats.get("repaired", 0) for rs in sets),
        kept_atomic=sum(rs.stats.get("kept_after_failed_decomposition", 0) for rs in sets),
        calls_per_set=sum(rs.stats.get("calls", 0) for rs in sets) / max(1, len(sets)),
    )


def sets_row(label: str, sets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A row for an `rrd refine` output file: set health only (no pairs, so no accuracy or ties)."""
    return {"run": label, "method": "rrd (refine)", "mode": "-", "n": len(sets),
            **set_health([RubricSet.from_dict(d) for d in sets.values()])}


def compare(runs: dict[str, Path], methods: list[str], modes: list[str | None] | None = None
            ) -> list[dict[str, Any]]:
    """Rows per (run, mode, method) over the items every eval run finished; a run that is a rubrics file
    (`rrd refine` output) gives one set-health row."""
    files = {label: path for label, path in runs.items() if path.is_file()}
    if files:
        if len(files) != len(runs):
            raise SystemExit("compare either `rrd eval` folders or `rrd refine` rubric files, not both")
        # as with pair runs, only the prompts every file holds: a stopped refine is compared on what it finished
        sets = {label: latest_by(read_jsonl(path), "prompt_id") for label, path in files.items()}
        common = set.intersection(*(set(s) for s in sets.values()))
        if not common:
            raise SystemExit("no prompt has a set in every rubrics file")
        return [sets_row(label, {k: v for k, v in s.items() if k in common}) for label, s in sets.items()]
    records = {label: _records(path) for label, path in runs.items()}
    common: set[str] | None = None
    order: list[str] = []
    for label, recs in records.items():
        for m in methods:
            ids = [r["item_id"] for r in recs if r["method"] == m]
            order = order or ids
            common = set(ids) if common is None else common & set(ids)
    items = [i for i in order if i in (common or set())]
    if not items:
        raise SystemExit("no item was finished by every (run, method)")
    return [_row(label, runs[label], m, items, records[label], mode)
            for label in runs for mode in (modes or [None]) for m in methods]


def _markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| run | scores | method | pairs | accuracy [95% CI] | ties | calls/pair | empty sets | fallback sets | "
            "rubrics/set (median) | decomposition success (separating) | rejections (repeat share) | repeats dropped | "
            "repairs (fixed) | parents kept |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "accuracy" not in r:  # an `rrd refine` file: prompts, no pairs
            acc, start = "–", f"| {r['run']} | – | {r['method']} | {r['n']} prompts | – | – | "
            start += f"{r['calls_per_set']:.0f} | "
        else:
            acc = f"{r['accuracy']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
            start = f"| {r['run']} | {r['mode']} | {r['method']} | {r['n']} | {acc} | {r['tie_rate']:.2f} | "
        if "sets" not in r:
            lines.append(start + f"{r['calls_per_item']:.0f} | – | – | – | – | – | – | – | – |")
            continue
        success = "–" if r["decomposition_success"] is None else \
            f"{r['decomposition_success']:.2f} ({r['separating_decompositions']:.2f}) of {r['decomposed_parents']}"
        lines.append(start + ("" if "accuracy" not in r else f"{r['calls_per_item']:.0f} | ") +
                     f"{r['empty']}/{r['sets']} | {r['fallback']} | "
                     f"{r['mean_rubrics']:.1f} ({r['median_rubrics']:g}) | {success} | "
                     f"{r['rejections']} ({r['repeat_share']:.0%}) | {r['dropped']} | "
                     f"{r['repairs']} ({r['repaired']}) | {r['kept_atomic']} |")
    for label, mode in dict.fromkeys((r["run"], r["mode"]) for r in rows if "correct" in r):
        diffs = paired_differences({r["method"]: r["correct"] for r in rows if (r["run"], r["mode"]) == (label, mode)})
        if diffs:
            lines += ["", f"Paired bootstrap, {label}, {mode} scores (accuracy difference [95% CI], "
                          f"{diffs[0]['n']} pairs): " + "; ".join(
                              f"{d['a']} - {d['b']} {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
                              for d in diffs)]
    across = run_differences(rows)
    if across:
        lines += ["", f"Paired bootstrap across runs (accuracy difference [95% CI], {across[0]['n']} pairs): " +
                  "; ".join(f"{d['method']} {d['mode']}: {d['a']} - {d['b']} {d['diff']:+.3f} "
                            f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" for d in across)]
    return "\n".join(lines)


def summary_entry(rows: list[dict[str, Any]], label: str, mode: str) -> dict[str, Any]:
    """One run's figures on one data set in the layout of docs/results/small_proposer/summary.json."""
    mine = [r for r in rows if r["run"] == label and r["mode"] == mode]
    if mine and "accuracy" not in mine[0]:  # rubric sets of `rrd refine`: no pairs
        r = mine[0]
        return {"prompts": r["n"], "median_accepted": r["median_rubrics"], "mean_accepted": r["mean_rubrics"],
                "decomposition_success": r["decomposition_success"], "accepted_per_set": r["accepted_per_set"],
                "decomposition_counts": [r["decomposed_ok"], r["decomposed_parents"]],
                "separating_decompositions": r["separating_decompositions"],
                "separating_counts": [r["decomposed_separating"], r["decomposed_parents"]],
                "calls_per_set": r["calls_per_set"], "rejected_by": r["rejected_by"]}
    rrd = [r for r in mine if r["method"].startswith("rrd-") and "sets" in r]
    first = rrd[0] if rrd else None
    return {
        "pairs": mine[0]["n"] if mine else 0,
        "scores": mode,
        "median_accepted": first["median_rubrics"] if first else None,
        "mean_accepted": first["mean_rubrics"] if first else None,
        "decomposition_success": first["decomposition_success"] if first else None,
        "tie_rate": first["rubric_tie_rate"] if first else None,
        "accuracy": {r["method"]: {"accuracy": r["accuracy"], "ci": r["ci"], "ties": r["tie_rate"]} for r in mine},
        "accepted_per_set": first["accepted_per_set"] if first else [],
        "decomposition_counts": [first["decomposed_ok"], first["decomposed_parents"]] if first else [0, 0],
        "separating_decompositions": first["separating_decompositions"] if first else None,
        "separating_counts": [first["decomposed_separating"], first["decomposed_parents"]] if first else [0, 0],
        "rubric_ties": [round(first["rubric_tie_rate"] * first["n"]), first["n"]] if first else [0, 0],
        "rubrics_per_set": {r["method"]: r["mean_rubrics"] for r in mine if "sets" in r},
        "paired": paired_differences({r["method"]: r["correct"] for r in mine}),
        "against_first_run": [d for d in run_differences(rows) if d["a"] == label and d["mode"] == mode],
    }


def run_totals(run: dict[str, Any], default_mode: str = "soft") -> dict[str, Any]:
    """A run's headline figures over every data set it has: median accepted rubrics per RRD set, decomposition
    success and rubric tie rate pooled over sets and pairs (ties under `default_mode` and hard), and accuracy
    per data set per method under `default_mode` (the toolkit's default) and hard."""
    sets: list[int] = []
    ok = separating = tried = 0
    ties = {"soft": [0, 0], "hard": [0, 0]}
    accuracy: dict[str, dict[str, dict[str, float]]] = {"soft": {}, "hard": {}}
    for name, modes in run.get("datasets", {}).items():
        first = next(iter(modes.values()))
        sets += first["accepted_per_set"]
        ok, tried = ok + first["decomposition_counts"][0], tried + first["decomposition_counts"][1]
        separating += first.get("separating_counts", [0])[0]
        for mode, entry in modes.items():
            if mode not in ties:  # a data set of prompts (rubric sets only): no pairs to tie or judge
                continue
            ties[mode] = [ties[mode][0] + entry["rubric_ties"][0], ties[mode][1] + entry["rubric_ties"][1]]
            accuracy[mode][name] = {m: a["accuracy"] for m, a in entry["accuracy"].items()}
    other = "hard" if default_mode == "soft" else "soft"
    return {
        "scores": default_mode,
        "median_accepted": float(np.median(sets)) if sets else None,
        "decomposition_success": ok / tried if tried else None,
        "separating_decompositions": separating / tried if tried else None,
        "tie_rate": ties[default_mode][0] / ties[default_mode][1] if ties[default_mode][1] else None,
        f"tie_rate_{other}": ties[other][0] / ties[other][1] if ties[other][1] else None,
        "accuracy": accuracy[default_mode],
        f"accuracy_{other}": accuracy[other],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=DIR of an `rrd eval` output folder, or LABEL=FILE of an "
                                           "`rrd refine` rubrics file (set health only)")
    p.add_argument("--methods", default="conditioned,rrd-uniform,rrd-wu")
    p.add_argument("--mode", choices=["soft", "hard", "both", "as-run"], default="both",
                   help="score the records soft, hard, both, or as each run was scored")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a markdown table")
    p.add_argument("--summary", type=Path, help="merge the figures into this JSON file (needs --dataset)")
    p.add_argument("--dataset", help="the data set's name in --summary")
    args = p.parse_args()
    runs = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        runs[label] = Path(path or label)
    modes: list[str | None] = {"both": ["hard", "soft"], "as-run": [None]}.get(args.mode, [args.mode])
    rows = compare(runs, [m.strip() for m in args.methods.split(",") if m.strip()], modes)
    print(json.dumps(rows, indent=1) if args.json else _markdown(rows))
    if args.summary:
        if not args.dataset:
            raise SystemExit("--summary needs --dataset")
        data = json.loads(args.summary.read_text()) if args.summary.exists() else {"runs": {}}
        for label in runs:
            for mode in modes if "accuracy" in rows[0] else ["-"]:
                mode = mode or rows[0]["mode"]
                entry = data["runs"].setdefault(label, {}).setdefault("datasets", {}).setdefault(args.dataset, {})
                entry["sets" if mode == "-" else mode] = summary_entry(rows, label, mode)
            data["runs"][label].update(run_totals(data["runs"][label]))
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
