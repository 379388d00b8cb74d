"""The HTML view of an eval run folder: results with CIs, cost, the plots inline, and every item with each
method's verdict, per-rubric verdicts, edges and a link to its rubric set (rendered by rrd/view.py's page).

Item texts come from OUT/items.jsonl, which `rrd eval` writes; for a folder without one (an older run), pass
the benchmark file again (`rrd view RUN --data FILE`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rrd.io import read_jsonl, write_atomic
from rrd.view import render, set_payload, write_page

from .judging import ItemResponses
from .report import by_method, combined_verdict, usage_totals
from .report_figures import stored_sets

ITEMS = "items.jsonl"
PAGE = "view.html"


def write_items(out_dir: Path, items: Iterable[ItemResponses]) -> Path:
    """The prompt and responses of every item of the run, so the page can show what was judged.

    Merged with the file already there: a resumed run with another --limit keeps the texts of earlier items.
    """
    path = Path(out_dir) / ITEMS
    rows = {r["id"]: r for r in read_jsonl(path)}
    rows.update({it.item_id: {"id": it.item_id, "prompt": it.prompt, "responses": list(it.responses)}
                 for it in items})
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows.values()))
    return path


def _method_view(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    games = record.get("games")
    if kind == "pairs" and games is not None:
        verdict = combined_verdict(games)
    elif record.get("scores"):  # best-of-K style: the index of the top score
        scores = [-np.inf if s is None else s for s in record["scores"]]
        verdict = None if all(s is None for s in record["scores"]) else int(np.argmax(scores))
    else:
        verdict = record.get("verdict", record.get("score"))
    note = record.get("error") or record.get("skipped")
    if record.get("comparisons"):  # the pairwise judge on multi-response items: one two-game pair per comparison
        note = "; ".join(f"{i} vs {j}: {g1}, {g2}" for i, j, g1, g2 in record["comparisons"])
    return {
        "verdict": verdict, "games": games, "scores": record.get("scores"), "set": record.get("rubric_set"),
        "verdicts": record.get("verdicts"), "note": note,
    }


def _cost(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    return [{"method": m, "items": len(rows), **usage_totals(rows),  # type: ignore[arg-type]
             "seconds": float(np.mean([r.get("elapsed_s", 0.0) for r in rows]))} for m, rows in groups.items()]


def _plots(out_dir: Path) -> dict[str, str]:
    return {p.stem.replace("_", " "): "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
            for p in sorted(out_dir.glob("*.png"))}


def _command(out_dir: Path) -> str | None:
    report = out_dir / "report.md"
    if not report.exists():
        return None
    lines = report.read_text(encoding="utf-8").splitlines()
    if "```bash" in lines:
        i = lines.index("```bash")
        return "\n".join(lines[i + 1: lines.index("```", i + 1)])
    return None


def run_page(out_dir: str | Path, items: Iterable[ItemResponses] | None = None, kind: str | None = None) -> str:
    """The page for an eval output folder; `items` (else OUT/items.jsonl) supplies prompts and responses."""
    out_dir = Path(out_dir)
    records = read_jsonl(out_dir / "results.jsonl")
    if not records:
        raise ValueError(f"{out_dir}: no results.jsonl records to show (is this an `rrd eval --out` folder?)")
    bench = records[0].get("bench", "?")
    if kind is None:
        from .benchmarks import BENCHMARKS

        kind = BENCHMARKS[bench].kind if bench in BENCHMARKS else "pairs"
    texts = ({it.item_id: {"prompt": it.prompt, "responses": list(it.responses)} for it in items} if items is not None
             else {r["id"]: r for r in read_jsonl(out_dir / ITEMS)})
    groups = by_method(records)
    sets = [set_payload(rs, m) for m in groups for rs in stored_sets(out_dir, m)]
    by_item: dict[str, dict[str, Any]] = {}
    for r in records:  # later records of an item and method supersede earlier ones (a retried item)
        iid = str(r.get("item_id"))
        entry = by_item.setdefault(iid, {"id": iid, "label": r.get("label"), "methods": {},
                                         **texts.get(iid, {"prompt": "", "responses": []})})
        entry["methods"][r.get("method", "?")] = _method_view(kind, r)
    summary_path = out_dir / "summary.json"
    run = {
        "bench": bench, "command": _command(out_dir), "cost": _cost(groups), "plots": _plots(out_dir),
        "summary": json.loads(summary_path.read_text()) if summary_path.exists() else {},
    }
    title = f"rrd eval {bench}: {out_dir.name}"
    return render(title, {"kind": "eval", "title": title, "run": run, "items": list(by_item.values()),
                          "sets": sets})


def write_run_page(out_dir: str | Path, items: Iterable[ItemResponses] | None = None) -> Path:
    return write_page(Path(out_dir) / PAGE, run_page(out_dir, items))
