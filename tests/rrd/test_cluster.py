"""`rrd refine`, `rrd judge` and `rrd eval` on a Ray cluster (a local Ray instance with 2 CPUs) against a real
HTTP server on loopback: several workers, one output file written once per item, a worker killed mid-run, the
budget held across the cluster, and a re-run that makes no call."""

from __future__ import annotations

import json
import threading

import pytest

ray = pytest.importorskip("ray")

from rrd.cli import main  # noqa: E402
from rrd.cluster import ClusterConfig, run_on_cluster  # noqa: E402
from rrd.resume import BUDGET_EXIT  # noqa: E402
from tests.loopback_server import LoopbackServer, Reply  # noqa: E402

N = 24


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}})
    yield
    ray.shutdown()


def _grader(delay: float = 0.0):
    def script(n: int, req: dict) -> Reply:
        text = req["messages"][-1]["content"]
        if "Write a list of rubrics" in text:
            return Reply(text='["The response names a colour.", "The response is one word."]', delay_s=delay)
        if "Which response is better?" in text:  # the direct judge prefers the response that says Red
            return Reply(text="[[A]]" if "Red" in text.split("<response_B>")[0] else "[[B]]", delay_s=delay)
        response = next(m["content"] for m in req["messages"] if m["role"] == "user").split("<response>")[-1]
        return Reply(text="YES" if "Red" in response else "NO", delay_s=delay)
    return script


def _prompts(tmp_path, n: int = N):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Name colour number {i}.", "responses": ["Red.", "Blue."]})
                            + "\n" for i in range(n)))
    return path


def _refine_argv(tmp_path, server, *extra, model="m"):
    return ["refine", str(_prompts(tmp_path)), "--out", str(tmp_path / "rubrics.jsonl"), "--judge", model,
            "--api-base", server.api_base, "--cache-path", str(tmp_path / "cache.sqlite"), "--no-misalignment",
            "--no-decompose", "--no-overlap", "--no-conflict", "--no-view", "--max-retries", "0", *extra,
            "--ray", "--ray-workers", "2"]


def _ids(path, key):
    return [json.loads(x)[key] for x in path.read_text().splitlines()]


def test_refine_and_judge_on_two_workers_write_every_item_once_and_rerun_with_no_call(tmp_path, capsys):
    with LoopbackServer(_grader()) as server:
        assert main(_refine_argv(tmp_path, server)) == 0
        ids = _ids(tmp_path / "rubrics.jsonl", "prompt_id")
        assert len(ids) == N and len(set(ids)) == N
        sent = len(server.requests)
        assert main(_refine_argv(tmp_path, server)) == 0  # resumed: every prompt done, no call
        assert len(server.requests) == sent and f"resuming: {N} prompts done" in capsys.readouterr().err

        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"pair_id": f"p{i}", "prompt": f"Name colour number {i}.",
                                             "response_A": "Red.", "response_B": "Blue.", "label": "A"}) + "\n"
                                 for i in range(N)))
        argv = ["judge", str(pairs), "--rubrics", str(tmp_path / "rubrics.jsonl"), "--out", str(tmp_path / "v.jsonl"),
                "--judge", "m", "--api-base", server.api_base, "--cache-path", str(tmp_path / "cache.sqlite"),
                "--no-logprobs", "--ray", "--ray-workers", "2"]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert sorted(_ids(tmp_path / "v.jsonl", "pair_id")) == sorted(f"p{i}" for i in range(N))
        assert f"accuracy: 1.000 ({N}/{N})" in out
        sent = len(server.requests)
        assert main(argv) == 0 and len(server.requests) == sent  # the verdicts' calls are all cached
        # another output file: every pair judged again, every call answered by the cluster's shared cache
        assert main([*argv[:5], str(tmp_path / "again.jsonl"), *argv[6:]]) == 0
        assert len(server.requests) == sent and "this run: 0 calls" in capsys.readouterr().out


def _eval(tmp_path, server, out, *extra, cache="cache.sqlite"):
    data = tmp_path / "eval_pairs.jsonl"
    data.write_text("".join(json.dumps({"id": f"e{i}", "prompt": f"Name colour number {i}.", "chosen": f"Red {i}.",
                                        "rejected": f"Blue {i}."}) + "\n" for i in range(N)))
    return main(["eval", "pairs", "--data", str(data), "--method", "direct,rrd-uniform", "--rubric-samples", "item",
                 "--judge", "m", "--api-base", server.api_base, "--cache-path", str(tmp_path / cache),
                 "--no-misalignment", "--no-decompose", "--no-overlap", "--no-conflict", "--no-view",
                 "--max-retries", "0", "--no-logprobs", "--out", str(tmp_path / out), *extra])


def _results(tmp_path, out):
    rows = [json.loads(x) for x in (tmp_path / out / "results.jsonl").read_text().splitlines()]
    return {(r["method"], r["item_id"]): r for r in rows}, len(rows)


