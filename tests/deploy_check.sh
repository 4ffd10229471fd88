#!/usr/bin/env bash
# Checks the deployment files with the real tools, and has a real Prometheus server scrape
# real grpo services on loopback.
#   deploy_check.sh SOURCE_DIR BIN_DIR
set -euo pipefail
src=$1
bin=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "deploy_check: $*" >&2; exit 1; }

# Bounded wait: polls "$@" for up to 60 s.
wait_for() {
  for _ in $(seq 1 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

yamllint -d '{extends: relaxed, rules: {line-length: {max: 130}}}' \
  "$src/configs" "$src/deploy/compose" "$src/deploy/prometheus" "$src/deploy/grafana" "$src/deploy/k8s/base" \
  "$src/deploy/k8s/overlays" || fail "yamllint found problems"
docker-compose -f "$src/deploy/compose/docker-compose.yml" config -q || fail "docker-compose config failed"
promtool check config "$src/deploy/prometheus/prometheus.yml" || fail "promtool rejected prometheus.yml"
promtool check rules "$src/deploy/prometheus/alerts.yml" || fail "promtool rejected alerts.yml"
promtool test rules "$src/deploy/prometheus/tests/alerts_test.yml" || fail "the alert rules' unit tests failed"
# The check can fail: an alert whose expression does not parse is refused.
sed 's/expr: grpo_learner_kl > 1/expr: grpo_learner_kl >/' "$src/deploy/prometheus/alerts.yml" >"$work/broken-alerts.yml"
! promtool check rules "$work/broken-alerts.yml" >/dev/null 2>&1 || fail "promtool accepted a rule that does not parse"
# Images: one target per role, and a context without the local build.
for target in coordinator reward learner actor; do
  grep -q "^FROM .* AS $target\$" "$src/deploy/Dockerfile" || fail "deploy/Dockerfile has no target $target"
done
grep -qx 'build/' "$src/.dockerignore" || fail ".dockerignore does not keep build/ out of the context"
for target in actor learner; do
  grep -q "^FROM .* AS $target\$" "$src/deploy/Dockerfile.cuda" || fail "deploy/Dockerfile.cuda has no target $target"
done
# Dashboards: JSON whose every panel queries the provisioned Prometheus data source.
for d in "$src"/deploy/grafana/dashboards/*.json; do
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"] and all(p["datasource"]["uid"]=="prometheus" and p["targets"] for p in d["panels"]), sys.argv[1]' "$d" \
    || fail "$d is not a dashboard over the prometheus data source"
done
for c in "$src"/configs/*.yaml; do
  "$bin/grpo" config --config "$c" >/dev/null || fail "grpo config rejected $c"
done

# Two real services, scraped by promtool and by a real Prometheus server.
"$bin/grpo-coordinator" --set run.dir="$work/run" --ready-file "$work/coordinator.json" >"$work/coordinator.log" 2>&1 &
pids+=($!)
"$bin/grpo-reward" --ready-file "$work/reward.json" >"$work/reward.log" 2>&1 &
pids+=($!)
wait_for test -s "$work/coordinator.json" || fail "coordinator did not start: $(cat "$work/coordinator.log")"
wait_for test -s "$work/reward.json" || fail "reward did not start: $(cat "$work/reward.log")"
port() { sed -E 's/.*"metrics_port":([0-9]+).*/\1/' "$1"; }
cport=$(port "$work/coordinator.json")
rport=$(port "$work/reward.json")
curl -fsS "http://127.0.0.1:$cport/metrics" | promtool check metrics || fail "promtool check metrics (coordinator)"
curl -fsS "http://127.0.0.1:$rport/metrics" | promtool check metrics || fail "promtool check metrics (reward)"

pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: grpo
    static_configs:
      - targets: ["127.0.0.1:$cport", "127.0.0.1:$rport"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$pport" >"$work/prometheus.log" 2>&1 &
pids+=($!)
query() {
  curl -fsS "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1"
}
up_both() { [ "$(query 'sum(up{job="grpo"})' | sed -E 's/.*"value":\[[^,]*,"([0-9.]+)".*/\1/')" = "2" ]; }
wait_for up_both || fail "Prometheus did not scrape both services: $(query 'up' 2>&1) $(tail -5 "$work/prometheus.log")"
has_series() { query 'grpo_coordinator_latest_version' | grep -q '"value"'; }
wait_for has_series || fail "Prometheus has no grpo_coordinator_latest_version series"
echo "deploy_check: yamllint, docker-compose config, promtool and a live Prometheus scrape all passed"
