#!/usr/bin/env python3
"""torch-only/report.py: the `grpo run` summary that scripts/gpu-check.sh step 7 puts in
gpu-report.json (issue #22), on a run directory whose figures are known."""
import json
import os
import subprocess
import sys
import tempfile

root = sys.argv[1]
report = os.path.join(root, "torch-only", "report.py")
failures = []


def expect(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, want {want!r}")


with tempfile.TemporaryDirectory() as d:
    run = os.path.join(d, "run")
    os.makedirs(os.path.join(run, "eval"))
    # Four steps 2 s apart; the first is start-up and is left out of the rates: 3 steps
    # in 6 s, 300 tokens each, 1.5 s of training each.
    with open(os.path.join(run, "metrics.jsonl"), "w") as f:
        for i in range(4):
            row = {"step": i + 1, "train_s": 1.5, "completion_tokens": 300, "staleness": {"1": 8},
                   "time": f"2026-12-07T05:00:{10 + 2 * i:02d}.123456789+00:00"}
            if i == 3:
                row["eval_pass1"] = 0.5
            f.write(json.dumps(row) + "\n")
        f.write("not json: a torn last line is skipped\n")
    for name, p in (("before", 0.1), ("after", 0.6)):
        with open(os.path.join(run, "eval", f"{name}.json"), "w") as f:
            json.dump({"pass@1": p, "pass@k": p, "maj@k": p, "k": 8, "format": 1.0, "response_len_mean": 20, "n": 40}, f)
    with open(os.path.join(run, "services.json"), "w") as f:
        json.dump([{"name": "learner", "restarts": 0, "up": True, "pid": 1}], f)
    out = subprocess.run([sys.executable, report, "--summarize-run", run], capture_output=True, text=True)
    expect("exit", out.returncode, 0)
    s = json.loads(out.stdout) if out.returncode == 0 else {}
    expect("steps", s.get("steps"), 4)
    expect("last_step", s.get("last_step"), 4)
    expect("steady_wall_s", s.get("steady_wall_s"), 6.0)
    expect("tokens_per_s", s.get("tokens_per_s"), 150.0)
    expect("learner_busy_fraction", s.get("learner_busy_fraction"), 0.75)
    expect("seconds_per_weight_version", s.get("seconds_per_weight_version"), 2.0)
    expect("pass@1 before", s.get("eval_before", {}).get("pass@1"), 0.1)
    expect("pass@1 after", s.get("eval_after", {}).get("pass@1"), 0.6)
    expect("validation", s.get("validation"), [{"step": 4, "pass1": 0.5}])
    expect("staleness", s.get("staleness_groups"), {"1": 24})
    expect("services", s.get("services"), [{"name": "learner", "restarts": 0, "up": True}])

    # The whole report carries the summary and names a failed step.
    pieces = os.path.join(d, "pieces")
    os.makedirs(pieces)
    with open(os.path.join(pieces, "steps.jsonl"), "w") as f:
        f.write(json.dumps({"step": "grpo-run", "rc": 0, "seconds": 9}) + "\n")
        f.write(json.dumps({"step": "bench-weights", "rc": 124, "seconds": 300}) + "\n")
    with open(os.path.join(pieces, "grpo_run.json"), "w") as f:
        f.write(out.stdout or "{}")
    full = subprocess.run([sys.executable, report, "--out", pieces, "--only", "services"], capture_output=True, text=True)
    expect("report exit", full.returncode, 0)
    with open(os.path.join(pieces, "gpu-report.json")) as f:
        r = json.load(f)
    expect("report grpo_run steps", (r.get("grpo_run") or {}).get("steps"), 4)
    expect("report names the failed step", any("bench-weights exited 124" in x for x in r.get("not_run_or_failed", [])), True)

if failures:
    print("gpu_report_check: FAILED\n  " + "\n  ".join(failures))
    sys.exit(1)
print("gpu_report_check: ok")
