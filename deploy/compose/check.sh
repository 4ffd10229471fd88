#!/usr/bin/env bash
# The compose cluster for real (issue #23): builds every role's image from
# deploy/Dockerfile as `docker-compose build` does, brings deploy/compose up with a short
# run, kills the coordinator's and then a reward replica's process mid-run, and checks against the
# real containers that the run finishes with every step once, that both reward replicas
# and both actors worked, that weights reached the actors, and that Prometheus scrapes
# every service with the alert rules loaded; then `down -v` must leave nothing running.
#
#   deploy/compose/check.sh           (root, or a user in the docker group)
#
# On a fresh machine it installs what it needs (scripts/install-deps.sh --containers),
# starts dockerd when none answers (and stops only a daemon it started), and makes the
# base image debian:bookworm from Debian's mirror with mmdebstrap (no registry needed).
# GRPO_CHECK_STEPS (default 60) sets the run's length. Last line:
#   compose: steps S/S, code runs R, restarts K, targets up T/T
set -euo pipefail
if [[ "$(id -u)" != 0 ]] && ! docker info >/dev/null 2>&1; then
  echo "compose-check: skipped: needs root (to install packages and start dockerd) or a Docker daemon this user may use"
  exit 77
fi
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
export GRPO_CHECK_STEPS="${GRPO_CHECK_STEPS:-60}"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-grpocheck}"
# The Python docker SDK's builder: the same on every docker-compose 1.x, no buildx, no
# registry lookups for a `# syntax=` frontend.
export COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0
COMPOSE=(docker-compose -f deploy/compose/docker-compose.yml -f deploy/compose/check.override.yml)
WORK="$(mktemp -d /tmp/grpo-compose-check.XXXXXX)"
T0=$(date +%s)
log() { echo "[compose-check $(( $(date +%s) - T0 ))s] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

bash scripts/install-deps.sh --containers
# Debian's python (the probe's grpcio and protobuf are Debian packages, not pip's).
PY=/usr/bin/python3

# The run's tasks: math and code (a code task's tests expect no output, so any program
# the small character policy writes that runs cleanly passes: the sandbox runs them all).
export GRPO_CHECK_TASKS="$WORK/tasks.jsonl"
$PY - "$GRPO_CHECK_TASKS" <<'PY'
import json, random, sys
rng = random.Random(1)
with open(sys.argv[1], "w") as f:
    for i in range(512):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        if i % 2:
            f.write(json.dumps({"id": f"code-{i}", "task": "code", "prompt": f"{a}+{b}", "language": "python",
                                "tests": [{"input": "", "output": ""}]}) + "\n")
        else:
            f.write(json.dumps({"id": f"math-{i}", "prompt": f"{a}+{b}", "answer": str(a + b)}) + "\n")
PY
chmod 644 "$GRPO_CHECK_TASKS"
chmod 755 "$WORK"

# ---- The engine: the one running, else one of our own (stopped on exit).
DOCKERD_PID=""
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $WORK/dockerd.log)"
  dockerd > "$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$WORK/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
fi
cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    log "logs of the cluster (last lines each):"
    "${COMPOSE[@]}" logs --no-color --tail=30 >&2 2>/dev/null || true
  fi
  "${COMPOSE[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  [[ -n "${LENT_CCACHE:-}" ]] && rm -rf "$LENT_CCACHE"
  if [[ -n "$DOCKERD_PID" ]]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    wait "$DOCKERD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

# ---- The base image, from Debian's mirror.
if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
  log "making debian:bookworm with mmdebstrap"
  mmdebstrap --variant=minbase --format=tar bookworm - 2> "$WORK/mmdebstrap.log" | docker import - debian:bookworm >/dev/null
fi
docker image inspect debian:bookworm-slim >/dev/null 2>&1 || docker tag debian:bookworm debian:bookworm-slim

# ---- The images, as a user builds them. The host build's compiler cache is lent to the
# build stage (.ccache/ in the context, hard links, taken away after the build): units the
# host compiled from these same sources are not compiled a second time (CI compiles the
# project once). GRPO_CHECK_CCACHE=0 builds with no cache, as on a plain checkout.
LENT_CCACHE=""
host_ccache="$(ccache -k cache_dir 2>/dev/null || true)"
if [[ "${GRPO_CHECK_CCACHE:-1}" != 0 && -n "$host_ccache" && -d "$host_ccache" && ! -e "$ROOT/.ccache" ]] &&
   (( $(du -sm "$host_ccache" | cut -f1) < 4096 )); then
  cp -al "$host_ccache" "$ROOT/.ccache" 2>/dev/null || cp -a "$host_ccache" "$ROOT/.ccache"
  LENT_CCACHE="$ROOT/.ccache"
  log "lending the host's compiler cache ($host_ccache, $(du -sm "$LENT_CCACHE" | cut -f1) MB) to the build stage"
