#!/usr/bin/env bash
# Unpacks .deps/gpu-sysroot.tar.xz (scripts/prepare-gpu-deps.sh) on a machine without
# Debian's packages and writes what a CMake configure of the whole project needs to use
# it instead of the system's: a pkg-config and a protoc that run from the unpacked tree,
# and an initial-cache file for `cmake -C`.
#
#   scripts/gpu-sysroot.sh [ARCHIVE] [DIR]    prints DIR/deps.cmake's path
#   cmake -C DIR/deps.cmake -DCMAKE_PREFIX_PATH="DIR/usr;<torch's prefix>" -S . -B build
#
# The programs built against it find its libraries through their RPATH (DT_RPATH, so
# that the libraries' own dependencies resolve there too); nothing is installed into /.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARCHIVE="${1:-$ROOT/.deps/gpu-sysroot.tar.xz}"
DIR="${2:-/tmp/grpo-sysroot}"
[[ -f "$ARCHIVE" ]] || { echo "gpu-sysroot: $ARCHIVE is missing: run scripts/prepare-gpu-deps.sh where Debian is" >&2; exit 1; }
if [[ ! -f "$DIR/.unpacked" || "$ARCHIVE" -nt "$DIR/.unpacked" ]]; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  tar -C "$DIR" -xJf "$ARCHIVE"
  touch "$DIR/.unpacked"
fi
LIB="$DIR/usr/lib/x86_64-linux-gnu"
mkdir -p "$DIR/wrap"
cat > "$DIR/wrap/pkg-config" <<EOF
#!/bin/sh
# pkg-config over the unpacked tree only: its .pc files say prefix=/usr, the sysroot
# variable puts DIR in front of every -I and -L they give.
export PKG_CONFIG_LIBDIR="$LIB/pkgconfig:$DIR/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$DIR"
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$DIR/usr/bin/pkgconf" "\$@"
EOF
cat > "$DIR/wrap/protoc" <<EOF
#!/bin/sh
# Debian's protoc with its libraries; grpc_cpp_plugin, which it starts, inherits them.
export LD_LIBRARY_PATH="$LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$DIR/usr/bin/protoc" "\$@"
EOF
chmod +x "$DIR/wrap/pkg-config" "$DIR/wrap/protoc"
LINK="-Wl,--disable-new-dtags -Wl,-rpath,$LIB -Wl,-rpath-link,$LIB"
cat > "$DIR/deps.cmake" <<EOF
# Written by scripts/gpu-sysroot.sh: build against the Debian libraries unpacked in $DIR.
set(PKG_CONFIG_EXECUTABLE "$DIR/wrap/pkg-config" CACHE FILEPATH "")
set(Protobuf_PROTOC_EXECUTABLE "$DIR/wrap/protoc" CACHE FILEPATH "")
set(GRPC_CPP_PLUGIN "$DIR/usr/bin/grpc_cpp_plugin" CACHE FILEPATH "")
set(CMAKE_EXE_LINKER_FLAGS "$LINK" CACHE STRING "")
set(CMAKE_SHARED_LINKER_FLAGS "$LINK" CACHE STRING "")
# Abseil 20220623's headers use uint8_t without <cstdint>, which GCC 13's libstdc++ no
# longer brings in through other headers (torch-only/ does the same for its Abseil).
set(CMAKE_CXX_FLAGS "-include cstdint" CACHE STRING "")
EOF
# The protoc it will run must start here (a missing library shows now, not mid-build).
"$DIR/wrap/protoc" --version > /dev/null || { echo "gpu-sysroot: $DIR/wrap/protoc does not run" >&2; exit 1; }
echo "$DIR/deps.cmake"
