#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (issue #13), also runnable on a CPU
# machine, where it does every part that runs there and says what did not.
#
#   scripts/gpu-check.sh [OUT]      (OUT defaults to $OUT, then ./gpu-check-out)
#
# Needs: a LibTorch (the python torch's, when python can import torch; else a system
# LibTorch CMake can find), CMake, a C++ compiler, and .deps/torch-only from
# scripts/prepare-torch-only-deps.sh (carried along; the GPU machine has no Debian
# packages). Writes OUT/gpu-report.json and the logs and JSON of every step under OUT.
# Steps, each with its own time limit so one hang cannot eat the rest:
#   1. build torch-only/ (model, trainer, their tests, benches, grpo-parity)
#   2. tests: model, hf_model, generator, grpo_loss, trainer on the build's LibTorch;
#      device_test (fp32 and bf16) and the trainer's device and NCCL tests on CUDA
#   3. parity with transformers (torch-only/parity.py), when python has it
#   4. generation throughput, bf16, 0.5B shape: batch 1, 64, 256 and G=16 sharing a prompt
#   5. a GRPO training step's MFU, bf16 and fp32, 0.5B shape
#   6. grpo-bench-weights on this machine's cores, when .deps/bench-bundle is there
#      (scripts/prepare-bench-bundle.sh: the bench with its own gRPC and glibc): weight
#      relays to 1-8 actors where cores are not the limit, as they are on a 2-core box
#   7. the whole system (issue #22), when .deps/gpu-sysroot.tar.xz is there
#      (scripts/prepare-gpu-deps.sh: Debian's gRPC, protobuf, Abseil... for this machine):
#      every service built against it and this machine's LibTorch, then a real `grpo run`
#      of the demo's pipeline with the learner and two actors on CUDA in bf16 (60 GRPO
#      steps), summarized in gpu-report.json's grpo_run (pass@1 before and after, tokens/s,
#      learner busy fraction, seconds per weight version). Without a GPU: the dry run, the
#      same on the CPU with a short pipeline. Step 6 then runs the bench built here.
# GPU_CHECK_ONLY=weights runs step 6 alone; GPU_CHECK_ONLY=services steps 7 and 6.
# Carry .deps/torch-only and .deps/gpu-sysroot.tar.xz (together about 40 MB).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FINAL="${1:-${OUT:-$ROOT/gpu-check-out}}"
mkdir -p "$FINAL"
FINAL="$(cd "$FINAL" && pwd)"
# Every piece is written here; FINAL gets gpu-report.json and logs.tar.gz (a lent
# machine returns only a few files).
OUTDIR="$(mktemp -d /tmp/gpu-check-pieces.XXXXXX)"
BUILD="${GPU_CHECK_BUILD:-/tmp/grpo-gpu-check-build}"
JOBS="$(nproc)"
T0=$(date +%s)
STEPS="$OUTDIR/steps.jsonl"
: > "$STEPS"
log() { echo "[gpu-check $(( $(date +%s) - T0 ))s] $*"; }
# step NAME LIMIT_S CMD...: runs CMD with a time limit, output to OUT/NAME.log.
step() {
  local name="$1" limit="$2"; shift 2
  local t=$(date +%s)
  log "$name: $*"
  timeout --kill-after=10 "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
  local rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d}\n' "$name" "$rc" "$(( $(date +%s) - t ))" >> "$STEPS"
  log "$name: rc $rc in $(( $(date +%s) - t ))s"; tail -n 5 "$OUTDIR/$name.log" | sed 's/^/    /'
  # A crashed test binary: its stack again under gdb where there is one.
  if (( rc >= 128 && rc != 137 )) && [[ "$name" == test-* ]] && command -v gdb >/dev/null; then
    timeout 120 gdb -batch -ex run -ex bt --args "$@" > "$OUTDIR/$name.gdb.log" 2>&1
  fi
  return $rc
}

# ---- 0. What this machine has.
PY=python3
{
  echo "date: $(date -u +%FT%TZ)"; uname -a; nproc; (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true)
  (nvcc --version 2>&1 | tail -n 2 || true); cmake --version | head -n 1; c++ --version | head -n 1
} > "$OUTDIR/machine.txt" 2>&1
cat "$OUTDIR/machine.txt"
TORCH_PREFIX=""
if $PY -c "import torch" 2>/dev/null; then
  TORCH_PREFIX="$($PY -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available(), "cxx11abi", torch._C._GLIBCXX_USE_CXX11_ABI)' | tee -a "$OUTDIR/machine.txt"
fi
HAVE_TRANSFORMERS=0
$PY -c "import transformers, torch" 2>/dev/null && HAVE_TRANSFORMERS=1