fi
log "docker-compose build"
"${COMPOSE[@]}" build > "$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; die "docker-compose build"; }
[[ -n "$LENT_CCACHE" ]] && rm -rf "$LENT_CCACHE" && LENT_CCACHE=""
grep -E "^ *(Hits|Misses):" "$WORK/build.log" | sed 's/^ */build stage compiler cache: /' | while read -r l; do log "$l"; done || true
for r in coordinator reward learner actor prometheus; do
  size=$(docker image inspect -f '{{.Size}}' "grpo-$r:latest")
  log "image grpo-$r: $(( size / 1000000 )) MB"
done
for r in coordinator reward; do
  if docker run --rm --entrypoint sh "grpo-$r:latest" -c 'ls /usr/lib/x86_64-linux-gnu/ | grep -q libtorch'; then
    die "grpo-$r carries LibTorch"
  fi
done

# ---- Up.
log "docker-compose up ($GRPO_CHECK_STEPS steps)"
"${COMPOSE[@]}" up -d > "$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "docker-compose up"; }
container() { docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
                --filter "label=com.docker.compose.service=$1" | head -n "${2:-1}" | tail -n 1; }
LEARNER="$(container learner)"
[[ -n "$LEARNER" ]] || die "no learner container"
# The learner's last step so far (0 before the first).
last_step() {
  docker exec "$LEARNER" sh -c 'tail -n 1 /var/lib/grpo/run/metrics.jsonl 2>/dev/null' 2>/dev/null |
    sed -n 's/.*"step":\([0-9]*\).*/\1/p' | tail -n 1
}
wait_step() {  # wait_step N LIMIT_S: until the learner has done step N
  local deadline=$(( $(date +%s) + $2 )) s
  while (( $(date +%s) < deadline )); do
    s="$(last_step)"; [[ -n "$s" && "$s" -ge "$1" ]] && return 0
    [[ "$(docker inspect -f '{{.State.Running}}' "$LEARNER")" == true ]] || return 1
    sleep 2
  done
  return 1
}
restarts_of() { docker inspect -f '{{.RestartCount}}' "$1"; }
# kill_and_wait SERVICE: SIGKILL its (first) container's service process, then wait for the
# restart policy to bring it back and for it to be healthy again. (Not `docker kill`:
# Docker marks a container it was told to kill as stopped by hand, and no restart
# policy restarts those; a process that dies is what the policy is for.)
RESTARTS=0
kill_and_wait() {
  local c before deadline pid
  c="$(container "$1")"
  before="$(restarts_of "$c")"
  pid="$(docker inspect -f '{{.State.Pid}}' "$c")"  # tini, the container's pid 1
  pid="$(pgrep -P "$pid" -f '^grpo-' | head -n 1)"   # the service tini runs (not the orphans it reaps)
  [[ -n "$pid" ]] || die "$1's container runs no service process under its init"
  log "SIGKILL to $1's process ($c, host pid $pid) at step $(last_step)"
  kill -KILL "$pid"
  deadline=$(( $(date +%s) + 120 ))
  while (( $(date +%s) < deadline )); do
    if [[ "$(restarts_of "$c")" -gt "$before" && "$(docker inspect -f '{{.State.Health.Status}}' "$c")" == healthy ]]; then
      RESTARTS=$(( RESTARTS + 1 )); log "$1 restarted and healthy"; return 0
    fi
    sleep 1
  done
  die "$1 was not restarted and healthy within 120 s (restarts $(restarts_of "$c"), $(docker inspect -f '{{.State.Status}}' "$c"))"
}
third=$(( GRPO_CHECK_STEPS / 3 ))
wait_step "$third" 600 || die "the learner did not reach step $third"
kill_and_wait coordinator
wait_step $(( 2 * third )) 600 || die "the learner did not reach step $(( 2 * third )) after the coordinator's restart"
kill_and_wait reward

# Every service scraped while they all run (the learner's target goes down once it
# exits): wait, bounded, for Prometheus to see all six up after the restarts.
PROM="$(container prometheus)"
promq() {  # promq PATH: Prometheus's HTTP API answer (from inside its container)
  docker exec "$PROM" wget -q -O- "http://127.0.0.1:9090$1"
}
targets() {
  promq /api/v1/targets | $PY -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; print(sum(x["health"]=="up" for x in t), len(t))'
}
deadline=$(( $(date +%s) + 60 ))
while read -r TARGETS_UP TARGETS < <(targets); (( TARGETS_UP < 6 || TARGETS_UP < TARGETS )); do
  (( $(date +%s) < deadline )) || die "Prometheus: $TARGETS_UP of $TARGETS targets up, want coordinator, 2 rewards, learner, 2 actors"
  sleep 2
done
log "Prometheus: $TARGETS_UP/$TARGETS targets up"

log "waiting for the learner to finish"
docker wait "$LEARNER" > "$WORK/learner.rc" &
WAITER=$!
deadline=$(( $(date +%s) + 900 ))
while kill -0 "$WAITER" 2>/dev/null && (( $(date +%s) < deadline )); do sleep 2; done
kill -0 "$WAITER" 2>/dev/null && { kill "$WAITER"; die "the learner did not finish within 900 s (step $(last_step))"; }
[[ "$(cat "$WORK/learner.rc")" == 0 ]] || die "the learner exited $(cat "$WORK/learner.rc")"

