#!/usr/bin/env bash
# Prepares what torch-only/ needs besides LibTorch, from Debian packages, into
# .deps/torch-only (ignored by git, ~15 MB, small enough to travel with the tree to a
# machine that has a LibTorch but no Debian packages, such as a lent GPU machine):
#   abseil-cpp/   Debian's abseil source package (the version libabsl-dev ships, with
#                 Debian's patches), built from source there against that LibTorch's ABI
#   googletest/   Debian's googletest sources (/usr/src/googletest)
#   include/      nlohmann/json (header-only)
# Usage: scripts/prepare-torch-only-deps.sh [DEST]   (idempotent; needs root for apt)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/.deps/torch-only}"
if [[ -f "$DEST/READY" ]]; then
  echo "torch-only deps: $DEST is ready"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
need=()
[[ -d /usr/src/googletest/googletest ]] || need+=(googletest)
[[ -f /usr/include/nlohmann/json.hpp ]] || need+=(nlohmann-json3-dev)
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
if ((${#need[@]})); then apt-get install -y --no-install-recommends "${need[@]}"; fi

# Abseil's source: deb-src of the same archive the binaries come from.
SRC_LIST=/etc/apt/sources.list.d/grpo-deb-src.sources
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > "$SRC_LIST" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt-get update -qq
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && chmod 777 . && apt-get source --download-only abseil >/dev/null && dpkg-source -x abseil_*.dsc abseil >/dev/null)

rm -rf "$DEST"
mkdir -p "$DEST/include"
# Only what a build needs: sources and CMake files, not the tests' data or CI configs.
cp -r "$WORK/abseil" "$DEST/abseil-cpp"
rm -rf "$DEST/abseil-cpp/.git" "$DEST/abseil-cpp/ci" "$DEST/abseil-cpp/debian" "$DEST/abseil-cpp/.pc"
cp -r /usr/src/googletest "$DEST/googletest"
cp -r /usr/include/nlohmann "$DEST/include/"
echo "abseil $(basename "$WORK"/abseil_*.dsc .dsc); googletest $(dpkg-query -W -f '${Version}' googletest); nlohmann $(dpkg-query -W -f '${Version}' nlohmann-json3-dev)" > "$DEST/READY"
du -sh "$DEST"
cat "$DEST/READY"
