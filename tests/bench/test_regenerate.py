"""bench/regenerate_reports.py: a report rebuilt from its records matches the committed bytes, and a changed byte
or a rubric set that reloads differently is named."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rrd.records import RubricSet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
regenerate = pytest.importorskip("regenerate_reports")


async def test_a_rebuilt_run_is_identical_and_an_edited_report_is_named(tmp_path):
    from eval.report import build_report
    from eval.view import write_run_page
    from tests.eval.test_eval_run import _config, _models, _run

    config = _config(tmp_path, "direct,rrd-wu", rubric_samples="item")
    await _run(config, _models()[0])
    build_report(config.out_dir, "judgebench", "pairs", "rrd eval judgebench --method direct,rrd-wu")
    write_run_page(config.out_dir)
    assert regenerate.rebuild_run(config.out_dir) == []  # the command, plots, summary and view all rebuilt alike
    report = config.out_dir / "report.md"
    report.write_text(report.read_text().replace("accuracy", "acc", 1))
    assert regenerate.rebuild_run(config.out_dir) == ["report.md"]


def test_rubric_lines_that_reload_differently_are_counted(tmp_path):
    rs = RubricSet.provided("A prompt?", ["The response is polite."])
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps(rs.to_dict()) + "\n")
    assert regenerate.rubric_lines_changed(same) == (1, 0)
    legacy = tmp_path / "legacy.jsonl"  # a field an older version wrote and this one no longer keeps
    legacy.write_text(json.dumps({**rs.to_dict(), "verdicts": [[True]]}) + "\n")
    assert regenerate.rubric_lines_changed(legacy) == (1, 1)
    verdicts = tmp_path / "verdicts.jsonl"  # not a rubric file
    verdicts.write_text('{"pair_id": "x"}\n')
    assert regenerate.rubric_lines_changed(verdicts) == (0, 0)
