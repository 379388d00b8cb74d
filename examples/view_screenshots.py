"""Screenshots of both page kinds of `rrd view`, from the committed JudgeBench results (docs/results/view/).

    rrd view docs/results/judgebench --data ../shared/data/judgebench/judgebench_gpt-4o-2024-05-13.jsonl
    rrd view docs/results/judgebench/rubrics/rrd-uniform.jsonl --out docs/results/judgebench/rubrics.html
    python examples/view_screenshots.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.eval.test_view_browser import _driver  # noqa: E402

OUT = ROOT / "docs" / "results" / "view"


def main() -> None:
    driver, why = _driver()
    if driver is None:
        sys.exit(why)
    OUT.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1300, 1500)
    driver.get((ROOT / "docs/results/judgebench/view.html").as_uri())
    # the first item where the methods disagree, opened, scrolled into view
    driver.execute_script("document.querySelector('input.f-disagree').click();"
                          "const d = document.querySelector('details.item'); d.open = true;"
                          "d.dispatchEvent(new Event('toggle')); d.scrollIntoView();")
    driver.save_screenshot(str(OUT / "eval_item.png"))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(OUT / "eval_results.png"))
    driver.get((ROOT / "docs/results/judgebench/rubrics.html").as_uri())
    # the set with the largest tree, opened and filtered to its rejections
    driver.execute_script(
        "const sets = [...document.querySelectorAll('details.set')];"
        "const d = sets[0]; d.open = true; d.dispatchEvent(new Event('toggle'));"
        "const s = d.querySelector('select.f-status'); s.value = 'rejected'; s.dispatchEvent(new Event('change'));"
        "d.scrollIntoView();")
    driver.save_screenshot(str(OUT / "rubric_tree.png"))
    driver.quit()
    print("\n".join(str(p) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
