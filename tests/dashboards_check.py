#!/usr/bin/env python3
"""A real Prometheus against a real `grpo run --prometheus`, then every dashboard panel's
query and every alert expression through Prometheus's HTTP API.

    dashboards_check.py SOURCE_DIR BIN_DIR

Each query must parse and evaluate (status "success"); the run-overview and throughput
panels must also return data. The alert rules must be loaded and healthy. Exits 0 when
all hold, 1 (naming each failing query) otherwise.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SRC, BIN = sys.argv[1], sys.argv[2]
# The classic quick run (tests/test_configs.h): a character model on a+b= sums.
SETS = ["pipeline.tasks=", "pipeline.base_docs=0", "pipeline.eval_before_after=false", "pipeline.report=false",
        "learner.eval_every=0", "model.path=", "model.prompt_template={prompt}=", "model.charset=0123456789+= ",
        "data.operators=+", "data.max_operand=4", "actor.max_new_tokens=8", "reward.format_mode=lenient",
        "learner.lr=0.001", "learner.beta=0.04", "data.num_tasks=16", "actor.group_size=4",
        "actor.prompts_per_request=2", "learner.prompts_per_step=4", "model.hidden_size=32",
        "model.intermediate_size=64", "model.num_layers=1", "run.actors=2"]


def fail(msg):
    print(f"dashboards_check: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for(pred, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if pred():
                return
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass
        time.sleep(0.2)
    fail(f"timed out after {seconds} s waiting for {what}")


def main():
    work = tempfile.mkdtemp(prefix="grpo-dashboards-")
    run_dir = os.path.join(work, "run")
    argv = [os.path.join(BIN, "grpo"), "run", "--run-dir", run_dir, "--no-progress", "--prometheus", "--max-steps", "1000000"]
    for s in SETS:
        argv += ["--set", s]
    out = open(os.path.join(work, "launcher.out"), "w")
    run = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    try:
        ready = os.path.join(run_dir, "prometheus", "ready.json")
        wait_for(lambda: os.path.getsize(ready) > 0, 120, f"{ready} (see {work}/launcher.out)")
        port = json.load(open(ready))["port"]
        base = f"http://127.0.0.1:{port}/api/v1/"

        def api(path, **params):
            url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:  # 400 with a JSON body for a bad query
                return json.load(e)

        def query(expr):
            return api("query", query=expr)

        services = len(json.load(open(os.path.join(run_dir, "services.json"))))
        wait_for(lambda: float(query('sum(up{job="grpo"})')["data"]["result"][0]["value"][1]) == services, 60,
                 f"Prometheus to scrape all {services} services")
        # Enough steps and scrapes for rates over 1m windows to have two samples each.
        wait_for(lambda: float(query("grpo_learner_step")["data"]["result"][0]["value"][1]) >= 10, 120,
                 "ten learner steps")
        time.sleep(6)
        wait_for(lambda: query("sum(rate(grpo_actor_tokens_generated_total[1m]))")["data"]["result"], 30,
                 "a rate over the actors' token counters")

        problems, report = [], []
        # Every service's /metrics follows Prometheus's naming rules.
        for svc in json.load(open(os.path.join(run_dir, "services.json"))):
            with urllib.request.urlopen(f"http://127.0.0.1:{svc['metrics_port']}/metrics", timeout=10) as r:
                text = r.read()
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            if lint.returncode != 0:
                problems.append(f"promtool check metrics {svc['name']}: {(lint.stdout + lint.stderr).decode().strip()}")
            report.append(f"promtool check metrics {svc['name']:12} {'ok' if lint.returncode == 0 else 'FAILED'}")
        for name in ("run-overview", "throughput", "fleet"):
            dash = json.load(open(os.path.join(SRC, "deploy", "grafana", "dashboards", f"{name}.json")))
            for panel in dash["panels"]:
                assert panel["datasource"]["uid"] == "prometheus", panel["title"]
                with_data = 0
                for t in panel["targets"]:
                    r = query(t["expr"])
                    if r.get("status") != "success":
                        problems.append(f"{name} / {panel['title']}: {t['expr']}: {r.get('error')}")
                        continue
                    with_data += bool(r["data"]["result"])
                report.append(f"{name:13} {panel['title'][:60]:60} {with_data}/{len(panel['targets'])} with data")
                if name != "fleet" and with_data == 0:
                    problems.append(f"{name} / {panel['title']}: no query returned data")
        # Alert expressions: from the rules Prometheus loaded (the same file as the
        # cluster's), each evaluated through the API.
        groups = api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        wanted = {"GrpoLearnerStalled", "GrpoRewardErrorRate", "GrpoActorsBehindOnVersions", "GrpoKlExploding",
                  "GrpoSandboxUnavailable", "GrpoServiceRestarting"}
        if {r["name"] for r in rules} != wanted:
            problems.append(f"alert rules loaded: {sorted(r['name'] for r in rules)}")
        for r in rules:
            q = query(r["query"])
            if q.get("status") != "success":
                problems.append(f"alert {r['name']}: {q.get('error')}")
            if r.get("health") not in ("ok", "unknown"):
                problems.append(f"alert {r['name']}: health {r.get('health')} {r.get('lastError')}")
            report.append(f"alert {r['name']:28} state {r.get('state')}, health {r.get('health')}")
        # A query that does not parse is reported as such (the check can fail).
        if query("grpo_learner_step +").get("status") == "success":
            problems.append("Prometheus accepted a query that does not parse")
        print("\n".join(report))
        if problems:
            fail("\n  " + "\n  ".join(problems))
        print(f"dashboards_check: {sum(len(json.load(open(os.path.join(SRC, 'deploy/grafana/dashboards', n + '.json')))['panels']) for n in ('run-overview', 'throughput', 'fleet'))} panels and {len(rules)} alert rules evaluated against a live run")
        ok = True
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"dashboards_check: kept {work}", file=sys.stderr)


main()
