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

# The base model's copy of its worked result into the answer: each held-out chain
# worked out correctly up to "<answer>", sampled as evaluation samples. GRPO builds on
# this skill; a base without it learned to reason and then guessed in the tags (issue
# #21: 58% here, held-out pass@1 0.48 after GRPO).
python3 - "$RUN/data/test.jsonl" "$RUN/copy.jsonl" <<'EOF'
import json, re, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        t = json.loads(line)
        toks = re.findall(r"\d+|[+-]", t["prompt"])
        acc, steps = int(toks[0]), []
        for op, n in zip(toks[1::2], map(int, toks[2::2])):
            new = acc + n if op == "+" else acc - n
            steps.append(f"{acc}{op}{n}={new}")
            acc = new
        t["prompt"] = f"{t['prompt']}. Assistant: <think> {', '.join(steps)} </think> <answer>"
        out.write(json.dumps(t) + "\n")
EOF
"$BIN/grpo" eval --model "$RUN/base/model" --data "$RUN/copy.jsonl" --config "$RUN/config.yaml" \
  --set 'model.prompt_template=User: {prompt}' -k 8 --temperature 0.6 --max-new-tokens 4 \
  --json "$RUN/eval/base_copy.json" >"$RUN/copy.log" 2>&1 || { echo "learning_guard: the copy check failed:" >&2; tail -n 20 "$RUN/copy.log" >&2; exit 1; }

python3 - "$RUN" "$wall" "$STEPS" <<'EOF'
import json, sys
run, wall, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
before = json.load(open(f"{run}/eval/before.json"))
after = json.load(open(f"{run}/eval/after.json"))
copy = json.load(open(f"{run}/eval/base_copy.json"))["pass@1"]
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
print(f"the base model copies its worked result into <answer>: {copy:.3f}")
ok = True
if before["pass@1"] > 0.30:
    print(f"FAIL: the base model's held-out pass@1 is {before['pass@1']:.3f}, above 0.30: the demo no longer starts from a model that mostly fails")
    ok = False
if copy < 0.90:
    print(f"FAIL: the base model copies its worked result into <answer> {copy:.3f} of the time, below 0.90: GRPO from it learns to reason and then guesses the answer (see pipeline.base_restated_share)")
    ok = False
if after["pass@1"] < 0.80:
    print(f"FAIL: held-out pass@1 after GRPO is {after['pass@1']:.3f}, below 0.80: the demo no longer learns what it did")
    ok = False
print("learning_guard: " + ("held" if ok else "FAILED"))
sys.exit(0 if ok else 1)
EOF
