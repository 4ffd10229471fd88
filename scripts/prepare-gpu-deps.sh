#!/usr/bin/env bash
# Packs what the whole project needs besides LibTorch, CMake and a C++ compiler (gRPC,
# protobuf with protoc and grpc_cpp_plugin, Abseil, prometheus-cpp, yaml-cpp, spdlog,
# CLI11, GoogleTest, GiNaC, PCRE2, ICU, ISA-L, libseccomp, pkg-config...) from Debian's
# packages into one ignored archive, .deps/gpu-sysroot.tar.xz (about 20 MB), small
# enough to travel with the tree to a lent GPU machine, which has a CUDA LibTorch but no
# Debian packages and no network (issue #22). There, scripts/gpu-sysroot.sh unpacks it
# and prints the CMake arguments that build the services against it.
#
# The archive holds Debian's own files (headers, shared libraries, CMake and pkg-config
# files, the protoc and grpc_cpp_plugin programs), less what a build never reads: static
# libraries (GoogleTest's excepted: it ships only those), documentation, manual pages.
# Debian 12's libraries need glibc 2.36 and libstdc++ from GCC 12 or newer; the GPU
# image's Ubuntu 24.04 has 2.39 and GCC 13. LibTorch 2.x wheels use the C++11 string ABI,
# as Debian does, so the two mix in one process.
#
# Usage: scripts/prepare-gpu-deps.sh [ARCHIVE]   (needs apt; run where Debian is)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARCHIVE="${1:-$ROOT/.deps/gpu-sysroot.tar.xz}"
# Every package a build or a run there reads: the -dev packages the CMake files name, the
# libraries they link, and the runtime libraries of protoc and grpc_cpp_plugin. The CMake
# package files of gRPC and prometheus-cpp look for OpenSSL, c-ares, re2, civetweb and
# CURL too, and check that every library they name exists, so those come along.
PACKAGES=(
  libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 protobuf-compiler-grpc
  libprotobuf-dev libprotobuf32 libprotobuf-lite32 libprotoc32 protobuf-compiler
  libabsl-dev libabsl20220623
  prometheus-cpp-dev libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0
  libcivetweb-dev libcivetweb1 civetweb libcurl4-openssl-dev libcurl4
  libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libcli11-dev libgtest-dev libgmock-dev googletest
  libseccomp-dev libseccomp2 libginac-dev libginac11 libcln-dev libcln6 libgmp-dev libgmp10 libgmpxx4ldbl
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libicu-dev libicu72
  libisal-dev libisal2 libzstd-dev libzstd1 zlib1g-dev zlib1g libssl-dev libssl3 libc-ares-dev libc-ares2 libre2-dev libre2-9
  pkgconf pkgconf-bin libpkgconf3
)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/root"
chmod 777 "$WORK/debs"
(cd "$WORK/debs" && apt-get download -q "${PACKAGES[@]}" >/dev/null 2>"$WORK/apt.log") || {
  cat "$WORK/apt.log" >&2
  echo "prepare-gpu-deps: apt-get download failed (is Debian's archive reachable? apt-get update first)" >&2
  exit 1
}
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/root"; done
R="$WORK/root"
rm -rf "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/lintian" "$R/usr/share/bug" "$R/usr/share/info"
# Static libraries: never linked here (the shared ones are), except GoogleTest's.
find "$R" -name '*.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' -delete
# Absolute symbolic links would point into the GPU machine's own /usr: make them relative.
find "$R" -type l | while read -r link; do
  target="$(readlink "$link")"
  if [[ "$target" == /* ]]; then
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$R$target")" "$link"
  fi
done
# What was packed, for the report.
for deb in "$WORK"/debs/*.deb; do
  echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)"
done > "$R/GRPO_SYSROOT_PACKAGES"
mkdir -p "$(dirname "$ARCHIVE")"
tar -C "$R" -I "xz -T0" -cf "$ARCHIVE.tmp" . && mv "$ARCHIVE.tmp" "$ARCHIVE"
echo "prepare-gpu-deps: $(du -h "$ARCHIVE" | cut -f1) in $ARCHIVE, ${#PACKAGES[@]} packages ($(du -sh "$R" | cut -f1) unpacked)"
