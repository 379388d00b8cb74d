"""`rrd refine` / `rrd judge`: resume, append-only output, bad-input errors, and the CLI end to end over HTTP."""

from __future__ import annotations

import json
import re

import pytest

from judges import Accounting, Judge, JudgeConfig
from rrd import RefineConfig, RubricSet
from rrd.cli import main
from rrd.inputs import PromptTask
from rrd.jobs import refine_all
from rrd.pool import Models
from rrd.records import load_rubric_sets, prompt_key
from rrd.io import InputError, JsonlAppender, read_rows
from tests.fakes import ScriptedBackend, last_user
from tests.loopback_server import LoopbackServer, Reply

EXAMPLES = "examples/pairs.jsonl"


def _scripted_models() -> tuple[Models, ScriptedBackend]:
    def script(req):
        text = last_user(req)
        if "Write a list of rubrics" in text:
            return '["The response is polite.", "The response names a colour."]'
        if "strict, impartial grader" in req.messages[0]["content"]:
            return "NO"
        if "overlap" in text or "conflict" in text:
            return '{"overlaps": null, "conflicts": null}'
        return f"a sampled response {req.params.sample_index}"

    acc = Accounting()
    backend = ScriptedBackend(script, accounting=acc)
    judge = Judge(JudgeConfig(model="scripted", cache=False), backend=backend, accounting=acc)
    return Models(judge, judge, {}), backend


async def test_refine_appends_each_set_and_resume_skips_finished_prompts(tmp_path):
    out_path = tmp_path / "rubrics.jsonl"
    models, backend = _scripted_models()
    cfg = RefineConfig(n_samples=3, misalignment=False)
    tasks = [PromptTask(f"p{i}", f"Prompt number {i}?", None) for i in range(3)]
    with JsonlAppender(out_path) as out:
        await refine_all(tasks, models, cfg, out, prompt_concurrency=2)
    lines = out_path.read_text().splitlines()
    assert sorted(json.loads(x)["prompt_id"] for x in lines) == ["p0", "p1", "p2"]
    with open(out_path, "a") as fh:
        fh.write('{"prompt_id": "p3", "trunc')  # a crash mid-write
    seen_before = len(backend.requests)
    more = tasks + [PromptTask("p3", "Prompt number 3?", None)]
    with JsonlAppender(out_path) as out:
        done = await refine_all(more, models, cfg, out, prompt_concurrency=2)
    assert [rs.prompt_id for rs in done] == ["p3"]
    new_prompts = {m["content"] for r in backend.requests[seen_before:] for m in r.messages}
    assert not any("Prompt number 0?" in c or "Prompt number 1?" in c for c in new_prompts)
    records = [json.loads(x) for x in out_path.read_text().splitlines()]
    assert [r["prompt_id"] for r in records].count("p3") == 1 and len(records) == 4
    RubricSet.from_dict(records[-1])  # the repaired file holds only whole, loadable sets


async def test_judge_refines_a_missing_set_once_when_its_first_pair_needs_it(tmp_path):
    from rrd.inputs import Pair
    from rrd.jobs import JudgeRunConfig, MissingRubricSets, judge_pairs

    models, backend = _scripted_models()
    pairs = [Pair(f"x{i}", "p0" if i < 3 else "p1", "Prompt zero?" if i < 3 else "Prompt one?", f"a {i}", f"b {i}",
                  "A") for i in range(4)]
    rubrics = tmp_path / "rubrics.jsonl"
    cfg = RefineConfig(n_samples=2, misalignment=False)
    with pytest.raises(MissingRubricSets, match="2 prompts have no rubric set"):
        with JsonlAppender(tmp_path / "v.jsonl") as out:
            await judge_pairs(pairs, {}, models, JudgeRunConfig(refine_missing=False), cfg, out,
                              rubrics_path=str(rubrics))
    assert not backend.requests
    sets: dict = {}
    with JsonlAppender(tmp_path / "v.jsonl") as out:
        await judge_pairs(pairs, sets, models, JudgeRunConfig(), cfg, out, rubrics_path=str(rubrics))
    stored = [json.loads(x)["prompt_id"] for x in rubrics.read_text().splitlines()]
    assert sorted(stored) == ["p0", "p1"] and set(sets) == {"p0", "p1"}  # each prompt refined once
    asked = [r for r in backend.requests if "Write a list of rubrics" in last_user(r)]
    assert sorted("zero" in last_user(r) for r in asked) == [False, True]
    verdicts = [json.loads(x) for x in (tmp_path / "v.jsonl").read_text().splitlines()]
    assert sorted(r["pair_id"] for r in verdicts) == ["x0", "x1", "x2", "x3"]
    assert all(r["rubric_set"] == sets[r["prompt_id"]].content_hash for r in verdicts)


