"""`rrd eval pairs`: any preference file as a benchmark, fields found by name or flag, labels mapped, the
chosen/rejected order shuffled with a recorded seed, and the run scored like PPE (ties dropped, per group)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eval.preference import PairFields, load_preference_pairs, parse_label_map
from eval.report import build_report
from eval.runner import EvalConfig, EvalRun, load_items
from rrd.io import InputError, JsonlAppender
from tests.eval.test_eval_run import _models

AUTOJ = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "autoj" / "testdata_pairwise.jsonl"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CHOSEN = [{"id": f"c{i}", "prompt": f"Question {i}?", "chosen": f"good {i}", "rejected": f"bad {i}",
           "subset": "math" if i % 2 else "chat"} for i in range(40)]


def test_chosen_rejected_order_is_shuffled_with_a_recorded_seed(tmp_path):
    pairs = load_preference_pairs(str(_write(tmp_path / "p.jsonl", CHOSEN)))
    swapped = [p for p in pairs if p.swapped]
    assert 8 < len(swapped) < 32, "about half the pairs are shown with the chosen response second"
    for p in pairs:  # the label follows the chosen response wherever it is shown
        good = p.response_2 if p.swapped else p.response_1
        assert good.startswith("good") and p.winner == ("B" if p.swapped else "A")
    again = load_preference_pairs(str(tmp_path / "p.jsonl"))
    other = load_preference_pairs(str(tmp_path / "p.jsonl"), fields=PairFields(order_seed=1))
    assert [p.swapped for p in again] == [p.swapped for p in pairs] != [p.swapped for p in other]
    assert Counter(p.categories for p in pairs) == {("math",): 20, ("chat",): 20}


def test_ab_labels_chat_prompts_and_fields_by_flag(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Hi?"}],
         "output_1": "x", "output_2": "y", "winner": "model_b"},
        {"question": "Q", "response_A": "x", "response_B": "y", "label": "A>B"},
        {"question": "Q2", "response_A": "x", "response_B": "y", "label": "tie"},
    ]
    pairs = load_preference_pairs(str(_write(tmp_path / "p.jsonl", rows)))
    assert [(p.prompt, p.winner, p.swapped) for p in pairs] == [("Hi?", "B", False), ("Q", "A", False),
                                                                 ("Q2", "tie", False)]
    custom = [{"q": "Q", "left": "x", "right": "y", "pref": 0}]
    fields = PairFields(prompt="q", a="left", b="right", label="pref", label_map=parse_label_map("0=A,1=B"))
    [p] = load_preference_pairs(str(_write(tmp_path / "c.jsonl", custom)), fields=fields)
    assert (p.prompt, p.response_1, p.response_2, p.winner) == ("Q", "x", "y", "A")


HH = AUTOJ.parents[1] / "hh_rlhf" / "harmless-base_test.jsonl.gz"


def test_conversations_give_the_shared_prompt(tmp_path):
    rows = [  # HH-RLHF transcripts: the prompt is the dialogue both share, the replies are the last turns
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?\n\nAssistant: Sure: ...",
         "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?\n\nAssistant: No."},
        # replies that diverge inside an earlier turn: the prompt ends at the last common "Assistant:"
        {"chosen": "\n\nHuman: Q\n\nAssistant: A1  Human: more\n\nAssistant: A2",
         "rejected": "\n\nHuman: Q\n\nAssistant: B1"},
        # RewardBench-style chat lists
        {"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
         "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]},
        # a multi-turn prompt is shown whole
        {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                      {"role": "user", "content": "Q2"}], "response_1": "x", "response_2": "y", "label": "B"},
    ]
    path = tmp_path / "p.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_preference_pairs(str(path))
    good = [(p.response_2, p.response_1) if p.swapped else (p.response_1, p.response_2) for p in pairs]
    assert pairs[0].prompt == "Human: Hi\n\nAssistant: Hello\n\nHuman: Joke?"
    assert good[0] == ("Sure: ...", "No.")
    assert pairs[1].prompt == "Human: Q" and good[1] == ("A1  Human: more\n\nAssistant: A2", "B1")
    assert pairs[2].prompt == "Q" and good[2] == ("good", "bad")
    assert pairs[3].prompt == "User: Q1\n\nAssistant: A1\n\nUser: Q2" and pairs[3].winner == "B"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "a"}],
                               "rejected": [{"role": "user", "content": "R"},
                                            {"role": "assistant", "content": "b"}]}) + "\n")
    with pytest.raises(InputError, match="line 1.*differ before the last reply"):
        load_preference_pairs(str(bad))
    bad.write_text(json.dumps({"chosen": "plain", "rejected": "text"}) + "\n")
    with pytest.raises(InputError, match="line 1.*Human:/Assistant: transcript"):
        load_preference_pairs(str(bad))
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="x.jsonl.gz: not a readable gzip file"):
        load_preference_pairs(str(tmp_path / "x.jsonl.gz"))


@pytest.mark.skipif(not HH.exists(), reason="offline HH-RLHF data not present")
def test_hh_rlhf_loads_whole():
    pairs = load_preference_pairs(str(HH))
    assert len(pairs) == 2312 and all(p.prompt.startswith("Human:") for p in pairs)
    assert Counter(p.winner for p in pairs) == {"A": 1158, "B": 1154}  # the seed-0 order shuffle


def test_parquet_and_csv_inputs(tmp_path):
    rows = [{"prompt": "P", "response_1": "a", "response_2": "b", "label": "2"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    (tmp_path / "p.csv").write_text("prompt,response_1,response_2,label\nP,a,b,2\n")
    for name in ("p.parquet", "p.csv"):
        [p] = load_preference_pairs(str(tmp_path / name))
        assert (p.prompt, p.winner) == ("P", "B")


@pytest.mark.parametrize("row,field,says", [
    ({"prompt": "P", "response_1": "a", "label": "A"}, "response_B or", "missing"),
    ({"prompt": "P", "response_1": "a", "response_2": "b", "label": 0}, "'label'", "--label-map"),
    ({"prompt": "P", "response_1": "a", "response_2": "b"}, "label or winner", "missing"),
    ({"prompt": " ", "response_1": "a", "response_2": "b", "label": "A"}, "'prompt'", "empty prompt"),
])
def test_bad_records_name_file_line_and_field(tmp_path, row, field, says):
    path = _write(tmp_path / "p.jsonl", [{"prompt": "ok", "response_1": "a", "response_2": "b", "label": "A"}, row])
    with pytest.raises(InputError) as exc:
        load_preference_pairs(str(path))
    assert "line 2" in str(exc.value) and field in str(exc.value) and says in str(exc.value)


def test_label_map_rejects_nonsense():
    with pytest.raises(ValueError):
        parse_label_map("0=first")


@pytest.mark.skipif(not AUTOJ.exists(), reason="offline Auto-J data not present")
def test_autoj_pairs_load_with_their_label_map():
    fields = PairFields(label_map=parse_label_map("0=A,1=B,2=tie"))
    pairs = load_preference_pairs(str(AUTOJ), fields=fields)
    assert len(pairs) == 1392 and Counter(p.winner for p in pairs) == {"A": 520, "B": 499, "tie": 373}
    assert all(p.categories for p in pairs)  # the scenario column groups them


async def test_rrd_eval_pairs_runs_methods_and_reports_per_group(tmp_path):
    data = _write(tmp_path / "p.jsonl", CHOSEN[:6] + [{"id": "t", "prompt": "Q", "response_1": "a",
                                                       "response_2": "b", "label": "tie"}])
    config = EvalConfig(bench="pairs", out_dir=tmp_path / "out", methods="direct", data=str(data),
                        pair_fields=PairFields())
    models, _ = _models()
    with JsonlAppender(tmp_path / "out" / "results.jsonl") as out:
        await EvalRun(config, models).run(load_items(config), out)
    records = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(records) == 7 and all("swapped" in r for r in records)
    report = build_report(tmp_path / "out", "pairs", "pairs")
    assert "| direct | 6 |" in report  # the human tie is dropped, the 6 decided pairs are scored
    tie = next(r for r in records if r["item_id"] == "t")
    assert tie["skipped"].startswith("human tie") and tie["games"] == [] and "usage" not in tie  # never judged
    assert "| 0.000 | 1 |" in report  # ... and counted in the human-ties column
    assert "math" in report and "chat" in report


def test_pairs_needs_data(tmp_path, capsys):
    from rrd.cli import main

    assert main(["eval", "pairs", "--out", str(tmp_path)]) == 2
    assert "give --data" in capsys.readouterr().err


async def test_ungrouped_pairs_report_tie_rates_and_no_dead_plot_link(tmp_path):
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    data = _write(tmp_path / "p.jsonl", rows)
    config = EvalConfig(bench="pairs", out_dir=tmp_path / "out", methods="direct", data=str(data),
                        pair_fields=PairFields())
    models, _ = _models()
    with JsonlAppender(tmp_path / "out" / "results.jsonl") as out:
        await EvalRun(config, models).run(load_items(config), out)
    report = build_report(tmp_path / "out", "pairs", "pairs")
    assert "| judge ties | failures | human ties dropped |" in report
    assert "accuracy_by_source" not in report and not (tmp_path / "out" / "accuracy_by_source.png").exists()
    assert (tmp_path / "out" / "accuracy_by_method.png").exists()
