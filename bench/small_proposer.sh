#!/usr/bin/env bash
# The measurements behind docs/results/small_proposer/: RRD's rubric sets with the embedded 1.5B proposer and
# judge, before (the mechanisms of the local profile off: the paper's decomposition and initial list) and after
# (the splitter, contrastive decomposition, per-sample initial lists and order-confirmed overlap checks on), on the same
# pairs with the same judge, scored both hard and soft from the same records.
#
#   bash bench/small_proposer.sh [STEP ...]      # steps: hh jb bias ablate rft others summary (default: all, in order;
#                                                ablate_hidden, ablate_moved: one ablation alone)
#
# Every step resumes where it stopped (rrd eval and the RFT script append and skip finished work), and the
# before/after runs of a data set share one judge cache: the direct and conditioned baselines, and every RRD
# request the two runs have in common, are judged once. RUNS (default runs/small_proposer) holds the runs;
# the figures go to docs/results/small_proposer/ (summary.json, compare_*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True
RUNS=${RUNS:-runs/small_proposer}
# exit 4 means finished with some calls failed (recorded as failed verdicts): the run is complete, go on
eval_run() { rrd eval "$@" || [ $? -eq 4 ]; }
DOCS=docs/results/small_proposer
DATA=${DATA:-../shared/data}
mkdir -p "$RUNS" "$DOCS"

# Before is the local profile as it was (the paper's decomposition and initial list, repair turns, failed
# decompositions rejected, no call budget); round5 is the local profile of the fifth round (decomposition requests
# still list the rubrics in use); after is the local profile of the seventh round. Everything else is the same flag for
# flag (every run names its profile: rrd eval resolves an unnamed one from the models since the ninth round).
BEFORE=(--profile local --split-compound off --decompose-prompt plain --decompose-candidates 1 --initial-mode joint
        --repair-attempts 1 --max-decompose-calls none --on-failed-decomposition reject --decompose-others listed
        --check-orders one)
ROUND5=(--profile local --decompose-others listed --check-orders both)
# after was run before the local profile's claims were confirmed with the named rubric moved (--check-orders moved,
# step ablate_moved: the same verdict on each of the 20 pairs it ran), so it pins the reversed list it was run with
AFTER=(--profile local --check-orders both)
# the data sets first run after that switch run the local profile as shipped
SHIPPED=(--profile local)
METHODS=direct,conditioned,rrd-uniform,rrd-wu
# The engine the before run and the first round were judged on (it was auto's pick then): the judge cache is keyed
# by engine, so the baselines' cached verdicts are reused only on the same one.
ENGINE=(--local-engine hybrid)
# The data sets measured since have no earlier cache to reuse: they run on the default engine (llama.cpp on a CPU),
# which grades faster at a third of the memory (docs/results/local_engines); before and after share one cache.
FRESH=(--local-engine "${FRESH_ENGINE:-auto}")
# The pairs' own two responses are the samples (no policy generations); with N = 2 the paper's n = 2 could
# never trigger a decomposition, hence --threshold 1 (as in the committed docs/results/hh_rlhf and judgebench).
COMMON=(--method "$METHODS" --shuffle-seed 0 --rubric-samples item --threshold 1 --sample-max-tokens 512)

hh() {  # the 60 HH-RLHF harmless-base pairs of docs/results/hh_rlhf
  local args=(pairs --data "$DATA/hh_rlhf/harmless-base_test.jsonl.gz" --limit 60 "${ENGINE[@]}" "${COMMON[@]}"
              --cache-path "$RUNS/hh.sqlite")
  eval_run "${args[@]}" "${BEFORE[@]}" --out "$RUNS/hh-before"
  eval_run "${args[@]}" "${ROUND5[@]}" --out "$RUNS/hh-round5"
  eval_run "${args[@]}" "${AFTER[@]}" --out "$RUNS/hh-after"
}

jb() {  # the first JB_PAIRS (default 16) JudgeBench pairs of docs/results/judgebench (its seed-0 shuffle); a
  # pair takes 10-20 min of this machine per run (long responses): the committed runs stopped at 4 pairs
  local args=(judgebench --data "$DATA/judgebench/judgebench_gpt-4o-2024-05-13.jsonl" --limit "${JB_PAIRS:-16}"
              "${FRESH[@]}" "${COMMON[@]}" --cache-path "$RUNS/jb.sqlite")
  eval_run "${args[@]}" "${BEFORE[@]}" --out "$RUNS/jb-before"
  eval_run "${args[@]}" "${SHIPPED[@]}" --out "$RUNS/jb-after"
}