def test_appender_keeps_a_complete_last_line_without_newline(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}')
    with JsonlAppender(path) as out:
        assert out.existing == [{"a": 1}, {"b": 2}]
        out.append({"c": 3})
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_bad_records_name_file_line_and_field(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "q", "response_A": "a", "response_B": "b"}\n{"prompt": "q2", "response_A": "a"}\n')
    rows = list(read_rows(str(bad)))
    with pytest.raises(InputError, match=r"pairs.jsonl, line 2, field 'response_B or response_b"):
        rows[1].get("response_B", "response_b")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "ok"}\n\n{"prompt": oops}\n')
    with pytest.raises(InputError, match=r"broken.jsonl, line 3: invalid JSON"):
        list(read_rows(str(broken)))


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"prompt": "q", "response_A": "a", "response_B": "b", "label": "maybe"}\n')
    code = main(["judge", str(bad), "--rubrics", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "v.jsonl"),
                 "--judge", "x", "--api-base", "http://127.0.0.1:9/v1", "--no-cache"])
    assert code == 2
    assert "pairs.jsonl, line 1, field 'label': unknown label 'maybe'" in capsys.readouterr().err


def test_csv_and_json_inputs(tmp_path):
    (tmp_path / "p.csv").write_text("id,prompt\n1,Hello?\n2,Bye?\n")
    (tmp_path / "p.json").write_text('[{"question": "Q1"}, {"question": "Q2"}]')
    assert [r.data["prompt"] for r in read_rows(str(tmp_path / "p.csv"))] == ["Hello?", "Bye?"]
    assert [r.line for r in read_rows(str(tmp_path / "p.csv"))] == [2, 3]
    assert [r.data["question"] for r in read_rows(str(tmp_path / "p.json"), limit=1)] == ["Q1"]


def test_short_form_rubric_file_loads_as_provided_sets():
    sets = load_rubric_sets("examples/rubrics.jsonl")
    rs = sets[prompt_key("List three primary colors of light.")]
    assert rs.weight_scheme == "uniform" and len(rs.texts) == 4 and abs(sum(rs.weights) - 1) < 1e-9


def _yes_if_in_response(n: int, req: dict) -> Reply:
    """A grader that answers YES when the criterion's quoted key word appears in the response."""
    text = req["messages"][-1]["content"]
    response = text.split("<response>")[1].split("</response>")[0]
    criterion = text.split("Criterion:")[1].split("\n")[0]
    words = [w.lower() for w in re.findall(r"[A-Za-z]{4,}", criterion)]
    hit = any(w in response.lower() for w in words[-3:])
    return Reply(text="YES" if hit else "NO")


def test_rrd_judge_end_to_end_over_http_resumes_with_zero_calls(tmp_path, capsys):
    out = tmp_path / "verdicts.jsonl"
    rubrics = tmp_path / "rubrics.jsonl"
    rubrics.write_text(open("examples/rubrics.jsonl").read())
    with LoopbackServer(_yes_if_in_response) as server:
        argv = ["judge", EXAMPLES, "--rubrics", str(rubrics), "--out", str(out), "--judge", "grader",
                "--api-base", server.api_base, "--cache-path", str(tmp_path / "c.sqlite")]
        assert main(argv) == 0
        first = capsys.readouterr().out
        calls = len(server.requests)
        records = [json.loads(x) for x in out.read_text().splitlines()]
        assert len(records) == 6 and calls == sum(r["usage"]["calls"] for r in records) > 0
        assert {r["pair_id"] for r in records} == {f"ex-{i}" for i in range(1, 7)}
        assert all(r["label"] in ("A", "B") and r["credit"] in (0.0, 0.5, 1.0) for r in records)
        assert re.search(r"accuracy: [0-9.]+ \(.*/6\), 95% CI", first)
        assert "this run: " in first
        # a second run: every pair already judged, nothing sent
        assert main(argv) == 0
        assert len(server.requests) == calls
        assert len(out.read_text().splitlines()) == 6
        # drop the output: the pairs are judged again, all from the cache
        out.unlink()
        assert main(argv) == 0
        assert len(server.requests) == calls and "0 calls" in capsys.readouterr().out


