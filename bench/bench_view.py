"""How the HTML view copes with a large run: 1,000 items x 2 methods and 100 rubric sets of 30 nodes each.

Builds a synthetic page with rrd.view.render (the same code path as `rrd view`), opens it from disk in headless
Chromium and prints: page size, time to a rendered first page (navigation start to the page script's end),
and the time of the interactions a reader repeats (disagreement filter, a search keystroke, opening a set and
filtering its tree, paging).

    python bench/bench_view.py [--items 1000] [--sets 100] [--nodes 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rrd.view import render, write_page  # noqa: E402
from tests.eval.test_view_browser import _driver  # noqa: E402

STATUSES = ["accepted", "decomposed", "rejected", "dropped", "kept"]
REASONS = ["duplicate", "near_duplicate", "misaligned", "overlap", "conflict"]


def synthetic(n_items: int, n_sets: int, n_nodes: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    words = "response states the correct result clearly names law cites source concise polite safe".split()
    text = lambda k: " ".join(rng.choice(words) for _ in range(k))  # noqa: E731
    sets = []
    for s in range(n_sets):
        nodes = []
        for j in range(n_nodes):
            status = rng.choice(STATUSES)
            nodes.append({"id": f"{s}-{j}", "text": text(10), "parent": f"{s}-{rng.randrange(j)}" if j > 3 else None,
                          "depth": int(j > 3), "origin": "initial", "status": status,
                          "reason": rng.choice(REASONS) if status in ("rejected", "dropped") else None,
                          "detail": text(8), "satisfied": rng.randrange(9), "n": 8, "strong": True, "weak": False,
                          "calls": 3, "weight": 0.1 if status == "accepted" else None, "children": []})
        accepted = [n["id"] for n in nodes if n["status"] in ("accepted", "kept")]
        matrix = [[float(rng.random() < .5) for _ in range(10)] for _ in accepted]
        sets.append({"key": f"set{s}", "prompt_id": f"p{s}", "method": "rrd-wu", "prompt": text(60),
                     "weight_scheme": "whitened_uniform", "weight_note": None, "stopped": "queue_empty",
                     "failure": None, "fallback": None, "calls": 90, "samples": [text(200) for _ in range(8)],
                     "references": {"strong": text(200), "weak": text(200)}, "accepted": accepted,
                     "texts": [n["text"] for n in nodes if n["id"] in accepted], "nodes": nodes, "matrix": matrix,
                     "corr": [[0.0] * len(accepted) for _ in accepted]})
    items = []
    for i in range(n_items):
        s = sets[i % n_sets]
        k = len(s["accepted"])
        items.append({"id": f"item{i}", "label": rng.choice("AB"), "prompt": text(80),
                      "responses": [text(250), text(250)],
                      "methods": {"direct": {"verdict": rng.choice("AB"), "games": ["A", "B"]},
                                  "rrd-wu": {"verdict": rng.choice("AB"), "scores": [0.5, 0.4], "set": s["key"],
                                             "verdicts": [[rng.random() < .5 for _ in range(k)] for _ in "AB"]}}})
    run = {"bench": "synthetic", "command": "python bench/bench_view.py", "cost": [], "plots": {},
           "summary": {"direct": {"n": n_items, "accuracy": 0.5, "ci": [0.47, 0.53]}}}
    return {"kind": "eval", "title": "bench", "run": run, "items": items, "sets": sets}


def timed(driver, script: str) -> float:
    """Milliseconds for a synchronous interaction, including the layout it forces."""
    return driver.execute_script(
        "const t = performance.now();" + script + "; document.body.offsetHeight; return performance.now() - t;")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--sets", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=30)
    args = ap.parse_args()
    driver, why = _driver()
    if driver is None:
        sys.exit(f"bench_view: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        page = write_page(Path(tmp) / "view.html", render("bench", synthetic(args.items, args.sets, args.nodes)))
        size = page.stat().st_size
        loads = []
        for _ in range(3):
            driver.get(page.as_uri())
            loads.append(driver.execute_script("return performance.now()"))
        f = {
            "disagreement filter": timed(driver, "document.querySelector('input.f-disagree').click()"),
            "search keystroke": timed(driver, "const q = document.querySelector('input.item-search'); q.value = "
                                      "'law'; q.dispatchEvent(new Event('input'))"),
            "next page": timed(driver, "[...document.querySelectorAll('#items .pager button')][1].click()"),
            "open item": timed(driver, "const d = document.querySelector('details.item'); d.open = true; "
                               "d.dispatchEvent(new Event('toggle'))"),
            "open a set (build its tree)": timed(driver, "const d = document.querySelector('details.set'); "
                                                 "d.open = true; d.dispatchEvent(new Event('toggle'))"),
            "filter its tree (rejected)": timed(driver, "const s = document.querySelector('select.f-status'); "
                                                "s.value = 'rejected'; s.dispatchEvent(new Event('change'))"),
        }
        driver.quit()
    print(f"page: {args.items} items x 2 methods, {args.sets} rubric sets x {args.nodes} nodes, "
          f"{size / 1e6:.1f} MB, 25 items / sets per page")
    print(f"load to first rendered page: {min(loads):.0f} ms (best of 3; runs {', '.join(f'{x:.0f}' for x in loads)})")
    for name, ms in f.items():
        print(f"  {name}: {ms:.1f} ms")


if __name__ == "__main__":
    main()
