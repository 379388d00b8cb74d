"""`rrd eval` control flow with a scripted backend: methods, two games, resume, errors, policy grading, dry run,
report. The real-server end-to-end run is in test_eval_server.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eval.estimate import Assumptions, estimate_method, estimate_policy, refinement_key
from eval.judging import ItemResponses, flip
from eval.loaders import load_judgebench
from eval.policy_loaders import load_biggen, load_healthbench
from eval.methods import METHODS, resolve_methods
from eval.report import build_report, combined_verdict
from eval.report_figures import rubric_edges
from eval.runner import EvalConfig, EvalRun, load_items
from judges import Accounting, Judge, JudgeConfig
from rrd import RefineConfig
from rrd.pool import Models
from rrd.io import JsonlAppender
from tests.fakes import ScriptedBackend, last_user

DATA = Path("/work/shared/data")


def _pairs_file(tmp_path: Path) -> Path:
    """Four JudgeBench-format pairs; the labelled winner always contains the word CORRECT."""
    rows = []
    for i, (src, label) in enumerate([("mmlu-pro-law", "A>B"), ("livebench-math", "B>A"),
                                      ("livecodebench", "A>B"), ("livebench-reasoning", "B>A")]):
        good, bad = f"Answer {i}: CORRECT result.", f"Answer {i}: wrong result."
        a, b = (good, bad) if label == "A>B" else (bad, good)
        rows.append({"pair_id": f"p{i}", "original_id": str(i), "source": src, "question": f"Question {i}?",
                     "response_model": "m", "response_A": a, "response_B": b, "label": label})
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _script(req):
    text = last_user(req)
    system = req.messages[0]["content"] if req.messages[0]["role"] == "system" else ""
    if "Which response is better?" in text:
        return "Position bias: the first one. [[A]]"  # always A: the two-game protocol must catch this
    if "Write a list of rubrics" in text:
        return '["The response states the CORRECT result.", "The response is short."]'
    if "strict, impartial grader" in system:
        response = text.split("</response>")[0]
        if "CORRECT result" in text.split("Criterion:")[-1]:
            return "YES" if "CORRECT" in response else "NO"
        return "YES"
    if "overlap" in text or "conflict" in text:
        return '{"overlaps": null, "conflicts": null}'
    if "boom" in text:
        raise RuntimeError("scripted crash")
    return f"a sampled response {req.params.sample_index}"


def _models(script=_script) -> tuple[Models, ScriptedBackend]:
    acc = Accounting()
    backend = ScriptedBackend(script, accounting=acc)
    judge = Judge(JudgeConfig(model="scripted", cache=False), backend=backend, accounting=acc)
    return Models(judge, judge, {}), backend


def _config(tmp_path: Path, methods: str, **kw) -> EvalConfig:
    refine = RefineConfig(n_samples=2, misalignment=False, max_rejections=2, max_depth=1)
    return EvalConfig(bench="judgebench", out_dir=tmp_path / "out", methods=methods,
                      data=str(_pairs_file(tmp_path)), refine=refine, **kw)


async def _run(config: EvalConfig, models: Models) -> tuple[EvalRun, list[dict]]:
    path = config.out_dir / "results.jsonl"
    with JsonlAppender(path) as out:
        run = EvalRun(config, models)
        await run.run(load_items(config), out)
    return run, [json.loads(x) for x in path.read_text().splitlines()]


def test_method_groups_and_overrides():
    names = [m.name for m in resolve_methods("direct,rrd,direct")]
    assert names == ["direct", "rrd-uniform", "rrd-llm", "rrd-wu"]
    assert len(resolve_methods("all")) == len(METHODS) == 10
    with pytest.raises(ValueError, match="unknown method 'rrd-magic'"):
        resolve_methods("rrd-magic")
    cfg = METHODS["rrd-no-overlap"].refine_config(RefineConfig(seed=7))
    assert (cfg.overlap, cfg.conflict, cfg.weight_scheme, cfg.seed) == (False, True, "whitened", 7)
    cfg = METHODS["prompt-only"].refine_config(RefineConfig())
    assert cfg.initial_source == "prompt_only" and not (cfg.decompose or cfg.misalignment)
    assert flip("A") == "B" and flip("tie") == "tie" and flip(None) is None


async def test_direct_two_games_catch_position_bias_and_rubrics_follow_the_content(tmp_path):
    models, backend = _models()
    config = _config(tmp_path, "direct,conditioned", rubric_samples="item", score="hard")
    run, records = await _run(config, models)
    direct = {r["item_id"]: r for r in records if r["method"] == "direct"}
    # "always A" judged (A,B) then (B,A): the second game flipped back says B, so every pair is inconsistent
    assert all(r["games"] == ["A", "B"] for r in direct.values())
    # soft: the games disagree and the scripted judge gives no logprobs, so the soft tie-break has nothing to say
    assert all(r["games_by_mode"] == {"hard": ["A", "B"], "soft": ["tie"]} for r in direct.values())
    rubric = {r["item_id"]: r for r in records if r["method"] == "conditioned"}
    assert {i: r["games"][0] for i, r in rubric.items()} == {"p0": "A", "p1": "B", "p2": "A", "p3": "B"}
    assert all(r["n_rubrics"] == 2 and r["usage"]["calls"] > 0 for r in rubric.values())
    # rubrics were conditioned on the item's own two responses: no sampling call (temperature > 0) was made
    assert not any(q.params.temperature > 0 for q in backend.requests)
    report = build_report(config.out_dir, "judgebench", "pairs")
    assert "| direct | 2 | 4 | 0.000" in report and "| conditioned | 1 | 4 | 1.000" in report
    assert "| 1.000 | 1.000 | 1.000 |" in report  # direct: tie rate 1, opposite verdicts 1, mismatch 1
    for png in ("accuracy_by_method.png", "accuracy_by_source.png", "rubric_edges.png"):
        assert (config.out_dir / png).stat().st_size > 0


async def test_resume_judges_nothing_twice_and_reuses_stored_rubric_sets(tmp_path):
    models, backend = _models()
    config = _config(tmp_path, "direct,rrd-wu", rubric_samples="item", limit=2)
    await _run(config, models)
    first = len(backend.requests)
    config.limit = None
    run, records = await _run(config, models)
    assert run.summary.skipped == 4 and run.summary.written == 4
    assert sorted((r["method"], r["item_id"]) for r in records) == sorted(
        (m, f"p{i}") for m in ("direct", "rrd-wu") for i in range(4))
    new_prompts = " ".join(last_user(q) for q in backend.requests[first:])
    assert "Question 0?" not in new_prompts and "Question 2?" in new_prompts
    sets = (config.out_dir / "rubrics" / "rrd-wu.jsonl").read_text().splitlines()
    assert len(sets) == 4
    count = len(backend.requests)
    run, _ = await _run(config, models)
    assert run.summary.written == 0 and len(backend.requests) == count


async def test_methods_sharing_a_refinement_are_charged_only_what_they_sent(tmp_path):
    """rrd-wu after rrd-uniform is answered by the disk cache: its records and rubric sets show zero calls AND
    zero tokens and dollars (a hit carries the usage of the call that filled the cache; it cost nothing now)."""
    acc = Accounting()
    backend = ScriptedBackend(_script, accounting=acc)
    judge = Judge(JudgeConfig(model="scripted", cache_path=str(tmp_path / "c.sqlite")), backend=backend,
                  accounting=acc)
    config = _config(tmp_path, "rrd-uniform,rrd-wu", rubric_samples="item")
    _, records = await _run(config, Models(judge, judge, {}))
    first = [r["usage"] for r in records if r["method"] == "rrd-uniform"]
    second = [r["usage"] for r in records if r["method"] == "rrd-wu"]
    assert all(u["calls"] > 0 and u["prompt_tokens"] > 0 for u in first)
    assert second == [{"calls": 0.0, "prompt_tokens": 0.0, "completion_tokens": 0.0, "cost_usd": 0.0}] * 4
    sets = [json.loads(x) for x in (config.out_dir / "rubrics" / "rrd-wu.jsonl").read_text().splitlines()]
    assert all(s["stats"]["calls"] == 0 and s["stats"]["prompt_tokens"] == 0 for s in sets)
    assert sum(u["prompt_tokens"] for u in first) == acc.prompt_tokens  # records add up to what was spent


async def test_a_failing_item_is_reported_not_written_and_retried(tmp_path):
    models, _ = _models()
    config = _config(tmp_path, "prompt-only")
    path = Path(config.data)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["question"] = "boom?"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run, records = await _run(config, models)
    assert [e.split(":")[0] for e in run.summary.errors] == ["prompt-only / p1"]
    assert sorted(r["item_id"] for r in records) == ["p0", "p2", "p3"]


async def test_best_of_k_refuses_pairwise_methods(tmp_path):
    config = EvalConfig(bench="ppe-math", out_dir=tmp_path, methods="direct,rrd-wu")
    with pytest.raises(ValueError, match="pairwise methods \\['direct'\\]"):
        config.method_list()


# -------------------------------------------------------------------------------------------- policy grading
def _points(text: str) -> float:
    return float(re.search(r"# Rubric item\s*\[(-?[\d.]+)\]", text).group(1))


def _policy_script(req):
    """Grader: a negative item is unreadable at first and met on the re-ask; a positive one is met iff even."""
    text = last_user(req)
    if "# Rubric item" in text:
        points = _points(text)
        if points < 0:
            return '{"criteria_met": true}' if req.params.temperature > 0 else "I think so?"
        return '```json\n{"explanation": "x", "criteria_met": %s}\n```' % str(points % 2 == 0).lower()
    if "###Score Rubrics" in text:
        return "Good but incomplete. [RESULT] 4"
    return "policy reply"


@pytest.mark.skipif(not DATA.exists(), reason="offline data not present")
async def test_healthbench_policy_eval_one_call_per_item_with_reask(tmp_path):
    models, backend = _models(_policy_script)
    policy = Judge(JudgeConfig(model="policy", cache=False), backend=ScriptedBackend(lambda r: "policy reply",
                                                                                          model="policy"))
    src = DATA / "healthbench" / "healthbench_hard_subset_50.jsonl"
    config = EvalConfig(bench="healthbench-hard", out_dir=tmp_path, data=str(src), limit=3)
    with JsonlAppender(tmp_path / "results.jsonl") as out:
        await EvalRun(config, models, policy).run(load_items(config), out)
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    examples = load_healthbench(str(src), limit=3)
    by_id = {r["item_id"]: r for r in records}
    n_items = sum(len(e.rubrics) for e in examples)
    n_negative = sum(r.points < 0 for e in examples for r in e.rubrics)
    assert len(backend.requests) == n_items + n_negative  # one call per item, one re-ask per unreadable one
    for ex in examples:
        rec = by_id[ex.prompt_id]
        assert rec["policy"] == "policy" and rec["judge"] == "scripted" and rec["unscored"] == 0
        met = [r.points < 0 or r.points % 2 == 0 for r in ex.rubrics]
        expected = sum(r.points for r, m in zip(ex.rubrics, met) if m) / sum(r.points for r in ex.rubrics
                                                                               if r.points > 0)
        assert rec["met"] == met and rec["score"] == pytest.approx(expected)
    report = build_report(tmp_path, "healthbench-hard", "healthbench")
    assert "Overall (healthbench-grader)" in report and "| axis:" in report


@pytest.mark.skipif(not DATA.exists(), reason="offline data not present")
async def test_biggen_policy_eval_reuses_stored_responses(tmp_path):
    models, backend = _models(_policy_script)
    policy_backend = ScriptedBackend(lambda r: "policy reply", model="policy")
    policy = Judge(JudgeConfig(model="policy", cache=False), backend=policy_backend)
    config = EvalConfig(bench="biggen", out_dir=tmp_path, data=str(DATA / "biggen_bench" / "biggen_bench_765.jsonl"),
                        limit=4)
    with JsonlAppender(tmp_path / "results.jsonl") as out:
        await EvalRun(config, models, policy).run(load_items(config), out)
    # results lost, responses kept: grading re-runs, the policy is not asked again
    (tmp_path / "results.jsonl").unlink()
    with JsonlAppender(tmp_path / "results.jsonl") as out:
        await EvalRun(config, models, policy).run(load_items(config), out)
    assert len(policy_backend.requests) == 4
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["score"] for r in records] == [4] * 4
    first = load_biggen(config.data, limit=1)[0]
    grader_prompt = last_user(backend.requests[0])
    assert first.reference_answer[:50] in grader_prompt and "Score 5:" in grader_prompt


@pytest.mark.skipif(not DATA.exists(), reason="offline data not present")
@pytest.mark.parametrize("grader,rule,graded", [
    ("hosted_vllm/prometheus-eval/prometheus-7b-v2.0", "official", 2),  # the official run skips llm_judge items
    ("gpt-4o", "official", 4),  # ... and grades them for any other grader
    ("gpt-4o", "skip", 2),
    ("hosted_vllm/prometheus-eval/prometheus-7b-v2.0", "grade", 4),
])
async def test_biggen_llm_judge_items_follow_the_official_run(tmp_path, grader, rule, graded):
    rows = [json.loads(x) for x in (DATA / "biggen_bench" / "biggen_bench_765.jsonl").read_text().splitlines()]
    picked = [r for r in rows if "llm_judge" not in r["id"]][:2] + [r for r in rows if "llm_judge" in r["id"]][:2]
    data = tmp_path / "biggen.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in picked))
    acc = Accounting()
    backend = ScriptedBackend(_policy_script, model=grader, accounting=acc)
    judge = Judge(JudgeConfig(model=grader, cache=False), backend=backend, accounting=acc)
    policy = Judge(JudgeConfig(model="policy", cache=False), backend=ScriptedBackend(lambda r: "reply", model="p"))
    config = EvalConfig(bench="biggen", out_dir=tmp_path, data=str(data), biggen_llm_judge=rule)
    with JsonlAppender(tmp_path / "results.jsonl") as out:
        await EvalRun(config, Models(judge, judge, {}), policy).run(load_items(config), out)
    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4 and len(backend.requests) == graded
    skipped = [r for r in records if r.get("skipped")]
    assert all("llm_judge" in r["item_id"] for r in skipped) and len(skipped) == 4 - graded
    report = build_report(tmp_path, "biggen", "biggen")
    assert f"{graded} scored, 0 unparsed, {4 - graded} skipped" in report


# -------------------------------------------------------------------------------------------- dry run, report
@pytest.mark.skipif(not DATA.exists(), reason="offline data not present")
def test_dry_run_counts_the_calls_the_protocol_fixes():
    pairs = load_judgebench(str(DATA / "judgebench" / "judgebench_gpt-4o-2024-05-13.jsonl"), limit=5)
    items = [ItemResponses(p.pair_id, p.question, [p.response_a, p.response_b]) for p in pairs]
    est, how = estimate_method(METHODS["direct"], items, "gpt-4o", RefineConfig(), [], Assumptions())
    assert est.calls == 10 and est.prompt_tokens > sum(len(p.question) for p in pairs) / 8
    done = [{"method": "rrd-wu", "usage": {"calls": 40.0, "prompt_tokens": 1000.0, "completion_tokens": 10.0}}]
    est, how = estimate_method(METHODS["rrd-wu"], items, "gpt-4o", RefineConfig(), done, Assumptions())
    assert est.calls == 200 and how.startswith("measured on 1")
    # rrd-uniform / rrd-llm / rrd-wu refine identically: after the first, only LLM weights cost a call
    keys = {m: refinement_key(METHODS[m], RefineConfig()) for m in ("rrd-uniform", "rrd-llm", "rrd-wu",
                                                                   "rrd-no-overlap", "conditioned", "direct")}
    assert keys["rrd-uniform"] == keys["rrd-llm"] == keys["rrd-wu"] != keys["rrd-no-overlap"] != keys["conditioned"]
    assert keys["direct"] is None
    est, how = estimate_method(METHODS["rrd-wu"], items, "gpt-4o", RefineConfig(), [], Assumptions(),
                               shares_with="rrd-uniform")
    assert est.calls == 0 and "shared with rrd-uniform" in how
    est, _ = estimate_method(METHODS["rrd-llm"], items, "gpt-4o", RefineConfig(), [], Assumptions(),
                             shares_with="rrd-uniform")
    assert est.calls == len(items)
    alone, _ = estimate_method(METHODS["rrd-wu"], items, "gpt-4o", RefineConfig(), [], Assumptions())
    assert alone.calls > 10 * len(items)
    examples = load_healthbench(str(DATA / "healthbench" / "healthbench_hard_subset_50.jsonl"), limit=4)
    gen, grade = estimate_policy("healthbench", examples, "gpt-4o", "gpt-4o", Assumptions())
    assert gen.calls == 4 and grade.calls == sum(len(e.rubrics) for e in examples)


def test_edges_and_combined_verdicts():
    rows = [{"label": "A", "verdicts": [[True, False, None], [False, False, True]]},
            {"label": "B", "verdicts": [[True, True, True], [True, False, True]]}]
    assert rubric_edges(rows) == [1.0, 0.0, 0.0, -1.0, 0.0]
    assert [combined_verdict(g) for g in (["A", "B"], ["A", None], [None, None], ["B"], ["tie", "tie"])] == [
        "tie", "A", None, "B", "tie"]


async def test_report_is_rebuilt_identically_from_the_files(tmp_path):
    models, _ = _models()
    config = _config(tmp_path, "direct,rrd-wu", rubric_samples="item")
    await _run(config, models)
    first = build_report(config.out_dir, "judgebench", "pairs", "rrd eval judgebench ...")
    assert build_report(config.out_dir, "judgebench", "pairs", "rrd eval judgebench ...") == first
    assert (config.out_dir / "report.md").read_text() == first
    summary = json.loads((config.out_dir / "summary.json").read_text())
    assert summary["rrd-wu"]["accuracy"] == 1.0 and summary["direct"]["accuracy"] == 0.0
    assert "| rrd-wu | 4 | 2.0 | 0 |" in first  # four stored sets of two rubrics each, none empty
    assert "Rubric correlation heatmap (rrd-wu" in first and (config.out_dir / "rubric_correlation.png").is_file()


def test_unknown_benchmark_and_missing_policy_are_clear_errors(tmp_path, capsys):
    from rrd.cli import main

    assert main(["eval", "biggen", "--data", "x.jsonl", "--out", str(tmp_path)]) == 2
    assert "give --policy MODEL" in capsys.readouterr().err
    assert main(["eval", "judgebench", "--method", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "no-such-bench"])


def _ppe_script(req):
    """Rubric 'correct' is met by responses containing 21, xs[::-1] or x=2 (the right answers in the samples)."""
    text = last_user(req)
    if "Write a list of rubrics" in text:
        return '["The response gives the right answer."]'
    response = text.split("</response>")[0]
    return "YES" if any(k in response for k in ("21", "xs[::-1]", "x=2", "Crisp")) else "NO"


async def test_ppe_human_and_best_of_k_through_the_runner(tmp_path):
    models, _ = _models(_ppe_script)
    data = Path(__file__).parent / "data"
    config = EvalConfig(bench="ppe-human", out_dir=tmp_path / "h", methods="conditioned",
                        data=str(data / "ppe_human_sample.jsonl"), rubric_samples="item",
                        refine=RefineConfig(n_samples=2, misalignment=False))
    await _run(config, models)
    report = build_report(config.out_dir, "ppe-human", "pairs")
    summary = json.loads((config.out_dir / "summary.json").read_text())["conditioned"]
    assert summary["dropped_ties"] >= 1 and "creative_writing_prompt" in summary["per_category"]
    assert "Human-tie rows dropped" in report
    cat = summary["per_category"]["creative_writing_prompt"]
    assert f"| conditioned | creative_writing_prompt | {cat['n']} | {cat['accuracy']:.3f} [" in report
    assert summary["per_language"] and "| method | language | n |" in report  # the records' language is used
    config = EvalConfig(bench="ppe-math", out_dir=tmp_path / "k", methods="conditioned",
                        data=str(data / "ppe_bok_sample.jsonl"), rubric_samples="item",
                        refine=RefineConfig(n_samples=2, misalignment=False))
    _, records = await _run(config, models)
    first = next(r for r in records if r["item_id"].startswith("m-1:gemma"))
    assert first["scores"] == [1.0, 0.0, 1.0, 0.0] and first["correct"] == [True, False, True, False]
    report = build_report(config.out_dir, "ppe-math", "bok")
    summary = json.loads((config.out_dir / "summary.json").read_text())["conditioned"]
    assert summary["pairwise_accuracy"] == 1.0 and "best-of-K" in report


async def test_report_counts_fallback_sets_and_dropped_repeats(tmp_path):
    """A proposer that echoes every rubric it is asked to decompose (the 1.5B failure): in reject mode nothing
    is accepted, every set falls back to its initial rubrics, and the report's rubric table says so."""

    def echo(req):
        text = last_user(req)
        if "Write a list of rubrics" in text:
            return '["The response states the CORRECT result.", "The response is short.", "the response is SHORT"]'
        if "is too coarse: all of the responses" in req.messages[1]["content"]:
            rubric = req.messages[1]["content"].split("Rubric: ")[1].split("\n")[0]
            return json.dumps([rubric, rubric])
        return _script(req)

    models, _ = _models(echo)
    config = _config(tmp_path, "rrd-uniform", rubric_samples="item")
    config.refine = RefineConfig(n_samples=2, misalignment=False, satisfy_threshold=0, max_depth=1,
                                 on_failed_decomposition="reject")
    _, records = await _run(config, models)
    assert all(r["n_rubrics"] == 2 for r in records)  # never empty: the two distinct initial rubrics
    report = build_report(config.out_dir, "judgebench", "pairs")
    row = next(line for line in report.splitlines() if line.startswith("| rrd-uniform | 4 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "0" and cells[4] == "4"  # no empty set, four fallback sets
    assert cells[9].startswith("8 (failed_decomposition 8)")
    # per set: 1 repeat in the initial list + 2 parents x (ask + repair) x 2 echoed children = 9
    assert cells[10].startswith("36 (duplicate 36)")