def _refine_server(n: int, req: dict) -> Reply:
    """Plays every role of a refine run over HTTP: sampler, proposer, grader, overlap/conflict checker."""
    system = req["messages"][0]["content"] if req["messages"][0]["role"] == "system" else ""
    text = req["messages"][-1]["content"]
    if "strict, impartial grader" in system:
        response = text.split("<response>")[1].split("</response>")[0]
        return Reply(text="YES" if "colour" in response and "colour" in text.split("Criterion:")[1] else "NO")
    if "Write a list of rubrics" in text:
        return Reply(text='["The response names a colour.", "The response is polite.", "The response is polite."]')
    if "overlap" in text:
        return Reply(text='{"overlaps": null}')
    if "conflict" in text:
        return Reply(text='{"conflicts": null}')
    return Reply(text=f"A response that names a colour, number {n}.")


def test_rrd_refine_end_to_end_over_http_and_resume(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Name a colour."}\n{"prompt": "Name another colour."}\n')
    out = tmp_path / "rubrics.jsonl"
    with LoopbackServer(_refine_server) as server:
        argv = ["refine", str(prompts), "--out", str(out), "--judge", "m", "--api-base", server.api_base,
                "--cache-path", str(tmp_path / "c.sqlite"), "--n-samples", "4", "--no-misalignment",
                "--on-failed-decomposition", "keep"]
        assert main(argv) == 0
        captured = capsys.readouterr()
        summary = captured.out
        # stderr is not a terminal here: a line per finished prompt, not a redraw every 2 s (the loop's stage and
        # counts reach a log in the heartbeat line, tests/rrd/test_profile.py)
        assert re.findall(r"^refine: (\d)/2 prompts", captured.err, re.MULTILINE) == ["1", "2"]
        sent = len(server.requests)
        sets = [RubricSet.from_dict(json.loads(x)) for x in out.read_text().splitlines()]
        assert sorted(s.prompt for s in sets) == ["Name a colour.", "Name another colour."]
        for rs in sets:
            assert len(rs.samples) == 4 and rs.content_hash == rs.compute_hash()
            # the colour rubric is met by all 4 samples (c=4 > n=2), but the server's decompositions are prose:
            # re-asked once, still unreadable, so the parent is kept as atomic (--on-failed-decomposition keep)
            colour = next(r for r in rs.tree if r.text == "The response names a colour.")
            assert colour.satisfied == 4 and colour.status == "accepted" and "kept as atomic" in colour.detail
            assert rs.stats["repairs"] == 1 and rs.stats["failed_decompositions"] == 1
            assert [r.reason for r in rs.tree if r.status == "dropped"] == ["duplicate"]  # the repeated "polite"
        decompositions = [r for r in server.requests
                          if any("is too coarse: all of the responses" in m["content"] for m in r["messages"])]
        assert len(decompositions) == 4  # each prompt: the request and one repair turn
        # the HTML view is written beside the rubrics by default, with both sets and the kept rubric's status
        page = (tmp_path / "rubrics.html").read_text()
        assert f"view: {tmp_path / 'rubrics.html'}" in captured.err
        assert page.count('"status":"kept"') == 2 and "Name another colour." in page
        assert {r["repetition_penalty"] for r in decompositions} == {1.1}  # sent to an api_base server
        assert "prompts: 2" in summary and "repeats dropped before grading: duplicate 2" in summary
        assert "failed decompositions: 2 (2 parents kept as atomic)" in summary
        assert main(argv) == 0  # resume: both prompts done, nothing sent
        assert len(server.requests) == sent
