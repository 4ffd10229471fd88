#!/usr/bin/env python3
"""Gathers scripts/gpu-check.sh's pieces into OUT/gpu-report.json (standard library only)."""
import argparse
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception as e:  # a missing or cut file is reported, not fatal
        return {"missing": f"{os.path.basename(path)}: {type(e).__name__}: {e}"}


def parse_time(text):
    """metrics.jsonl's RFC 3339 time (nanoseconds, +00:00) as seconds since the epoch."""
    from datetime import datetime
    day, clock = text.split("T")
    clock = clock.replace("Z", "+00:00")
    zone = clock[-6:] if clock[-6] in "+-" else "+00:00"
    clock = clock[:-6] if clock[-6] in "+-" else clock
    if "." in clock:
        whole, frac = clock.split(".")
        clock = f"{whole}.{frac[:6]}"
    return datetime.fromisoformat(f"{day}T{clock}{zone}").timestamp()


def summarize_run(run_dir):
    """The figures issue #22 asks of a real `grpo run`: steps, held-out pass@1 before and
    after, generated tokens/s, the learner's busy fraction and the time per weight version."""
    out = {"run_dir": run_dir}
    rows = []
    path = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    steps = [r for r in rows if "step" in r and "train_s" in r]
    out["steps"] = len(steps)
    out["last_step"] = max((r["step"] for r in steps), default=0)
    for name in ("before", "after"):
        j = load(os.path.join(run_dir, "eval", f"{name}.json"))
        out[f"eval_{name}"] = {k: j.get(k) for k in ("pass@1", "pass@k", "maj@k", "k", "format", "response_len_mean", "n")} \
            if "missing" not in j else j
    out["validation"] = [{"step": r["step"], "pass1": r["eval_pass1"]} for r in steps if "eval_pass1" in r]
    if len(steps) >= 3:
        # From the first step's end to the last's: the steady state, without start-up.
        t = [parse_time(r["time"]) for r in steps]
        wall = t[-1] - t[0]
        later = steps[1:]
        tokens = sum(r.get("completion_tokens", 0) for r in later)
        out["steady_wall_s"] = round(wall, 3)
        out["tokens_per_s"] = round(tokens / wall, 1) if wall > 0 else None
        out["learner_busy_fraction"] = round(sum(r.get("train_s", 0) for r in later) / wall, 3) if wall > 0 else None
        out["seconds_per_weight_version"] = round(wall / (len(steps) - 1), 3)
        out["train_s_mean"] = round(sum(r.get("train_s", 0) for r in later) / len(later), 4)
        stale = {}
        for r in later:
            for k, v in (r.get("staleness") or {}).items():
                stale[k] = stale.get(k, 0) + v
        out["staleness_groups"] = stale
    services = load(os.path.join(run_dir, "services.json"))
    if isinstance(services, list):
        out["services"] = [{k: s.get(k) for k in ("name", "restarts", "up")} for s in services]
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize-run":
        print(json.dumps(summarize_run(sys.argv[2]), indent=1))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--transformers", type=int, default=0)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    steps = []
    with open(os.path.join(a.out, "steps.jsonl")) as f:
        steps = [json.loads(line) for line in f if line.strip()]
    tests = {}
    for path in sorted(glob.glob(os.path.join(a.out, "tests", "*.json"))):
        j = load(path)
        name = os.path.basename(path)[:-5]
        if "missing" in j:
            tests[name] = j
            continue
        failed, skipped, device_tests = [], [], []
        for suite in j.get("testsuites", []):
            for t in suite.get("testsuite", []):
                full = f"{suite['name']}.{t['name']}"
                if t.get("failures"):
                    failed.append({"test": full, "failure": t["failures"][0].get("failure", "")[:600]})
                if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                    skipped.append(full)
                if "OnDevice" in full or "DeviceTest" in full or "Nccl" in full:
                    device_tests.append({"test": full, "ok": not t.get("failures"),
                                         "skipped": t.get("result") == "SKIPPED",
                                         **{k: t[k] for k in ("decode_steps", "syncs") if k in t}})
        tests[name] = {"tests": j.get("tests"), "failures": j.get("failures"), "failed": failed,
                       "skipped": skipped, "device_tests": device_tests}
    not_run = []
    if a.only:
        not_run.append(f"GPU_CHECK_ONLY={a.only}: only that step ran (no build, tests, parity or model benches)")
    elif not a.gpu:
        not_run.append("everything on CUDA: this machine has no GPU or its LibTorch no CUDA "
                       "(device tests ran on the CPU; the NCCL test checked only its error)")
    if not a.transformers and not a.only:
        not_run.append("parity with transformers: python here cannot import torch and transformers")
    failing_logs = {}
    for s in steps:
        if s.get("rc", 0) != 0:
            not_run.append(f"step {s['step']} exited {s['rc']} (see {s['step']}.log)")
            for suffix in (".log", ".gdb.log"):
                path = os.path.join(a.out, s["step"] + suffix)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        failing_logs[s["step"] + suffix] = f.read()[-6000:]
    report = {
        "machine": open(os.path.join(a.out, "machine.txt")).read() if os.path.exists(os.path.join(a.out, "machine.txt")) else "",
        "gpu": bool(a.gpu),
        "seconds": a.seconds,
        "steps": steps,
        "tests": tests,
        "parity": load(os.path.join(a.out, "parity.json")) if a.transformers else None,
        "bench_generate": load(os.path.join(a.out, "bench_generate.json")),
        "bench_train": load(os.path.join(a.out, "bench_train.json")),
        "bench_weights": [line for line in open(os.path.join(a.out, "bench_weights.txt"), errors="replace").read().splitlines()
                          if not line.startswith("[")] if os.path.exists(os.path.join(a.out, "bench_weights.txt")) else None,
        "grpo_run": load(os.path.join(a.out, "grpo_run.json")) if os.path.exists(os.path.join(a.out, "grpo_run.json")) else None,
        "not_run_or_failed": not_run,
        "failing_logs": failing_logs,
    }
    if isinstance(report["parity"], dict):  # logits are not kept; the summary is enough
        for c in report["parity"].get("checks", []):
            c.pop("traceback", None) if c.get("ok") else None
    with open(os.path.join(a.out, "gpu-report.json"), "w") as f:
        json.dump(report, f, indent=1)
    total = sum(t.get("tests") or 0 for t in tests.values())
    failures = sum(t.get("failures") or 0 for t in tests.values())
    print(f"gpu-report: {total} tests, {failures} failed; gpu {bool(a.gpu)}; not run or failed: {len(not_run)}")
    for line in not_run:
        print("  -", line)


if __name__ == "__main__":
    main()
