"""The HTML view in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium).

The pages are opened from file:// URLs, as a user opens them offline. Skipped only where no browser is
installed; CI sets RRD_REQUIRE_BROWSER=1, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from eval.preference import PairFields
from eval.runner import EvalConfig, EvalRun, as_responses, load_items
from eval.view import write_items, write_run_page
from rrd import RefineConfig
from rrd.io import JsonlAppender
from rrd.view import rubrics_page, write_page
from tests.eval.test_eval_run import _models
from tests.rrd.test_view import EVIL, tree_set


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None, "selenium is not installed (pip install -e .[test])"
    driver_path = shutil.which("chromedriver")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not driver_path or not browser:
        return None, "no Chromium/chromedriver installed (apt-get install chromium chromium-driver)"
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options), ""


@pytest.fixture(scope="module")
def browser():
    driver, why = _driver()
    if driver is None:
        if os.environ.get("RRD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"RRD_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    yield driver
    driver.quit()


def _open(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    assert driver.execute_script("return document.body.dataset.ready") == "1", "the page script did not finish"


def _css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _built(driver, within, selector: str):
    """The elements `selector` finds in `within` once a <details>' toggle handler has built them: the browser fires
    "toggle" as a task after the click returns, so looking at once races the handler (it lost under CI load)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 10).until(lambda _: within.find_elements("css selector", selector))


def _visible_nodes(driver) -> list[str]:
    return [n.find_element("css selector", ":scope > summary .rtext").get_attribute("textContent")
            for n in _css(driver, "details.node") if "hidden" not in n.get_attribute("class").split()]


def test_rubric_tree_renders_filters_and_stays_inert(tmp_path, browser):
    from selenium.webdriver.support.ui import Select

    page = write_page(tmp_path / "rubrics.html", rubrics_page([tree_set()], "rubrics"))
    _open(browser, page)
    _css(browser, "details.set > summary")[0].click()  # the tree is built when its set is opened
    assert len(_built(browser, browser, "details.node")) == 7
    badges = [b.text for b in _css(browser, "details.node > summary .badge")]
    assert badges.count("rejected") == 3 and badges.count("kept") == 1 and badges.count("decomposed") == 1
    assert "c 3 of 4" in _css(browser, "details.node > summary")[0].text

    Select(_css(browser, "select.f-status")[0]).select_by_value("rejected")
    Select(_css(browser, "select.f-reason")[0]).select_by_value("duplicate")
    matched = [n.find_element("css selector", ":scope > summary .rtext").text
               for n in _css(browser, "details.node.match")]
    assert sorted(matched) == ["Covers the topic well", "Is polite"]
    # exactly those, plus the decomposed parent that leads to one of them
    assert sorted(_visible_nodes(browser)) == ["Covers the topic", "Covers the topic well", "Is polite"]
    assert _css(browser, ".f-count")[0].text == "2 matching"

    search = _css(browser, "input.f-search")[0]
    Select(_css(browser, "select.f-status")[0]).select_by_value("")
    Select(_css(browser, "select.f-reason")[0]).select_by_value("")
    search.send_keys("names the law")
    assert sorted(n.text for n in _css(browser, "details.node.match > summary .rtext")) == \
        ["Names the law", "Names the law again"]

    samples = [d.get_attribute("textContent") for d in _css(browser, "details.sample")]
    assert len(samples) == 6 and samples[0] == "s0sample 0" and samples[-1] == "weak referenceweak ref"
    heat = _css(browser, "table.heat")
    assert len(heat) == 2 and len(heat[0].find_elements("css selector", "tr")) == 3  # header + 2 accepted rubrics
    # the prompt and a rubric carry a <script> and an onerror= image: shown as text, never run
    assert "<script>window.__pwned = 1</script>" in _css(browser, "details.set .text")[0].text
    assert browser.execute_script("return window.__pwned") is None
    assert not _css(browser, "img[src=x]")


async def _eval_run(tmp_path: Path) -> Path:
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "chosen": f"Answer {i}: CORRECT result.",
             "rejected": f"Answer {i}: wrong result." + (EVIL if i == 0 else "")} for i in range(6)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = EvalConfig(bench="pairs", out_dir=tmp_path / "out", methods="direct,conditioned", data=str(data),
                        pair_fields=PairFields(), rubric_samples="item",
                        refine=RefineConfig(n_samples=2, misalignment=False, max_rejections=2, max_depth=1))
    models, _ = _models()
    items = load_items(config)
    with JsonlAppender(config.out_dir / "results.jsonl") as out:
        await EvalRun(config, models).run(items, out)
    from eval.report import build_report

    build_report(config.out_dir, "pairs", "pairs", "rrd eval pairs --data pairs.jsonl")
    write_items(config.out_dir, [as_responses(it) for it in items])
    return write_run_page(config.out_dir)


async def test_eval_run_page_items_disagreements_and_rubric_links(tmp_path, browser):
    page = await _eval_run(tmp_path)
    _open(browser, page)
    assert "rrd eval pairs --data pairs.jsonl" in _css(browser, "#results .text")[0].text
    table = _css(browser, "#results table")[0].text
    assert "direct" in table and "conditioned" in table and "judge_tie_rate" in table
    assert len(_css(browser, "#results img")) >= 1  # the report's plots, inline
    assert len(_css(browser, "details.item")) == 6

    # the scripted judge always says A: direct ties every pair, conditioned follows the rubric, so all disagree
    _css(browser, "input.f-disagree")[0].click()
    assert len(_css(browser, "details.item")) == 6
    item = next(i for i in _css(browser, "details.item") if i.get_attribute("data-id") == "q0")
    item.find_element("css selector", "summary").click()
    (detail,) = _built(browser, item, ".item-detail")
    responses = [r.text for r in detail.find_elements("css selector", ".response")]
    assert any("<script>window.__pwned = 1</script>" in r for r in responses)
    assert browser.execute_script("return window.__pwned") is None and not _css(browser, "img[src=x]")
    methods = {m.get_attribute("data-method"): m for m in detail.find_elements("css selector", ".method")}
    assert set(methods) == {"direct", "conditioned"}
    rubric_rows = methods["conditioned"].find_elements("css selector", "tr")
    assert len(rubric_rows) == 3 and "edge" in rubric_rows[0].text  # header + the 2 rubrics, with edges
    assert "The response states the CORRECT result." in rubric_rows[1].text and rubric_rows[1].text.endswith("1")

    methods["conditioned"].find_element("css selector", "a.set-link").click()
    opened = [s for s in _css(browser, "details.set") if s.get_attribute("open") is not None]
    assert len(opened) == 1 and _built(browser, opened[0], "details.node")