def test_eval_on_two_workers_matches_one_process_and_reruns_with_no_call(tmp_path):
    with LoopbackServer(_grader()) as server:
        assert _eval(tmp_path, server, "one") == 0
        sent = len(server.requests)
        assert _eval(tmp_path, server, "ray", "--ray", "--ray-workers", "2") == 0
        assert len(server.requests) == sent  # every call served by the cache the driver's CacheServer owns
        # a fresh cache and output: the workers make the calls
        assert _eval(tmp_path, server, "ray2", "--ray", "--ray-workers", "2", cache="fresh.sqlite") == 0
        assert len(server.requests) == 2 * sent  # the same questions again, asked by the workers
        assert _eval(tmp_path, server, "ray2", "--ray", "--ray-workers", "2", cache="fresh.sqlite") == 0  # resumed
        assert len(server.requests) == 2 * sent
    one, _ = _results(tmp_path, "one")
    for out in ("ray", "ray2"):
        got, rows = _results(tmp_path, out)
        assert rows == 2 * N and got.keys() == one.keys()  # every (method, item) written exactly once
        for key, record in one.items():
            assert got[key]["games"] == record["games"] and got[key].get("scores") == record.get("scores")
        sets = _ids(tmp_path / out / "rubrics" / "rrd-uniform.jsonl", "prompt_id")
        assert sorted(sets) == sorted(f"item:e{i}" for i in range(N))  # refined on the workers, stored once


def test_a_worker_killed_mid_run_loses_no_item_and_writes_none_twice(tmp_path):
    from judges import JudgeConfig
    from rrd.config import RefineConfig
    from rrd.inputs import PromptSource, read_prompt_tasks
    from rrd.jobs import RefineJob

    tasks = read_prompt_tasks(PromptSource(str(_prompts(tmp_path))))
    written: list[str] = []
    handles: list = []
    killed = threading.Event()

    def record(task, rs):
        written.append(rs["prompt_id"])
        if len(written) == 3 and not killed.is_set():
            killed.set()
            ray.kill(handles[0])  # a worker dies with items in flight

    with LoopbackServer(_grader(delay=0.2)) as server:
        judge = JudgeConfig(model="m", api_base=server.api_base, cache_path=str(tmp_path / "c.sqlite"),
                            max_retries=0)
        config = RefineConfig(n_samples=2, misalignment=False, decompose=False, overlap=False, conflict=False)
        run = run_on_cluster(RefineJob(judge, judge, config), tasks, record,
                             ClusterConfig(workers=2, concurrency=4), cache_path=judge.cache_path,
                             budget_usd=None, workers_started=handles.extend)
    assert killed.is_set() and run.deaths == 1 and run.written == N
    assert sorted(written) == sorted(t.prompt_id for t in tasks)  # every item exactly once


def test_a_budget_stops_the_cluster_with_nothing_spent_past_it(tmp_path, capsys):
    # gpt-4o is priced, so every call reserves its estimate from the cluster's budget pool
    with LoopbackServer(_grader()) as server:
        rc = main(_refine_argv(tmp_path, server, "--budget-usd", "0.05", model="gpt-4o"))
        captured = capsys.readouterr()
    assert rc == BUDGET_EXIT and "budget reached" in captured.err
    done = _ids(tmp_path / "rubrics.jsonl", "prompt_id") if (tmp_path / "rubrics.jsonl").exists() else []
    assert len(done) < N
    # what the server was paid for: each call at most its reservation, and the reservations fit the budget
    import litellm

    spent = sum(sum(litellm.cost_per_token(model="gpt-4o", prompt_tokens=100, completion_tokens=1))
                for _ in server.requests)
    assert 0 < spent <= 0.05
    assert f"this run: {len(server.requests)} calls" in captured.out


@pytest.mark.parametrize(("refine_cost", "judged"), [(0.7, True), (1.0, False)])
def test_judging_on_a_cluster_gets_only_what_refining_the_missing_sets_left_of_the_budget(
        tmp_path, monkeypatch, refine_cost, judged):
    """`rrd judge --ray --budget-usd B` refines the missing sets, then judges: one cap for both phases, as in one
    process. Control flow only: the cluster runs are recorded, not started."""
    import rrd.cluster
    from judges import Accounting, JudgeConfig
    from rrd.config import RefineConfig
    from rrd.inputs import Pair
    from rrd.io import JsonlAppender
    from rrd.jobs import JudgeJob, judge_on_cluster
    from rrd.records import RubricSet
    from rrd.resume import Stop

    budgets = []

    def fake_run(job, items, on_record, cluster, *, cache_path, budget_usd, bar=None):
        budgets.append(budget_usd)
        spent = Accounting()
        if not isinstance(job, JudgeJob):  # the refine phase: every missing set, at refine_cost
            for task in items:
                on_record(task, RubricSet(task.prompt, task.prompt_id).to_dict())
            spent.cost_usd = refine_cost
        return rrd.cluster.ClusterRun(written=len(items), accounting=spent)

    monkeypatch.setattr(rrd.cluster, "run_on_cluster", fake_run)
    cfg = JudgeConfig(model="m", cache=False, budget_usd=1.0)
    pairs = [Pair(f"p{i}", f"q{i}", f"Prompt {i}?", "A.", "B.", "A") for i in range(3)]
    stop = Stop()
    with JsonlAppender(str(tmp_path / "verdicts.jsonl")) as out:
        spent = judge_on_cluster(pairs, {}, JudgeJob(cfg, cfg, RefineConfig()), out, ClusterConfig(),
                                 rubrics_path=str(tmp_path / "rubrics.jsonl"), stop=stop)
    assert spent.cost_usd == refine_cost
    if judged:
        assert budgets == [1.0, pytest.approx(0.3)] and stop.budget is None
    else:
        assert budgets == [1.0] and stop.budget is not None and stop.not_done == 3