bias() {  # EvalBiasBench (judge-bias tests: length, concreteness, ...; verified labels): all 80 pairs, or the
  # first BIAS_PAIRS of the seed-0 shuffle. Flattened from its bias-keyed JSON to chosen/rejected rows, so rrd eval
  # shuffles the order per pair (every label of the file says response1: one order would reward a position bias)
  local data="$RUNS/biasbench.jsonl"
  python - "$DATA/evalbiasbench/biasbench.json" "$data" <<'PY'
import json, sys
rows = [{"id": f"{bias}-{i}", "subset": bias, "prompt": r["instruction"],
         **dict(zip(("chosen", "rejected"), (r["response1"], r["response2"])[:: 1 if str(r["label"]) == "1" else -1]))}
        for bias, records in json.load(open(sys.argv[1])).items() for i, r in enumerate(records)]
open(sys.argv[2], "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
  local args=(pairs --data "$data" --limit "${BIAS_PAIRS:-80}" "${FRESH[@]}" "${COMMON[@]}" --cache-path "$RUNS/bias.sqlite")
  eval_run "${args[@]}" "${BEFORE[@]}" --out "$RUNS/bias-before"
  eval_run "${args[@]}" "${ROUND5[@]}" --out "$RUNS/bias-round5"
  eval_run "${args[@]}" "${AFTER[@]}" --out "$RUNS/bias-after"
}

# One ablation: the HH run with FLAGS (a profile's flags, then the piece changed), RRD only, on the first
# ABLATE_PAIRS HH pairs, into $RUNS/hh-NAME
hh_ablation() {
  local name=$1; shift
  eval_run pairs --data "$DATA/hh_rlhf/harmless-base_test.jsonl.gz" --limit "${ABLATE_PAIRS:-20}" "${ENGINE[@]}" \
    --method rrd-wu --shuffle-seed 0 --rubric-samples item --threshold 1 --sample-max-tokens 512 \
    --cache-path "$RUNS/hh.sqlite" "$@" --out "$RUNS/hh-$name"
}

ablate() {  # one piece of a profile changed at a time: the fifth round's, then today's
  hh_ablation no-split "${ROUND5[@]}" --split-compound off
  hh_ablation plain-decompose "${ROUND5[@]}" --decompose-prompt plain
  hh_ablation joint-initial "${ROUND5[@]}" --initial-mode joint
  hh_ablation reject-failed "${ROUND5[@]}" --on-failed-decomposition reject
  hh_ablation no-budget "${ROUND5[@]}" --max-decompose-calls none
  hh_ablation soft-count "${ROUND5[@]}" --count-mode soft
  hh_ablation one-order "${ROUND5[@]}" --check-orders one
  ablate_hidden
  ablate_moved
}

# the sixth round's change (step others): decomposition requests without the list of rubrics in use
ablate_hidden() { hh_ablation hidden-others "${ROUND5[@]}" --decompose-others hidden; }
# the seventh round's: a claim confirmed with the named rubric moved to the other end, not the list reversed
ablate_moved() { hh_ablation check-moved "${AFTER[@]}" --check-orders moved; }

rft() {  # the RFT learning comparison again, with the local profile's (after) RRD sets; the prompt-only baseline
  # is the committed run as it was measured (its sets skip the refinement this issue changed; its rewards were
  # graded with the grade-v3 template), so only the RRD run is redone. The RRD sets refined so far are committed
  # in $DOCS/rft_learning: a fresh checkout starts from them (the refine skips the prompts that have a set)
  if [ ! -f "$RUNS/rft_learning/rubrics_rrd.jsonl" ] && [ -f "$DOCS/rft_learning/rubrics_rrd.jsonl" ]; then
    mkdir -p "$RUNS/rft_learning" && cp "$DOCS/rft_learning/rubrics_rrd.jsonl" "$RUNS/rft_learning/"
  fi
  python examples/rft_learning.py --out "$RUNS/rft_learning" --baseline-from docs/results/rft_learning
}

others() {  # the RFT run's WildBench train prompts refined again with --decompose-others hidden (a decomposition
  # request without the list of rubrics in use) by the example's own refine stage, on its judge cache: the samples,
  # initial lists and their gradings are the after run's, so only the decompositions and what follows them differ
  # (and cost calls). From a fresh checkout, step rft first (the prompt splits and the cache)
  python examples/rft_learning.py --out "$RUNS/rft_learning" --baseline-from docs/results/rft_learning \
    --stage refine_train --rrd-rubrics "$RUNS/rft-hidden-others/rubrics_rrd.jsonl" \
    --rrd-flags "--decompose-others hidden --check-orders both"
}

# A run of this machine's $RUNS, else its committed copy in $DOCS (a fresh checkout has no runs/)
run() { if [ -d "$RUNS/$1" ]; then echo "$RUNS/$1"; else echo "$DOCS/$1"; fi; }

# The before/round5/after comparison of one pair data set (step STEP, runs STEP-LABEL) into summary.json, on the
# runs that exist: the steps not run yet are left out (and said so), not failed
pairs_summary() {
  local step=$1 name=$2 runs=() label
  for label in before round5 after; do
    if [ -f "$(run "$step-$label")/results.jsonl" ]; then runs+=("$label=$(run "$step-$label")"); fi
  done
  if [ ${#runs[@]} -eq 0 ]; then echo "summary: no $RUNS/$step-* yet (step $step): $name left out" >&2; return; fi
  [ -f "$(run "$step-after")/results.jsonl" ] || echo "summary: no $RUNS/$step-after yet (step $step)" >&2
  python bench/compare_runs.py "${runs[@]}" --methods "$METHODS" --summary "$DOCS/summary.json" --dataset "$name" \
    > "$DOCS/compare_$name.md"
}

summary() {
  rm -f "$DOCS/summary.json"
  # round1: the local profile of the first round (prompt templates v4, overlap/conflict claims taken in one order),
  # kept as committed in $DOCS/hh-round1 (its run directory is $RUNS/hh-round1)
  python bench/compare_runs.py before="$(run hh-before)" round1="$(run hh-round1)" round5="$(run hh-round5)" \
    after="$(run hh-after)" --methods "$METHODS" --summary "$DOCS/summary.json" --dataset hh_rlhf > "$DOCS/compare_hh_rlhf.md"
  # today's profile against the fifth round's, paired by pair (compare_hh_rlhf.md pairs every run with before)
  python bench/compare_runs.py round5="$(run hh-round5)" after="$(run hh-after)" --methods "$METHODS" \
    > "$DOCS/compare_hh_rlhf_round5_after.md"
  pairs_summary jb judgebench
  pairs_summary bias evalbiasbench
  # refine-only sets (no pairs): the committed RFT run's WildBench train/held-out sets are the before, the RFT
  # run's sets (the fifth-round profile) round5, compared on the prompts the new run has refined (a stopped run
  # counts the sets it finished); after is step others' sets, the train prompts only, as a run of its own
  local rft hidden
  rft="$(run rft_learning)/rubrics_rrd.jsonl"
  if [ -s "$rft" ]; then
    python bench/compare_runs.py before=docs/results/rft_learning/rubrics_rrd.jsonl round5="$rft" \
      --summary "$DOCS/summary.json" --dataset wildbench_rft > "$DOCS/compare_wildbench_rft.md"
  else echo "summary: no $rft yet (step rft): WildBench left out" >&2; fi
  hidden="$(run rft-hidden-others)/rubrics_rrd.jsonl"
  if [ -s "$hidden" ] && [ -s "$rft" ]; then  # the ablation, on the train prompts both hold
    python bench/compare_runs.py round5="$rft" hidden-others="$hidden" > "$DOCS/ablation_hidden_others.md"
    python bench/compare_runs.py after="$hidden" --summary "$DOCS/summary.json" --dataset wildbench_rft >/dev/null
  else echo "summary: no $hidden yet (step others): ablation_hidden_others.md kept, WildBench left out of after" >&2; fi
  if [ -f "$(run hh-hidden-others)/results.jsonl" ]; then  # on the pairs both runs hold
    python bench/compare_runs.py round5="$(run hh-round5)" hidden-others="$(run hh-hidden-others)" --methods rrd-wu \
      > "$DOCS/ablation_hidden_others_hh.md"
  else echo "summary: no $RUNS/hh-hidden-others (step ablate_hidden): ablation_hidden_others_hh.md kept" >&2; fi
  if [ -f "$(run hh-check-moved)/results.jsonl" ]; then
    python bench/compare_runs.py after="$(run hh-after)" check-moved="$(run hh-check-moved)" --methods rrd-wu \
      > "$DOCS/ablation_check_moved_hh.md"
  else echo "summary: no $RUNS/hh-check-moved (step ablate_moved): ablation_check_moved_hh.md kept" >&2; fi
  local abl=() r
  # one-order is round5 with one piece changed; round1 and the rows after it, the first round's local profile
  # with one piece changed (run by this script at the first round's commit). Only hh-before, -round1, -round5 and
  # -after are committed: without this machine's ablation runs the committed table stays as it is.
  for r in one-order round1 no-split plain-decompose joint-initial reject-failed no-budget soft-count; do
    [ -d "$RUNS/hh-$r" ] || { echo "summary: no $RUNS/hh-$r (step ablate): ablations_hh_rlhf.md kept" >&2; return; }
    abl+=("$r=$RUNS/hh-$r")
  done
  python bench/compare_runs.py round5="$(run hh-round5)" "${abl[@]}" --methods rrd-wu > "$DOCS/ablations_hh_rlhf.md"
}

for step in "${@:-hh jb bias ablate rft others summary}"; do
  for s in $step; do echo "== $s $(date -u +%FT%TZ)"; "$s"; done
done
echo "== done $(date -u +%FT%TZ)"
