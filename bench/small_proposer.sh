#!/usr/bin/env bash
# The measurements behind docs/results/small_proposer/: RRD's rubric sets with the embedded 1.5B proposer and
# judge, before (the mechanisms of the local profile off: the paper's decomposition and initial list) and after
# (the splitter, contrastive decomposition, per-sample initial lists and order-confirmed overlap checks on), on the same
# pairs with the same judge, scored both hard and soft from the same records.
#
#   bash bench/small_proposer.sh [STEP ...]      # steps: hh jb ablate rft summary (default: all, in order)
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
# decompositions rejected, no call budget); after is the local profile as it is now. Everything else is the
# same flag for flag (rrd eval keeps the paper's profile unless given --profile local).
BEFORE=(--profile local --split-compound off --decompose-prompt plain --decompose-candidates 1 --initial-mode joint
        --repair-attempts 1 --max-decompose-calls none --on-failed-decomposition reject)
AFTER=(--profile local)
METHODS=direct,conditioned,rrd-uniform,rrd-wu
# The engine the before run and the first round were judged on (it was auto's pick then): the judge cache is keyed
# by engine, so the baselines' cached verdicts are reused only on the same one.
ENGINE=(--local-engine hybrid)
# The pairs' own two responses are the samples (no policy generations); with N = 2 the paper's n = 2 could
# never trigger a decomposition, hence --threshold 1 (as in the committed docs/results/hh_rlhf and judgebench).
COMMON=("${ENGINE[@]}" --method "$METHODS" --shuffle-seed 0 --rubric-samples item --threshold 1 --sample-max-tokens 512)

hh() {  # the 60 HH-RLHF harmless-base pairs of docs/results/hh_rlhf
  local args=(pairs --data "$DATA/hh_rlhf/harmless-base_test.jsonl.gz" --limit 60 "${COMMON[@]}"
              --cache-path "$RUNS/hh.sqlite")
  eval_run "${args[@]}" "${BEFORE[@]}" --out "$RUNS/hh-before"
  eval_run "${args[@]}" "${AFTER[@]}" --out "$RUNS/hh-after"
}

jb() {  # the 16 JudgeBench pairs of docs/results/judgebench (the first 16 of the seed-0 shuffle)
  local args=(judgebench --data "$DATA/judgebench/judgebench_gpt-4o-2024-05-13.jsonl" --limit 16 "${COMMON[@]}"
              --cache-path "$RUNS/jb.sqlite")
  eval_run "${args[@]}" "${BEFORE[@]}" --out "$RUNS/jb-before"
  eval_run "${args[@]}" "${AFTER[@]}" --out "$RUNS/jb-after"
}

ablate() {  # the after run with one piece changed at a time, RRD only, on the first ABLATE_PAIRS HH pairs
  local args=(pairs --data "$DATA/hh_rlhf/harmless-base_test.jsonl.gz" --limit "${ABLATE_PAIRS:-20}"
              "${ENGINE[@]}" --method rrd-wu --shuffle-seed 0 --rubric-samples item --threshold 1 --sample-max-tokens 512
              --cache-path "$RUNS/hh.sqlite" "${AFTER[@]}")
  eval_run "${args[@]}" --split-compound off --out "$RUNS/hh-no-split"
  eval_run "${args[@]}" --decompose-prompt plain --out "$RUNS/hh-plain-decompose"
  eval_run "${args[@]}" --initial-mode joint --out "$RUNS/hh-joint-initial"
  eval_run "${args[@]}" --on-failed-decomposition reject --out "$RUNS/hh-reject-failed"
  eval_run "${args[@]}" --max-decompose-calls none --out "$RUNS/hh-no-budget"
  eval_run "${args[@]}" --count-mode soft --out "$RUNS/hh-soft-count"
  eval_run "${args[@]}" --check-orders one --out "$RUNS/hh-one-order"
}

rft() {  # the RFT learning comparison again, with the local profile's (after) RRD sets
  python examples/rft_learning.py --out "$RUNS/rft_learning"
}

summary() {
  rm -f "$DOCS/summary.json"
  # round1: the local profile of the first round (prompt templates v4, overlap/conflict claims taken in one order),
  # kept as committed in $DOCS/hh-round1 (its run directory is $RUNS/hh-round1)
  python bench/compare_runs.py before="$RUNS/hh-before" round1="$RUNS/hh-round1" after="$RUNS/hh-after" \
    --methods "$METHODS" \
    --summary "$DOCS/summary.json" --dataset hh_rlhf > "$DOCS/compare_hh_rlhf.md"
  # the steps not run yet are left out of the summary (and said so), not failed
  if [ -f "$RUNS/jb-after/results.jsonl" ]; then
    python bench/compare_runs.py before="$RUNS/jb-before" after="$RUNS/jb-after" --methods "$METHODS" \
      --summary "$DOCS/summary.json" --dataset judgebench > "$DOCS/compare_judgebench.md"
  else echo "summary: no $RUNS/jb-after yet (step jb): JudgeBench left out" >&2; fi
  # refine-only sets (no pairs): the committed RFT run's WildBench train/held-out sets are the before; only a
  # finished RFT run (its summary.json written) counts: a stopped one's rubric file holds a few prompts
  if [ -f "$RUNS/rft_learning/summary.json" ]; then
    python bench/compare_runs.py before=docs/results/rft_learning/rubrics_rrd.jsonl \
      after="$RUNS/rft_learning/rubrics_rrd.jsonl" \
      --summary "$DOCS/summary.json" --dataset wildbench_rft > "$DOCS/compare_wildbench_rft.md"
  else echo "summary: no finished $RUNS/rft_learning yet (step rft): WildBench left out" >&2; fi
  local abl=() run
  # one-order is today's after with one piece changed; round1 and the rows after it, the first round's local
  # profile with one piece changed (run by this script at the first round's commit)
  for run in after one-order round1 no-split plain-decompose joint-initial reject-failed no-budget soft-count; do
    [ "$run" = after ] && abl+=("after=$RUNS/hh-after") || abl+=("$run=$RUNS/hh-$run")
  done
  python bench/compare_runs.py "${abl[@]}" --methods rrd-wu > "$DOCS/ablations_hh_rlhf.md"
}

for step in "${@:-hh jb ablate rft summary}"; do
  for s in $step; do echo "== $s $(date -u +%FT%TZ)"; "$s"; done
done
echo "== done $(date -u +%FT%TZ)"