# ---- Every step once.
docker cp "$LEARNER:/var/lib/grpo/run/metrics.jsonl" "$WORK/metrics.jsonl"
STEPS=$($PY - "$WORK/metrics.jsonl" "$GRPO_CHECK_STEPS" <<'PY'
import json, sys
steps = [json.loads(l)["step"] for l in open(sys.argv[1]) if l.strip() and '"step"' in l and '"train_s"' in l]
want = list(range(1, int(sys.argv[2]) + 1))
if sorted(steps) != want:
    dup = sorted({s for s in steps if steps.count(s) > 1})
    missing = sorted(set(want) - set(steps))
    print(f"steps wrong: {len(steps)} rows, duplicated {dup}, missing {missing}", file=sys.stderr)
    sys.exit(1)
print(len(steps))
PY
) || die "metrics.jsonl"

# ---- What Prometheus saw (queried from inside its container: no port needs publishing).
promq /api/v1/rules > "$WORK/rules.json"
q() { promq "/api/v1/query?query=$($PY -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")"; }
# Counters restart with their process: the most each instance ever reported.
q 'max by (instance) (max_over_time(grpo_reward_completions_total[1h])) > 0' > "$WORK/reward_work.json"
q 'max by (instance) (max_over_time(grpo_actor_tokens_generated_total[1h])) > 0' > "$WORK/actor_work.json"
q 'max by (instance) (max_over_time(grpo_actor_weight_updates_total[1h])) > 0' > "$WORK/actor_weights.json"
q 'sum(max_over_time(grpo_actor_weight_bytes_relayed_total[1h]))' > "$WORK/relayed.json"
count_of() { $PY -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]["result"]))' "$WORK/$1"; }
value_of() { $PY -c 'import json,sys; r=json.load(open(sys.argv[1]))["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' "$WORK/$1"; }
(( $(count_of reward_work.json) >= 2 )) || die "reward completions from $(count_of reward_work.json) reward server(s), want both replicas"
(( $(count_of actor_work.json) >= 2 )) || die "tokens from $(count_of actor_work.json) actor(s), want both"
(( $(count_of actor_weights.json) >= 2 )) || die "weight updates on $(count_of actor_weights.json) actor(s), want both"
(( $(value_of relayed.json) > 0 )) || die "no actor relayed weight bytes to another"
# The training run's own code tasks (before the probe below adds its runs).
q 'sum(max_over_time(grpo_reward_sandbox_run_seconds_count{status="ok"}[1h]))' > "$WORK/code_runs.json"
CODE_RUNS=$(value_of code_runs.json)
(( CODE_RUNS > 0 )) || die "no sandbox run with status ok in the reward servers' metrics"
RULES=$($PY -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(open(sys.argv[1]))["data"]["groups"]))' "$WORK/rules.json")
(( RULES > 0 )) || die "Prometheus has no alert rules loaded"

# ---- Hostile programs against each reward replica, over its real gRPC stream.
for c in $(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
             --filter "label=com.docker.compose.service=reward"); do
  ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")"
  before="$(restarts_of "$c")"
  $PY deploy/compose/reward_probe.py --addr "$ip:50052" --proto-dir proto > "$WORK/probe.json" ||
    { cat "$WORK/probe.json" >&2; die "reward probe against $c"; }
  [[ "$(restarts_of "$c")" == "$before" && "$(docker inspect -f '{{.State.Running}}' "$c")" == true ]] ||
    die "reward container $c did not survive the hostile programs"
  log "reward $c: hostile programs scored 0, correct 1, still up"
  PROBED=$(( ${PROBED:-0} + 1 ))
done
(( ${PROBED:-0} >= 2 )) || die "probed ${PROBED:-0} reward containers, want 2"
# No process left unreaped: every sandbox run leaves an orphan for the container's init
# to reap (unreaped, they filled the pids limit until no run could fork).
for c in $(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
             --filter "label=com.docker.compose.service=reward"); do
  zombies=-1
  for _ in $(seq 1 20); do
    zombies="$(docker exec "$c" sh -c 'cat /proc/[0-9]*/status 2>/dev/null | grep -c "^State:.*Z"' || true)"
    [[ "$zombies" == 0 ]] && break
    sleep 0.5
  done
  [[ "$zombies" == 0 ]] || die "reward container $c holds $zombies unreaped process(es)"
done

# ---- Down leaves nothing.
"${COMPOSE[@]}" down -v --remove-orphans > "$WORK/down.log" 2>&1 || die "docker-compose down -v"
left="$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l)"
vols="$(docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | wc -l)"
[[ "$left" == 0 && "$vols" == 0 ]] || die "after down -v: $left containers and $vols volumes left"
log "done in $(( $(date +%s) - T0 )) s"
echo "compose: steps $STEPS/$GRPO_CHECK_STEPS, code runs $CODE_RUNS, restarts $RESTARTS, targets up $TARGETS_UP/$TARGETS"
