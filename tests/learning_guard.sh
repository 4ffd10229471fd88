#!/usr/bin/env bash
# The learning guard (issue #21): the demo must still teach. The demo fell from held-out
# pass@1 0.915 to 0.50 over a run of infrastructure commits while every unit test stayed
# green; this test runs the pipeline a user runs, `grpo run` with the embedded demo
# config (data, base-model pretraining, eval before, GRPO, export, eval after), in its
# deterministic form: one synchronous actor (each batch sampled by the newest weights,
# so no timing enters the result) and the demo's fixed seed. Held-out pass@1 must go
# from at most 0.30 to at least 0.80.
#
# What is shortened: GRPO runs GUARD_STEPS steps (default 100) instead of the demo's
# 200. On seed 1, on a 2-core Intel Xeon (AVX-512), held-out pass@1 is 0.78 at step 50 and
# 0.82 at 100 (0.85 at 200); other seeds learn at other paces (seed 2: 0.57 at step 100,
# 0.85 at 200), so the guard keeps to seed 1, and its margin is a few points.
# Everything else is the demo as shipped.
#
# usage: learning_guard.sh BIN_DIR [RUN_DIR]   (RUN_DIR is kept; default a temporary one)
set -euo pipefail
BIN=${1:?usage: learning_guard.sh BIN_DIR [RUN_DIR]}
STEPS=${GUARD_STEPS:-100}
if [ -n "${2:-}" ]; then
  RUN=$2
  rm -rf "$RUN"
else
  TMP=$(mktemp -d)
  RUN=$TMP/run
  trap 'rm -rf "$TMP"' EXIT
fi

start=$(date +%s)
if ! "$BIN/grpo" run --run-dir "$RUN" --set actor.sync=true --set "learner.max_steps=$STEPS" >"$RUN.log" 2>&1; then
  echo "learning_guard: grpo run failed; its output:" >&2
  tail -n 60 "$RUN.log" >&2
  for f in "$RUN"/logs/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f" >&2
    tail -n 20 "$f" >&2
  done
  exit 1
fi
wall=$(( $(date +%s) - start ))

python3 - "$RUN" "$wall" "$STEPS" <<'EOF'
import json, sys
run, wall, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before = json.load(open(f"{run}/eval/before.json"))
after = json.load(open(f"{run}/eval/after.json"))
curve = []
for line in open(f"{run}/metrics.jsonl"):
    r = json.loads(line)
    if "eval_pass1" in r:
        curve.append(f"{r['step']}: {r['eval_pass1']:.3f}")
print(f"learning_guard: grpo run --set actor.sync=true --set learner.max_steps={steps}, {wall} s")
print(f"| | pass@1 | pass@{before['k']} | maj@{before['k']} | format | length |")
print("|---|---|---|---|---|---|")
for name, e in (("before", before), ("after", after)):
    print(f"| {name} | {e['pass@1']:.3f} | {e['pass@k']:.3f} | {e['maj@k']:.3f} | {e['format']:.3f} | {e['response_len_mean']:.1f} |")
print("validation pass@1 by step:", ", ".join(curve))
ok = True
if before["pass@1"] > 0.30:
    print(f"FAIL: the base model's held-out pass@1 is {before['pass@1']:.3f}, above 0.30: the demo no longer starts from a model that mostly fails")
    ok = False
if after["pass@1"] < 0.80:
    print(f"FAIL: held-out pass@1 after GRPO is {after['pass@1']:.3f}, below 0.80: the demo no longer learns what it did")
    ok = False
print("learning_guard: " + ("held" if ok else "FAILED"))
sys.exit(0 if ok else 1)
EOF
