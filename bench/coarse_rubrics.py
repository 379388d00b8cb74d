"""What the rubrics a refinement left coarse add to a set's pair accuracy, from a finished `rrd eval` run, with no
judge call.

A rubric is left coarse when it was accepted although more than n samples satisfy it (c > n): the decomposition
budget was spent, the depth cap reached, or the decomposition failed and the parent was kept. On the samples it
separates nothing, and with small proposers such rubrics make up much of a set (15 of 17 in the quickstart). This
script re-scores each RRD record of a pair run with and without them, from the P(YES) values the record stores
(soft scores, the default; a set with no other rubric keeps all of its own), and prints both accuracies and their
paired bootstrap difference with its 95% CI, so whether they help can be read off before any mechanism drops them.

    python bench/coarse_rubrics.py RUN_DIR [RUN_DIR ...] [--methods rrd-uniform,rrd-wu] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eval.report_figures import stored_sets
from rrd.records import RubricSet
from rrd.scoring import compare

from compare_runs import _records, correct_by_item, paired_differences


def coarse_mask(rs: RubricSet) -> list[bool]:
    """Per accepted rubric: satisfied by more than n of the samples (n = the set's satisfy_threshold)."""
    n = rs.config["refine"]["satisfy_threshold"]
    return [sum(v is True for v in r.verdicts) > n for r in rs.rubrics]


def rescored(record: dict[str, Any], keep: list[bool]) -> dict[str, Any]:
    """The record's pair verdict with only the rubrics in `keep` (weights renormalised by rrd.scoring)."""
    w = [x for x, k in zip(record["weights"], keep) if k]
    va, vb = ([x for x, k in zip(v, keep) if k] for v in record["verdicts"])
    return {**record, "games": [compare(w, va, vb)]}


def analyse(run: Path, method: str) -> dict[str, Any]:
    sets = {rs.content_hash: rs for rs in stored_sets(run, method)}
    records = [r for r in _records(run) if r.get("method") == method and r.get("verdicts")
               and r.get("score_mode") == "soft" and r.get("label") in ("A", "B")]
    without, rubrics, coarse, all_coarse = [], 0, 0, 0
    for r in records:
        mask = coarse_mask(sets[r["rubric_set"]])
        keep = [not c for c in mask]
        all_coarse += not any(keep)
        rubrics, coarse = rubrics + len(mask), coarse + sum(mask)
        without.append(rescored(r, keep if any(keep) else mask))
    full, fine = correct_by_item(records), correct_by_item(without)
    (diff,) = paired_differences({"without coarse": fine, "all": full}) or [None]
    return {"run": str(run), "method": method, "pairs": len(records), "rubrics": rubrics, "coarse": coarse,
            "sets_all_coarse": all_coarse, "accuracy_all": sum(full.values()) / max(1, len(full)),
            "accuracy_without_coarse": sum(fine.values()) / max(1, len(fine)), "difference": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="rrd eval output folders of pair benchmarks")
    ap.add_argument("--methods", default="rrd-uniform,rrd-wu")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    rows = [analyse(run, m) for run in args.runs for m in args.methods.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print("| run | method | pairs | coarse rubrics | sets only coarse | soft accuracy, all | without coarse | "
          "difference [95% CI] |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["difference"]
        ci = f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]" if d else "-"
        print(f"| {r['run']} | {r['method']} | {r['pairs']} | {r['coarse']} of {r['rubrics']} | "
              f"{r['sets_all_coarse']} | {r['accuracy_all']:.3f} | {r['accuracy_without_coarse']:.3f} | {ci} |")


if __name__ == "__main__":
    main()
