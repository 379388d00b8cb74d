"""Compare `rrd eval` pair-benchmark runs on the items they all finished: accuracy with its 95% CI (the
benchmark's official metric), rubric-set health and calls per item, one row per (run, method).

    python bench/compare_runs.py before=docs/results/judgebench after-keep=runs/jb-keep after-reject=runs/jb-reject \
        --methods conditioned,rrd-uniform,rrd-wu [--json]

Only items present for every (run, method) are counted, so a run stopped early is compared on the same pairs.
Rubric columns read each run's stored sets (rubrics/METHOD.jsonl): empty and fallback sets, mean accepted
rubrics, rejections (and the share that were repeats of another rubric), repeats dropped before grading.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eval.report import summarise
from eval.report_figures import stored_sets, tree_reasons

REPEATS = ("duplicate", "near_duplicate")


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]


def _row(label: str, run: Path, method: str, items: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    by_item = {r["item_id"]: r for r in records if r["method"] == method}
    rows = [by_item[i] for i in items]
    summary = summarise("pairs", rows)
    row: dict[str, Any] = {"run": label, "method": method, "n": len(rows), "accuracy": summary["accuracy"],
                           "ci": summary["ci"], "calls_per_item": sum(r["usage"]["calls"] for r in rows) / len(rows)}
    if method == "direct":
        return row
    keys = {f"item:{i}" for i in items}
    sets = [rs for rs in stored_sets(run, method) if rs.prompt_id in keys]
    rejected, dropped = tree_reasons(sets, "rejected"), tree_reasons(sets, "dropped")
    n_rej = sum(rejected.values())
    row.update(
        sets=len(sets),
        empty=sum(not rs.rubrics for rs in sets),
        fallback=sum(bool(getattr(rs, "fallback", None)) for rs in sets),
        mean_rubrics=sum(len(rs.rubrics) for rs in sets) / max(1, len(sets)),
        rejections=n_rej,
        repeat_share=(sum(rejected[k] for k in REPEATS) / n_rej) if n_rej else 0.0,
        rejected_by=dict(rejected.most_common()),
        dropped=sum(dropped.values()),
        repairs=sum(rs.stats.get("repairs", 0) for rs in sets),
        repaired=sum(rs.stats.get("repaired", 0) for rs in sets),
        kept_atomic=sum(rs.stats.get("kept_after_failed_decomposition", 0) for rs in sets),
    )
    return row


def compare(runs: dict[str, Path], methods: list[str]) -> list[dict[str, Any]]:
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
    return [_row(label, runs[label], m, items, records[label]) for label in runs for m in methods]


def _markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| run | method | pairs | accuracy [95% CI] | calls/pair | empty sets | fallback sets | rubrics/set | "
            "rejections (repeat share) | repeats dropped | repairs (fixed) | parents kept |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        acc = f"{r['accuracy']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
        if "sets" not in r:
            lines.append(f"| {r['run']} | {r['method']} | {r['n']} | {acc} | {r['calls_per_item']:.0f} | – | – | – | "
                         "– | – | – | – |")
            continue
        lines.append(f"| {r['run']} | {r['method']} | {r['n']} | {acc} | {r['calls_per_item']:.0f} | "
                     f"{r['empty']}/{r['sets']} | {r['fallback']} | {r['mean_rubrics']:.1f} | "
                     f"{r['rejections']} ({r['repeat_share']:.0%}) | {r['dropped']} | "
                     f"{r['repairs']} ({r['repaired']}) | "
                     f"{r['kept_atomic']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=DIR of an `rrd eval` output folder")
    p.add_argument("--methods", default="conditioned,rrd-uniform,rrd-wu")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a markdown table")
    args = p.parse_args()
    runs = {}
    for spec in args.runs:
        label, _, path = spec.partition("=")
        runs[label] = Path(path or label)
    rows = compare(runs, [m.strip() for m in args.methods.split(",") if m.strip()])
    print(json.dumps(rows, indent=1) if args.json else _markdown(rows))


if __name__ == "__main__":
    main()
