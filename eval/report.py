"""report.md and plots from results.jsonl (and the stored rubric sets), nothing else.

The report is a pure function of the files in the output folder, so a resumed run, or a run finished on another
machine, gives the same report, and `rrd eval ... --report-only` rebuilds it without a model.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from rrd.io import read_jsonl, write_atomic

from . import metrics, policy_metrics
from .benchmarks import POLICY_KINDS
from .methods import METHODS
from .policy_loaders import HealthRubric
from .report_figures import (
    plot_accuracy,
    plot_by_slice,
    plot_edges,
    plot_heatmap,
    rubric_edges,
    stored_sets,
    tree_reasons,
    verdict_matrix,
)
from .rewardbench2 import rewardbench2_summary
from .rm_bench import STYLES, rm_bench_summary

RRD_PREFIX = "rrd-"


def by_method(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[r["method"]].append(r)
    order = {name: i for i, name in enumerate(METHODS)}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def combined_verdict(games: Sequence[str | None]) -> str | None:
    """One verdict from one or two games (the two-game counter's sign, without needing a label)."""
    score = sum({"A": 1, "B": -1}.get(g or "", 0) for g in games)
    if all(g is None for g in games):
        return None
    return "A" if score > 0 else "B" if score < 0 else "tie"


def usage_totals(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    keys = ("calls", "prompt_tokens", "completion_tokens", "cost_usd")
    tot = dict.fromkeys(keys, 0.0)
    for r in rows:
        for part in (r.get("usage") or {}, r.get("policy_usage") or {}):
            for k in keys:
                tot[k] += float(part.get(k, 0.0))
    return tot


def summarise(kind: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The official metrics of one method's records."""
    if kind == "pairs" and rows and "family" in rows[0]:
        return metrics.judgebench_summary(rows)
    if kind == "pairs":
        return metrics.ppe_human_summary([{"winner": r["label"], "verdict": combined_verdict(r["games"]),
                                           "categories": r.get("categories", []), "language": r.get("language")}
                                          for r in rows])
    if kind == "bok":
        return metrics.ppe_correctness_summary(rows)
    if kind == "rm-bench":
        return rm_bench_summary(rows)
    if kind == "rewardbench2":
        return rewardbench2_summary(rows)
    if kind == "healthbench":
        examples = [([HealthRubric("", p, tuple(t)) for p, t in zip(r["points"], r["tags"])], r["met"],
                     r.get("example_tags", [])) for r in rows]
        return policy_metrics.healthbench_summary(examples)
    return policy_metrics.biggen_summary(rows)


def _fmt_ci(value: float | None, ci: Sequence[float] | None) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if not ci:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


# ---------------------------------------------------------------------------------------------------- report
def md_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A markdown table as lines: the header, the separator and one line per row (cells as str())."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def build_report(out_dir: Path, bench: str, kind: str, command: str | None = None) -> str:
    """Write report.md (and plots) in out_dir from its results; returns the markdown."""
    out_dir = Path(out_dir)
    records = [r for r in read_jsonl(out_dir / "results.jsonl") if r.get("bench") == bench]
    groups = by_method(records)
    lines = [f"# {bench}: results", ""]
    if command:
        lines += ["Command:", "", "```bash", command, "```", ""]
    models = sorted({r.get("judge", "?") for r in records})
    lines.append(f"Judge / grader: {', '.join(f'`{m}`' for m in models) or '–'}")
    policies = sorted({r["policy"] for r in records if r.get("policy")})
    if policies:
        lines.append(f"Policy: {', '.join(f'`{p}`' for p in policies)}")
    lines.append("")
    if not records:
        lines.append("No results yet.")
        text = "\n".join(lines) + "\n"
        write_atomic(out_dir / "report.md", text)
        return text
    summaries = {m: summarise(kind, rows) for m, rows in groups.items()}
    if kind == "pairs":
        lines += _pairs_section(summaries, groups, out_dir, bench)
    elif kind == "bok":
        lines += _bok_section(summaries)
    elif kind == "rm-bench":
        lines += _rm_bench_section(summaries) + _rrd_section(groups, out_dir)
    elif kind == "rewardbench2":
        lines += _rewardbench2_section(summaries) + _rrd_section(groups, out_dir)
    elif kind == "healthbench":
        lines += _healthbench_section(summaries)
    else:
        lines += _biggen_section(summaries)
    cost = []
    for m, rows in groups.items():
        u = usage_totals(rows)
        secs = np.mean([r.get("elapsed_s", 0.0) for r in rows])
        cost.append([m, len(rows), f"{u['calls']:.0f}", f"{u['prompt_tokens']:.0f}", f"{u['completion_tokens']:.0f}",
                     f"{u['cost_usd']:.4f}", f"{secs:.1f}"])
    lines += ["", "## Cost", "", *md_table(["method", "items", "calls sent", "prompt tokens", "completion tokens",
                                             "$", "mean s/item"], cost)]
    counted = ("policy generation and grading" if kind in POLICY_KINDS else
               "rubric refinement, charged to the first item that needed the set")
    lines += ["", f"Calls and tokens count what was sent (cache hits cost none), including {counted}; mean s/item "
              "is wall time with items running concurrently."]
    write_atomic(out_dir / "summary.json", json.dumps(summaries, indent=1, default=str))
    text = "\n".join(lines) + "\n"
    write_atomic(out_dir / "report.md", text)
    return text


def _pairs_section(summaries: dict[str, Any], groups: dict[str, list[dict[str, Any]]], out_dir: Path,
                   bench: str) -> list[str]:
    judgebench = "per_family" in next(iter(summaries.values()))
    slice_key = "per_family" if judgebench else "per_category"
    lines = ["## Accuracy", ""]
    if judgebench:
        families = sorted({f for s in summaries.values() for f in s["per_family"]})
        rows = []
        for m, s in summaries.items():
            fam = [_fmt_ci(s["per_family"][f]["accuracy"], s["per_family"][f]["ci"]) +
                   f" (n={s['per_family'][f]['n']})" if f in s["per_family"] else "–" for f in families]
            games = METHODS[m].games if m in METHODS else "?"
            two = games == 2 and s.get("decision_mismatch_rate") is not None
            opposite = f"{s['opposite_verdict_rate']:.3f}" if two else "–"
            mismatch = f"{s['decision_mismatch_rate']:.3f}" if two else "–"
            rows.append([m, games, s["n"], _fmt_ci(s["accuracy"], s["ci"]), *fam, f"{s['tie_rate']:.3f}", opposite,
                         mismatch, f"{s['failure_rate']:.3f}"])
        lines += md_table(["method", "games", "n", "accuracy [95% CI]", *families, "tie rate", "opposite verdicts",
                           "decision mismatch", "failed games"], rows)
        lines += ["", "Two-game methods: a pair is correct iff the counter (+1 per game agreeing with the label, -1 "
                  "against, 0 for a tie or failed verdict) is positive. Single-game (rubric) methods: correct iff "
                  "the verdict equals the label; a tie is wrong. 95% Wilson intervals. Opposite verdicts (ours): the "
                  "two games said A and B after the flip-back. Decision mismatch (JudgeBench's code, which computes "
                  "it but never reports it): the two decisions differ in any way, a tie or a failed game included. "
                  "Compare JudgeBench figures with the second."]
    else:
        lines += md_table(["method", "n (non-tie)", "accuracy [95% CI]", "judge ties", "failures",
                           "human ties dropped"],
                          [[m, s["n"], _fmt_ci(s["accuracy"], s["ci"]), f"{s.get('judge_tie_rate', 0):.3f}",
                            f"{s.get('failure_rate', 0):.3f}", s.get("dropped_ties", 0)] for m, s in summaries.items()])
        lines += ["", "Human-tie rows dropped; a judge tie or failure on a non-tie row counts wrong. A judge tie is a "
                  "two-game counter of 0 (direct) or equal weighted rubric scores (rubric methods)."]
        for key, title in (("per_category", "category"), ("per_language", "language")):
            lines += _slice_table(summaries, key, title)
    lines += _modes_section(groups)
    plot_accuracy(summaries, out_dir / "accuracy_by_method.png", f"{bench}: accuracy by method")
    lines += ["", "![accuracy by method](accuracy_by_method.png)"]
    if plot_by_slice(summaries, slice_key, out_dir / "accuracy_by_source.png", f"{bench}: accuracy by source"):
        lines += ["", "![accuracy by source](accuracy_by_source.png)"]
    lines += _rrd_section(groups, out_dir)
    return lines


def by_mode(rows: Sequence[dict[str, Any]], mode: str) -> list[dict[str, Any]] | None:
    """The rows as they score under `mode` ("hard"/"soft": their `games_by_mode`), or None when a row has no
    such games (written before both were kept)."""
    if not rows or any(mode not in (r.get("games_by_mode") or {}) for r in rows):
        return None
    return [{**r, "games": r["games_by_mode"][mode]} for r in rows]


def _modes_section(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Accuracy under both scorings (soft and hard), from the same judge answers: what P(YES) and the soft
    tie-break change, and what hard verdicts hide."""
    rows = []
    for m, group in groups.items():
        cells = [m]
        for mode in ("hard", "soft"):
            scored = by_mode(group, mode)
            if scored is None:
                cells += ["–", "–"]
                continue
            s = summarise("pairs", scored)
            cells += [_fmt_ci(s["accuracy"], s["ci"]), f"{s.get('judge_tie_rate', s.get('tie_rate', 0)):.3f}"]
        if any(c != "–" for c in cells[1:]):
            rows.append(cells)
    if not rows:
        return []
    return ["", "### Hard and soft scoring (same answers)", "",
            *md_table(["method", "hard: accuracy [95% CI]", "hard: ties", "soft: accuracy [95% CI]", "soft: ties"],
                      rows),
            "", "Hard: 0/1 verdicts, and the direct judge's two-game counter (the paper). Soft: rubric verdicts as "
                "P(YES); the direct judge's games where they agree, else the higher P(A) vs P(B) at its verdict "
                "token averaged over both orders. The table above uses the run's --score."]


def _slice_table(summaries: dict[str, Any], key: str, title: str) -> list[str]:
    """Accuracy per slice (a row can be in several categories), one row per (method, slice), with its CI."""
    rows = [(m, name, a) for m, s in summaries.items() for name, a in s.get(key, {}).items()]
    if not rows:
        return []
    return ["", f"By {title}:", "", *md_table(["method", title, "n", "accuracy [95% CI]"],
                                             [[m, name, a["n"], _fmt_ci(a["accuracy"], a["ci"])]
                                              for m, name, a in rows])]


def _rrd_section(groups: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[str]:
    rubric_methods = [m for m in groups if m.startswith(RRD_PREFIX) or m in ("prompt-only", "conditioned")]
    if not rubric_methods:
        return []
    table = []
    edges_by_method = {}
    for m in rubric_methods:
        rows = groups[m]
        edges = rubric_edges(rows)
        edges_by_method[m] = edges
        e = np.array(edges) if edges else np.zeros(0)

        def share(mask: np.ndarray, e: np.ndarray = e) -> str:
            return f"{mask.mean():.2f}" if e.size else "–"

        sets = stored_sets(out_dir, m)
        empty = [rs.stopped for rs in sets if not rs.rubrics]
        fallback = sum(1 for rs in sets if rs.fallback)
        why = ", ".join(f"{k} {v}" for k, v in sorted(Counter(empty).items()))
        mean = np.mean([len(rs.rubrics) for rs in sets]) if sets else 0.0
        rejected = tree_reasons(sets, "rejected")
        reasons = ", ".join(f"{k} {v}" for k, v in rejected.most_common())
        dropped = tree_reasons(sets, "dropped")
        drops = ", ".join(f"{k} {v}" for k, v in dropped.most_common())
        table.append([m, len(sets), f"{mean:.1f}", f"{len(empty)}{f' ({why})' if why else ''}", fallback,
                      sum(r.get("unscored", 0) for r in rows), share(e > 0), share(e == 0), share(e < 0),
                      f"{sum(rejected.values())}{f' ({reasons})' if reasons else ''}",
                      f"{sum(dropped.values())}{f' ({drops})' if drops else ''}"])
    lines = ["", "## Rubrics", "", *md_table(
        ["method", "sets", "mean rubrics/set", "empty sets (why)", "fallback sets", "unscored verdicts", "edges > 0",
         "edges = 0", "edges < 0", "rejections (why)", "repeats dropped (why)"], table)]
    lines += ["", "An empty set gives no verdict (counted wrong); it remains possible only when the proposer wrote "
              "no readable rubric at all. A fallback set is one whose loop accepted nothing and that uses the "
              "initial rubrics instead. Rejections and repeats (proposed rubrics dropped before grading, outside "
              "the rejection budget) are counted in the stored decomposition trees (rubrics/METHOD.jsonl), where "
              "every rubric keeps its reason."]
    if any(edges_by_method.values()):
        plot_edges({m: e for m, e in edges_by_method.items() if e}, out_dir / "rubric_edges.png")
        lines += ["", "An edge is a rubric's verdict on the preferred response minus its verdict on the other; a "
                  "useful rubric has a positive edge, a zero edge cannot separate the pair.", "",
                  "![rubric edges](rubric_edges.png)"]
    # sets with graded samples (a set given whole, with no refinement, has no verdicts to correlate)
    rrd_sets = [(m, rs, verdict_matrix(rs)) for m in rubric_methods if m.startswith(RRD_PREFIX)
                for rs in stored_sets(out_dir, m) if len(rs.rubrics) >= 2]
    rrd_sets = [(m, rs) for m, rs, matrix in rrd_sets if matrix.ndim == 2 and matrix.shape[1] > 0]
    if rrd_sets:
        method, biggest = max(rrd_sets, key=lambda ms: (len(ms[1].rubrics), verdict_matrix(ms[1]).shape[1]))
        what = plot_heatmap(biggest, method, out_dir / "rubric_correlation.png")
        lines += ["", f"Rubric correlation heatmap ({method}, the largest set: {what}). With few responses per "
                  "prompt the correlations are coarse; this is what whitening corrects for.", "",
                  "![rubric correlation](rubric_correlation.png)"]
    return lines


def _bok_section(summaries: dict[str, Any]) -> list[str]:
    rows = [[m, s["n_pairs"], _fmt_ci(s["pairwise_accuracy"], s["pairwise_ci"]), _fmt_ci(s["auc"], s["auc_ci"]),
             ", ".join(f"{p['k']}: {p['accuracy']:.3f}" for p in s["best_of_k"])] for m, s in summaries.items()]
    lines = ["## Correctness (best-of-K)", "", *md_table(["method", "pairs", "pairwise accuracy [95% CI]", "ROC-AUC",
                                                          "best-of-K (K: accuracy)"], rows)]
    lines += ["", "Pairwise accuracy over (correct, incorrect) response pairs of the same prompt (a score tie "
              "counts 0.5); ROC-AUC pooled over all scored responses; best-of-K: mean correctness of the "
              "top-scored response among the first K."]
    return lines


def _rm_bench_section(summaries: dict[str, Any]) -> list[str]:
    domains = sorted({d for s in summaries.values() for d in s["per_domain"]})
    rows = []
    for m, s in summaries.items():
        if not s["n"]:
            continue
        ci = s["ci"]
        per = [f"{s['per_domain'][d]['avg']:.3f} (n={s['per_domain'][d]['n']})" if d in s["per_domain"] else "–"
               for d in domains]
        rows.append([m, s["n"], *(_fmt_ci(s[k], ci[k]) for k in ("total_avg_acc", "hard_acc", "normal_acc",
                                                                  "easy_acc")), *per, s["missing"]])
    lines = ["## RM-Bench", "", *md_table(["method", "items", "overall [95% CI]", "hard", "normal", "easy", *domains,
                                           "missing scores/games"], rows)]
    lines += ["", "Official scoring (THU-KEG/RM-Bench scripts/utils.py): every chosen style against every rejected "
              "style; hard = chosen plainer than rejected (upper triangle), normal = same style, easy = lower "
              "triangle; a domain is the mean of the three, overall the mean of the domains. A comparison is won "
              "only by a strictly higher score (pairwise: a positive two-game counter); a missing score loses. "
              "95% CIs: items resampled within each domain."]
    for m, s in summaries.items():
        if s["matrix"] is None:
            continue
        lines += ["", f"Accuracy matrix ({m}; rows chosen, columns rejected, mean over domains):", "",
                  *md_table(["chosen \\ rejected", *STYLES],
                            [[STYLES[i], *(f"{v:.3f}" for v in row)] for i, row in enumerate(s["matrix"])])]
    return lines


def _rewardbench2_section(summaries: dict[str, Any]) -> list[str]:
    subsets = list(dict.fromkeys(k for s in summaries.values() for k in s["per_subset"]))
    rows = [[m, s["n"], _fmt_ci(s["overall"], s["overall_ci"]),
             *(f"{_fmt_ci(s['per_subset'][k]['score'], s['per_subset'][k]['ci'])} (n={s['per_subset'][k]['n']})"
               if k in s["per_subset"] else "–" for k in subsets), s["skipped"]] for m, s in summaries.items()]
    lines = ["## RewardBench 2", "", *md_table(["method", "items", "overall [95% CI]", *subsets, "skipped"], rows)]
    lines += ["", "Official scoring (allenai/reward-bench): best-of-4 subsets earn 1/k when the chosen response "
              "shares the top score with k responses; Ties is process_single_model's weighted accuracy-and-margin "
              "score; overall is the unweighted mean of the subsets present. The pairwise judge plays the chosen "
              "response against each of three rejected ones (two games each) instead of the four-way prompt, and "
              "skips Ties (it needs ratings). 95% CIs: items (Ties: prompts) resampled within each subset."]
    return lines


def _healthbench_section(summaries: dict[str, Any]) -> list[str]:
    lines = ["## Score", ""]
    for m, s in summaries.items():
        o = s["overall"]
        lines += [f"Overall ({m}): **{o['score']:.4f}** ± {o['std']:.4f} (bootstrap std; 95% CI "
                  f"[{o['ci'][0]:.4f}, {o['ci'][1]:.4f}]; clipped mean over {o['n']} examples, "
                  f"{s['n_skipped']} skipped with no scored positive item)", "",
                  *md_table(["tag", "score", "bootstrap std", "n"],
                            [[tag, f"{t['score']:.4f}", f"{t['std']:.4f}", t["n"]]
                             for tag, t in sorted(s["tags"].items())])]
    return lines


def _biggen_section(summaries: dict[str, Any]) -> list[str]:
    lines = ["## Scores (1-5)", ""]
    for m, s in summaries.items():
        lines += [f"Overall ({m}, macro over capabilities): **{s['overall']:.3f}** "
                  f"[{s['overall_ci'][0]:.3f}, {s['overall_ci'][1]:.3f}]", "",
                  *md_table(["capability", "mean [95% CI]", "n", "failed"],
                            [[cap, _fmt_ci(c["mean"], c["ci"]), c["n"], c["failures"]]
                             for cap, c in sorted(s["per_capability"].items())])]
        skipped = s.get("skipped", {})
        lines += ["", f"Items covered ({m}): {s['n']} scored, {s['failures']} unparsed, "
                      f"{sum(skipped.values())} skipped" + "".join(f"; {n} {why}" for why, n in skipped.items()), ""]
    return lines
