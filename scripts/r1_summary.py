#!/usr/bin/env python3
"""Tables of scripts/r1-compare.sh's runs (issue #25), as Markdown, mean and spread
(sample standard deviation) over seeds:

  * R1's stages: held-out pass@1, maj@k, format, length, language consistency and
    minutes, for the base model (eval/before.json) and each stage (eval/<stage>.json);
  * R1 against R1-Zero on the same base: GRPO steps and wall time until held-out pass@1
    first reaches 0.80, final pass@1 and maj@k, language consistency, wall time;
  * stage 2 (reasoning_rl) with and without the language reward.

Wall time to 0.80 counts from the first stage's start (R1) or the first validation
(R1-Zero, GRPO's start), to the evaluation that first shows 0.80: a stage's held-out
evaluation, or the learner's validation every learner.eval_every steps.

  scripts/r1_summary.py OUT [SEED...]     (seeds default to every OUT/r1-s<N>)
"""
import datetime
import json
import os
import re
import statistics
import sys

STAGES = ["cold_start", "reasoning_rl", "rejection_sft", "final_rl"]
TARGET = 0.80


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def when(s):
    s = re.sub(r"(\.\d{6})\d*", r"\1", s).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(s)


def ms(values, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def base_minutes(log):
    try:
        text = open(log).read()
    except OSError:
        return None
    m = re.search(r"base-pretrain done in (?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not m:
        return None
    h, mi, s = (int(x) if x else 0 for x in m.groups())
    return h * 60 + mi + s / 60


def validation(metrics):
    """(step, pass@1, time) of each validation line."""
    out = []
    for m in metrics:
        if "eval_pass1" in m and "time" in m:
            out.append((m["step"], m["eval_pass1"], when(m["time"])))
    return out


def r1_reach(run):
    """RL steps, minutes and the stage at which R1's held-out pass@1 first reached TARGET."""
    first = load(os.path.join(run, "stages", STAGES[0], "done.json"))
    if not first:
        return None, None, None
    start = when(first["started"])
    rl_steps = 0
    for name in STAGES:
        done = load(os.path.join(run, "stages", name, "done.json"))
        if not done:
            break
        metrics = lines(os.path.join(run, "stages", name, "metrics.jsonl"))
        if metrics:
            for step, p, t in validation(metrics):
                if p >= TARGET:
                    return rl_steps + step, (t - start).total_seconds() / 60, name
            rl_steps += max((m.get("step", 0) for m in metrics), default=0)
        else:
            e = load(os.path.join(run, "eval", name + ".json"))
            if e and e["pass@1"] >= TARGET:
                return rl_steps, (when(done["finished"]) - start).total_seconds() / 60, name
    return None, None, None


def zero_reach(run):
    val = validation(lines(os.path.join(run, "metrics.jsonl")))
    if not val:
        return None, None
    start = val[0][2]
    for step, p, t in val:
        if p >= TARGET:
            return step, (t - start).total_seconds() / 60
    return None, None


def zero_minutes(run):
    val = validation(lines(os.path.join(run, "metrics.jsonl")))
    return (val[-1][2] - val[0][2]).total_seconds() / 60 if len(val) > 1 else None


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/r1_summary.py OUT [SEED...]")
    out, seeds = sys.argv[1], sys.argv[2:]
    if not seeds:
        found = [re.fullmatch(r"r1-s(\d+)", d) for d in sorted(os.listdir(out))]
        seeds = sorted((m.group(1) for m in found if m), key=int)
    if not seeds:
        sys.exit(f"r1_summary: no r1-s<N> run in {out}")
    r1 = {s: os.path.join(out, f"r1-s{s}") for s in seeds}
    zero = {s: os.path.join(out, f"zero-s{s}") for s in seeds}
    nolang = {s: os.path.join(out, f"nolang-s{s}") for s in seeds}
    print(f"Seeds {', '.join(seeds)}; mean ± standard deviation over seeds.\n")

    first = load(os.path.join(r1[seeds[0]], "eval", "before.json")) or {}
    print(f"R1's stages, held-out (k = {first.get('k', '?')}, {first.get('n', '?')} tasks):\n")
    print("| model | pass@1 | maj@k | format | length | language | minutes |")
    print("|---|---|---|---|---|---|---|")
    rows = [("base", "before")] + [(n, n) for n in STAGES]
    for label, key in rows:
        ev = [load(os.path.join(r1[s], "eval", key + ".json")) for s in seeds]
        ev = [e for e in ev if e]
        if key == "before":
            mins = [base_minutes(os.path.join(out, f"r1-s{s}.log")) for s in seeds]
        else:
            mins = [(load(os.path.join(r1[s], "stages", key, "done.json")) or {}).get("seconds") for s in seeds]
            mins = [m / 60 if m else None for m in mins]
        print(f"| {label} | {ms([e['pass@1'] for e in ev])} | {ms([e['maj@k'] for e in ev])} | "
              f"{ms([e['format'] for e in ev])} | {ms([e['response_len_mean'] for e in ev], 1)} | "
              f"{ms([e.get('language_consistency') for e in ev])} | {ms(mins, 1)} |")

    print(f"\nR1 against R1-Zero on the same base (pass@1 {TARGET:.2f}: first held-out evaluation at or above it):\n")
    print(f"| run | reached {TARGET:.2f} | RL steps to it | minutes to it | final pass@1 | final maj@k | language | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    reach = [r1_reach(r1[s]) for s in seeds]
    fin = [load(os.path.join(r1[s], "eval", "final_rl.json")) for s in seeds]
    fin = [e for e in fin if e]
    total = []
    for s in seeds:
        secs = [(load(os.path.join(r1[s], "stages", n, "done.json")) or {}).get("seconds") for n in STAGES]
        total.append(sum(secs) / 60 if all(secs) else None)
    where = ", ".join(sorted({r[2] for r in reach if r[2]})) or "-"
    print(f"| R1 | {sum(1 for r in reach if r[0] is not None)}/{len(seeds)} (in {where}) | {ms([r[0] for r in reach], 0)} | "
          f"{ms([r[1] for r in reach], 1)} | {ms([e['pass@1'] for e in fin])} | {ms([e['maj@k'] for e in fin])} | "
          f"{ms([e.get('language_consistency') for e in fin])} | {ms(total, 1)} |")
    zr = [zero_reach(zero[s]) for s in seeds]
    zf = [load(os.path.join(zero[s], "eval", "after.json")) for s in seeds]
    zf = [e for e in zf if e]
    print(f"| R1-Zero | {sum(1 for r in zr if r[0] is not None)}/{len(seeds)} | {ms([r[0] for r in zr], 0)} | "
          f"{ms([r[1] for r in zr], 1)} | {ms([e['pass@1'] for e in zf])} | {ms([e['maj@k'] for e in zf])} | "
          f"{ms([e.get('language_consistency') for e in zf])} | {ms([zero_minutes(zero[s]) for s in seeds], 1)} |")
    print("\n(R1's minutes: its four stages, the base model's pretraining not included; R1-Zero's: GRPO. "
          "Both start from the same base model.)")

    print("\nStage 2 (reasoning_rl, from the same cold_start model) with and without the language reward:\n")
    print("| reasoning_rl | pass@1 | maj@k | format | language |")
    print("|---|---|---|---|---|")
    weight = "?"
    try:
        m = re.search(r"^  language_weight: ([0-9.e-]+)", open(os.path.join(r1[seeds[0]], "config.yaml")).read(), re.M)
        weight = m.group(1) if m else weight
    except OSError:
        pass
    for label, runs in ((f"with (reward.language_weight {weight})", r1), ("without (0)", nolang)):
        ev = [load(os.path.join(runs[s], "eval", "reasoning_rl.json")) for s in seeds]
        ev = [e for e in ev if e]
        print(f"| {label} | {ms([e['pass@1'] for e in ev])} | {ms([e['maj@k'] for e in ev])} | "
              f"{ms([e['format'] for e in ev])} | {ms([e.get('language_consistency') for e in ev])} |")


if __name__ == "__main__":
    main()
