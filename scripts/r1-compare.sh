#!/usr/bin/env bash
# R1 against R1-Zero on the same base model, task and held-out set (issue #25), over
# seeds, and R1's stage 2 with and without the language-consistency reward:
#
#   OUT/r1-s<N>      grpo run --config configs/r1.yaml: the base model and R1's four stages
#   OUT/zero-s<N>    R1-Zero: GRPO alone from that base model (data/, base/model and
#                    eval/before.json copied from r1-s<N>), without the language reward,
#                    ZERO_STEPS steps (default 200, the demo's)
#   OUT/nolang-s<N>  cold_start copied from r1-s<N>, then reasoning_rl with
#                    reward.language_weight=0
#
# Each run's output goes to OUT/<run>.log; a run already finished is not run again, an
# interrupted one resumes. At the end scripts/r1_summary.py prints the tables.
#
#   scripts/r1-compare.sh OUT [SEED...]          (seeds default to 1 2 3)
set -euo pipefail
out=${1:?usage: scripts/r1-compare.sh OUT_DIR [SEED...]}
shift
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${GRPO_BIN_DIR:-$here/build/bin}
config=${R1_CONFIG:-$here/configs/r1.yaml}
zero_steps=${ZERO_STEPS:-200}
mkdir -p "$out"

run() {  # name, then grpo run arguments
  local name=$1
  shift
  echo "r1-compare: $name ($(date -u +%H:%M:%S))" >&2
  "$bin/grpo" run --no-progress "$@" >"$out/$name.log" 2>&1 || {
    echo "r1-compare: $name failed; last lines of $out/$name.log:" >&2
    tail -20 "$out/$name.log" >&2
    exit 1
  }
}

# A new run directory holding what `from` made before its stages: the task, the base
# model and its held-out evaluation (the launcher skips what exists).
seed_from() {
  local from=$1 to=$2
  [ -e "$to/data" ] && return 0
  mkdir -p "$to/base" "$to/eval"
  cp -r "$from/data" "$to/data"
  cp -r "$from/base/model" "$to/base/model"
  cp "$from/eval/before.json" "$from/eval/before_samples.jsonl" "$to/eval/"
}

for s in "${seeds[@]}"; do
  r1=$out/r1-s$s
  [ -e "$r1/stages/final_rl/done.json" ] || run "r1-s$s" --config "$config" --run-dir "$r1" --set "run.seed=$s"
  zero=$out/zero-s$s
  if [ ! -e "$zero/eval/after.json" ]; then
    seed_from "$r1" "$zero"
    run "zero-s$s" --config "$config" --run-dir "$zero" --set "run.seed=$s" --set pipeline.stages= \
      --set reward.language_weight=0 --max-steps "$zero_steps"
  fi
  nolang=$out/nolang-s$s
  if [ ! -e "$nolang/stages/reasoning_rl/done.json" ]; then
    seed_from "$r1" "$nolang"
    mkdir -p "$nolang/stages"
    [ -e "$nolang/stages/cold_start" ] || cp -r "$r1/stages/cold_start" "$nolang/stages/cold_start"
    cp "$r1/eval/cold_start.json" "$r1/eval/cold_start_samples.jsonl" "$nolang/eval/"
    run "nolang-s$s" --config "$config" --run-dir "$nolang" --set "run.seed=$s" \
      --set pipeline.stages=cold_start,reasoning_rl --set reward.language_weight=0
  fi
done
/usr/bin/env python3 "$here/scripts/r1_summary.py" "$out" "${seeds[@]}"
