#!/usr/bin/env bash
# Packs grpo-bench-weights with every shared library it loads (glibc and its loader
# included) into the ignored .deps/bench-bundle, so scripts/gpu-check.sh can run it on
# a lent many-core machine that has no Debian packages (no gRPC, protobuf or Abseil):
#   .deps/bench-bundle/lib/ld-linux-x86-64.so.2 --library-path .deps/bench-bundle/lib \
#       .deps/bench-bundle/bin/grpo-bench-weights ...
# Needs a built build/bin/grpo-bench-weights. About 26 MB.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${1:-$ROOT/build/bin/grpo-bench-weights}"
OUT="$ROOT/.deps/bench-bundle"
[[ -x "$BIN" ]] || { echo "prepare-bench-bundle: $BIN is not built (make -C build grpo-bench-weights)" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib"
cp "$BIN" "$OUT/bin/"
ldd "$BIN" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}' | while read -r lib; do
  cp -L "$lib" "$OUT/lib/"
done
# The loader under the name the command line uses.
loader="$(ldd "$BIN" | awk '/ld-linux/{print ($3 ~ /^\//) ? $3 : $1}' | head -n 1)"
cp -L "$loader" "$OUT/lib/ld-linux-x86-64.so.2"
"$OUT/lib/ld-linux-x86-64.so.2" --library-path "$OUT/lib" "$OUT/bin/grpo-bench-weights" --sizes none >/dev/null 2>&1 || true
echo "prepare-bench-bundle: $(du -sh "$OUT" | cut -f1) in $OUT"
