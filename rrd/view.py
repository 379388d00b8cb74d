"""A self-contained HTML page that shows why: rubric trees, verdict matrices, and (from eval/view.py) eval runs.

One file, no network: the data is embedded as JSON and rendered by a small script in the page. Untrusted text
(prompts, responses, rubric texts) only ever reaches the page through `textContent`, and the JSON is embedded
with `<`, `>` and `&` escaped, so a response holding `<script>` or `onerror=` shows as text and runs nothing.
Long lists are paginated and a rubric tree is built only when its set is opened, so 1,000 items and 100 sets
load in well under a second (bench/bench_view.py).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .grading import pair_verdict_of, upgrade_pair_record
from .io import write_atomic
from .records import RubricSet

KEPT = "kept as atomic"  # the note refine leaves on a rubric kept after its decomposition failed


def _clean(x: Any) -> Any:
    """JSON-safe: NaN and inf become null (JSON has neither), numpy scalars plain numbers."""
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else round(float(x), 4)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_clean(v) for v in x]
    return x


def node_status(status: str, detail: str | None) -> str:
    """The status a reader needs: an accepted rubric kept after a failed decomposition is not a plain accept."""
    return "kept" if status == "accepted" and detail and KEPT in detail else status


def verdict_matrix(rs: RubricSet) -> list[list[float | None]]:
    """Accepted rubrics x graded responses (the samples, then the strong and weak references); None = unscored."""
    return [[None if v is None else float(v) for v in (*row, r.strong, r.weak)]
            for r, row in zip(rs.rubrics, rs.verdicts)]


def correlation(matrix: Sequence[Sequence[float | None]]) -> list[list[float | None]]:
    """Pearson correlation of the rubrics over the responses every rubric was scored on (None when constant).

    This is the dependence whitening corrects for; with fewer than three common responses it is not estimated.
    """
    x = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    if x.size == 0:
        return []
    x = x[:, ~np.isnan(x).any(axis=0)]
    if x.shape[1] < 3:
        return [[None] * len(x) for _ in x]
    with np.errstate(invalid="ignore", divide="ignore"):
        return _clean(np.corrcoef(x).reshape(len(x), len(x)).tolist())


def set_payload(rs: RubricSet, method: str | None = None) -> dict[str, Any]:
    """What the page shows of one rubric set: its tree (every node, reason and detail), weights, verdicts."""
    weight = dict(zip((r.id for r in rs.rubrics), rs.weights))
    n = len(rs.samples)
    matrix = verdict_matrix(rs)
    nodes = [{
        "id": r.id, "text": r.text, "parent": r.parent, "depth": r.depth, "origin": r.origin,
        "status": node_status(r.status, r.detail), "reason": r.reason, "detail": r.detail,
        "satisfied": r.satisfied, "n": n, "strong": r.strong, "weak": r.weak, "calls": r.judge_calls,
        "weight": weight.get(r.id), "children": list(r.children),
    } for r in rs.tree]
    return _clean({
        "key": rs.content_hash or rs.prompt_id or "", "prompt_id": rs.prompt_id, "method": method,
        "prompt": rs.prompt, "weight_scheme": rs.weight_scheme, "weight_note": rs.weight_note,
        "stopped": rs.stopped, "failure": rs.failure, "fallback": rs.fallback,
        "calls": rs.stats.get("calls"), "samples": [s.text for s in rs.samples],
        "references": {k: s.text for k, s in rs.references.items()},
        "accepted": [r.id for r in rs.rubrics], "texts": rs.texts, "nodes": nodes,
        "matrix": matrix, "corr": correlation(matrix),
    })


def _embed(data: Mapping[str, Any]) -> str:
    """JSON that cannot end its <script> element or open a tag, whatever the strings inside hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render(title: str, data: Mapping[str, Any]) -> str:
    """The whole page: the shipped template with the data and its title embedded."""
    template = resources.files("rrd").joinpath("view_template.html").read_text(encoding="utf-8")
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return template.replace("__TITLE__", safe_title).replace("__DATA__", _embed(_clean(dict(data))))


def rubrics_page(sets: Iterable[RubricSet], title: str, method: str | None = None) -> str:
    return render(title, {"kind": "rubrics", "title": title, "sets": [set_payload(rs, method) for rs in sets]})


def verdicts_page(records: Sequence[Mapping[str, Any]], sets: Iterable[RubricSet], title: str) -> str:
    """`rrd judge` output: each pair's verdict, its per-rubric verdicts on A and B, and its rubric set."""
    payloads = [set_payload(rs) for rs in sets]
    by_key = {p["key"]: p for p in payloads}
    items = []
    for r in map(upgrade_pair_record, records):
        rs = by_key.get(r.get("rubric_set"))
        items.append({
            "id": r.get("pair_id"), "prompt": rs["prompt"] if rs else "", "responses": [], "label": r.get("label"),
            "methods": {"rubrics": {
                "verdict": pair_verdict_of(r) if r.get("tie_break") is None else r.get("tie_break"),
                "scores": r.get("scores") or [None, None], "set": r.get("rubric_set"),
                "verdicts": [[v[0] for v in vs] for vs in r.get("graded") or [[], []]],
                "note": r.get("undecided_reason"),
            }},
        })
    return render(title, {"kind": "verdicts", "title": title, "items": items, "sets": payloads})


def write_page(path: str | Path, html: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html)
    path.chmod(0o644)  # a page is for reading (atomic writes create 0600 files)
    return path