# NCCL and the CUDA runtime: the toolkit's, else the python wheels' (nvidia-*-cu1x).
CMAKE_EXTRA=()
if [[ -n "$TORCH_PREFIX" ]]; then
  # The wheel directory of an nvidia-* package torch depends on (nvidia.nccl, nvidia.cuda_runtime).
  wheel_dir() { $PY -c "
import os, importlib
try:
    m = importlib.import_module('$1')
    print(os.path.dirname(m.__file__) if getattr(m, '__file__', None) else list(m.__path__)[0])
except Exception:
    pass" 2>/dev/null; }
  NCCL_DIR="$(wheel_dir nvidia.nccl)"
  if [[ -n "$NCCL_DIR" && -f "$NCCL_DIR/include/nccl.h" ]]; then
    NCCL_LIB="$(ls "$NCCL_DIR"/lib/libnccl.so* 2>/dev/null | head -n 1)"
    CMAKE_EXTRA+=(-DGRPO_NCCL_INCLUDE_DIR="$NCCL_DIR/include" -DGRPO_NCCL_LIBRARY="$NCCL_LIB")
  fi
  # Torch's own CUDA runtime, so the process loads one libcudart, not the toolkit's too.
  CUDART_DIR="$(wheel_dir nvidia.cuda_runtime)"
  if [[ -n "$CUDART_DIR" && -f "$CUDART_DIR/include/cuda_runtime.h" ]]; then
    CUDART_LIB="$(ls "$CUDART_DIR"/lib/libcudart.so* 2>/dev/null | head -n 1)"
    [[ -n "$CUDART_LIB" ]] && CMAKE_EXTRA+=(-DGRPO_CUDART_INCLUDE_DIR="$CUDART_DIR/include" -DGRPO_CUDART_LIBRARY="$CUDART_LIB")
  fi
  [[ -d /usr/local/cuda ]] && CMAKE_EXTRA+=(-DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
  CMAKE_EXTRA+=(-DCMAKE_PREFIX_PATH="$TORCH_PREFIX")
fi

ONLY="${GPU_CHECK_ONLY:-}"
GPU=0
if [[ -z "$ONLY" ]]; then
# ---- 1. Build.
[[ -f "$ROOT/.deps/torch-only/READY" ]] || { log "missing .deps/torch-only: run scripts/prepare-torch-only-deps.sh where Debian is"; }
GEN=(); KEEP_GOING=(-k)
if ! command -v make >/dev/null && command -v ninja >/dev/null; then GEN=(-G Ninja); KEEP_GOING=(-k 0); fi
step configure 180 cmake -S "$ROOT/torch-only" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release "${CMAKE_EXTRA[@]}"
step build 420 cmake --build "$BUILD" -j "$JOBS" -- "${KEEP_GOING[@]}"
BIN="$BUILD/bin"
GPU=0
[[ -n "$TORCH_PREFIX" ]] && $PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && GPU=1
DEVICE=cpu; [[ $GPU == 1 ]] && DEVICE=cuda

# ---- 2. Tests (gtest JSON per binary; the device tests on the GPU when there is one).
mkdir -p "$OUTDIR/tests"
for t in model_test hf_model_test generator_test grpo_loss_test trainer_test device_test; do
  if [[ -x "$BIN/$t" ]]; then
    (cd "$BUILD" && GRPO_SOURCE_DIR="$ROOT" GRPO_TEST_DEVICE=$DEVICE step "test-$t" 240 "$BIN/$t" --gtest_output="json:$OUTDIR/tests/$t.json") &
  else
    printf '{"step": "test-%s", "rc": -1, "seconds": 0, "note": "not built"}\n' "$t" >> "$STEPS"
  fi
done
wait

# ---- 3. Parity with transformers.
if [[ $HAVE_TRANSFORMERS == 1 && -x "$BIN/grpo-parity" ]]; then
  step parity 300 $PY "$ROOT/torch-only/parity.py" --bin "$BIN/grpo-parity" --out "$OUTDIR/parity.json" --work "$BUILD/parity"
fi

# ---- 4 and 5. Benchmarks: the 0.5B shape in bf16 on the GPU; the small preset on a CPU.
if [[ $GPU == 1 ]]; then
  step bench-generate 240 "$BIN/grpo-bench-generate" --device cuda --dtype bf16 --preset 0.5b --vocab 151936 \
    --batches 1,64,256 --new-tokens 128 --json "$OUTDIR/bench_generate.json"
  step bench-train 240 "$BIN/grpo-bench-train" --device cuda --dtype both --preset 0.5b --vocab 151936 --groups 4 \
    --group-size 16 --prompt-len 128 --completion-len 384 --micro-batch 16 --steps 3 --mm-size 8192 \
    --json "$OUTDIR/bench_train.json"
else
  step bench-generate 240 "$BIN/grpo-bench-generate" --threads "$JOBS" --dtype bf16 --preset small \
    --batches 1,64 --new-tokens 32 --json "$OUTDIR/bench_generate.json"
  step bench-train 240 "$BIN/grpo-bench-train" --threads "$JOBS" --dtype both --preset small --steps 1 \
    --json "$OUTDIR/bench_train.json"
fi

fi  # ONLY

# ---- 7. The whole system (issue #22): every service built here against Debian's libraries
# carried in .deps/gpu-sysroot.tar.xz (scripts/prepare-gpu-deps.sh), then a real `grpo run`:
# the demo's pipeline (data, base model pretrained here, eval before, GRPO, eval after) with
# the learner and two actors on CUDA in bf16, the coordinator and reward on the CPU cores.
# On a machine without a GPU this is the dry run: the same build and pipeline on the CPU,
# shortened (GPU_CHECK_RUN_SETS replaces the settings below).
SBIN=""
if [[ -z "$ONLY" || "$ONLY" == services ]]; then
  SYSROOT_ARCHIVE="$ROOT/.deps/gpu-sysroot.tar.xz"
  SYSROOT="${GPU_CHECK_SYSROOT:-/tmp/grpo-sysroot}"
  SBUILD="${GPU_CHECK_SERVICES_BUILD:-/tmp/grpo-gpu-services-build}"
  [[ -n "${GPU_CHECK_TORCH_PREFIX:-}" ]] && TORCH_PREFIX="$GPU_CHECK_TORCH_PREFIX"
  if [[ $GPU == 0 && -n "$TORCH_PREFIX" ]] && $PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    GPU=1
  fi
  if [[ ! -f "$SYSROOT_ARCHIVE" ]]; then
    printf '{"step": "sysroot", "rc": -1, "seconds": 0, "note": "no .deps/gpu-sysroot.tar.xz: run scripts/prepare-gpu-deps.sh where Debian is"}\n' >> "$STEPS"
  elif step sysroot 120 "$ROOT/scripts/gpu-sysroot.sh" "$SYSROOT_ARCHIVE" "$SYSROOT"; then
    SERVICES_EXTRA=()
    for a in "${CMAKE_EXTRA[@]}"; do [[ "$a" == -DCMAKE_PREFIX_PATH=* ]] || SERVICES_EXTRA+=("$a"); done
    if step configure-services 240 cmake -C "$SYSROOT/deps.cmake" -S "$ROOT" -B "$SBUILD" -DCMAKE_BUILD_TYPE=Release \
         -DGRPO_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$SYSROOT/usr${TORCH_PREFIX:+;$TORCH_PREFIX}" "${SERVICES_EXTRA[@]}" &&
       step build-services "${GPU_CHECK_SERVICES_BUILD_S:-480}" cmake --build "$SBUILD" -j "$JOBS" \
         --target grpo grpo-math-worker grpo-bench-weights; then
      SBIN="$SBUILD/bin"
      if [[ $GPU == 1 ]]; then
        RUN_SETS=(learner.device=cuda learner.dtype=bf16 actor.device=cuda actor.dtype=bf16 run.actors=2
                  learner.max_steps=60 learner.eval_every=30)
      else
        RUN_SETS=(run.actors=2 learner.max_steps=6 learner.eval_every=3 pipeline.base_docs=2000
                  pipeline.test_tasks=40 eval.k=2)
      fi
      [[ -n "${GPU_CHECK_RUN_SETS:-}" ]] && read -r -a RUN_SETS <<< "$GPU_CHECK_RUN_SETS"
      SETS=(); for s in "${RUN_SETS[@]}"; do SETS+=(--set "$s"); done
      rm -rf "$OUTDIR/run"
      step grpo-run "${GPU_CHECK_RUN_S:-420}" "$SBIN/grpo" run --run-dir "$OUTDIR/run" --no-progress "${SETS[@]}"
      $PY "$ROOT/torch-only/report.py" --summarize-run "$OUTDIR/run" > "$OUTDIR/grpo_run.json" 2> "$OUTDIR/grpo_run.err"
      cat "$OUTDIR/grpo_run.json"
    fi
  fi
fi

# ---- 6. Weight distribution on this machine's cores: the bench built in step 7, else the
# bundle that brings its own libraries.
BUNDLE="$ROOT/.deps/bench-bundle"
if [[ -n "$SBIN" && -x "$SBIN/grpo-bench-weights" ]]; then
  step bench-weights 300 "$SBIN/grpo-bench-weights" --sizes small,0.5b --actors 1,2,4,8
  cp "$OUTDIR/bench-weights.log" "$OUTDIR/bench_weights.txt"
elif [[ -x "$BUNDLE/bin/grpo-bench-weights" && ( -z "$ONLY" || "$ONLY" == weights ) ]]; then
  step bench-weights 300 "$BUNDLE/lib/ld-linux-x86-64.so.2" --library-path "$BUNDLE/lib" \
    "$BUNDLE/bin/grpo-bench-weights" --sizes small,0.5b --actors 1,2,4,8
  cp "$OUTDIR/bench-weights.log" "$OUTDIR/bench_weights.txt"
fi

# ---- Report.
$PY "$ROOT/torch-only/report.py" --out "$OUTDIR" --gpu $GPU --transformers $HAVE_TRANSFORMERS --only "$ONLY" \
  --seconds $(( $(date +%s) - T0 ))
cp "$OUTDIR/gpu-report.json" "$FINAL/"
tar -C "$OUTDIR" -czf "$FINAL/logs.tar.gz" .
log "done in $(( $(date +%s) - T0 ))s: $FINAL/gpu-report.json, $FINAL/logs.tar.gz"
