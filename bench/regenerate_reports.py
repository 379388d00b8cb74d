"""Re-generate every committed `rrd eval` report and rubric file under docs/results from its records, and say what
differs from the committed bytes. A refactor that changes no behaviour changes nothing here.

    python bench/regenerate_reports.py [ROOT]      # ROOT: docs/results; exit 1 when a file differs

Reports: each folder with a results.jsonl is copied to a temporary folder, its report (report.md, summary.json,
the plots) and view.html are rebuilt there from the records alone (eval.report.build_report with the command the
committed report names, eval.view.write_run_page), and each rebuilt file is compared with the committed one.
Rubric files: every line of a .jsonl that holds RubricSets is loaded and written again (RubricSet.from_dict, then
to_dict) and compared with the line as committed. No model is loaded and no call is made.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from eval.benchmarks import BENCHMARKS
from eval.report import build_report
from eval.view import write_run_page
from rrd.io import read_jsonl
from rrd.records import RubricSet

REBUILT = ("report.md", "summary.json", "view.html")


def committed_command(report: Path) -> str | None:
    """The command a committed report.md names (its "Command:" block), so the rebuilt one names the same."""
    found = re.search(r"Command:\n\n```bash\n(.*?)\n```", report.read_text(encoding="utf-8"), re.S) \
        if report.exists() else None
    return found.group(1) if found else None


def rebuild_run(run: Path) -> list[str]:
    """The files of one eval run whose rebuilt bytes differ from the committed ones."""
    records = read_jsonl(run / "results.jsonl")
    bench = records[0]["bench"]
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy)
        build_report(copy, bench, BENCHMARKS[bench].kind, committed_command(run / "report.md"))
        write_run_page(copy)
        names = [*REBUILT, *(p.name for p in run.glob("*.png"))]
        return [name for name in names if (run / name).exists()
                and (run / name).read_bytes() != (copy / name).read_bytes()]


def rubric_lines_changed(path: Path) -> tuple[int, int]:
    """(sets, sets whose reloaded form differs from the committed line) of a rubric file; (0, 0) when it holds
    no RubricSets."""
    sets = changed = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        if not isinstance(d, dict) or "tree" not in d:
            return sets, changed
        sets += 1
        changed += RubricSet.from_dict(d).to_dict() != d
    return sets, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default="docs/results")
    root = Path(parser.parse_args(argv).root)
    differ = 0
    for results in sorted(root.rglob("results.jsonl")):
        changed = rebuild_run(results.parent)
        differ += len(changed)
        print(f"{results.parent}: " + (f"DIFFERS: {', '.join(changed)}" if changed else "identical"))
    for path in sorted(root.rglob("*.jsonl")):
        sets, changed = rubric_lines_changed(path)
        if sets:
            differ += changed
            print(f"{path}: {sets} rubric sets, " + (f"{changed} DIFFER" if changed else "identical"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
