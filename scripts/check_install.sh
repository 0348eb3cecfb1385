#!/usr/bin/env bash
# Installs the build in build/ into a scratch prefix, then builds and runs
# a user's program against it twice: with CMake's find_package(actorflow)
# and with pkg-config.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cmake --install "$root/build" --prefix "$scratch/prefix" >/dev/null
# Each command substitution is assigned on its own: inside another
# command's arguments, set -e would pass over its failure.
lib=$(find "$scratch/prefix" -name 'libactorflow.so' | head -1)
[ -n "$lib" ] || { echo "install: no libactorflow.so installed" >&2; exit 1; }
libdir=$(dirname "$lib")

cmake -S "$root/tests/install" -B "$scratch/consumer" \
	-DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/consumer" >/dev/null
LD_LIBRARY_PATH="$libdir" "$scratch/consumer/hello" | grep -q "hello from an actor"
echo "install: find_package(actorflow) works"

pcfile=$(find "$scratch/prefix" -name actorflow.pc | head -1)
[ -n "$pcfile" ] || { echo "install: no actorflow.pc installed" >&2; exit 1; }
pc=$(dirname "$pcfile")
flags=$(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs actorflow)
# shellcheck disable=SC2086
cc "$root/tests/install/hello.c" -o "$scratch/hello-pc" $flags
LD_LIBRARY_PATH="$libdir" "$scratch/hello-pc" | grep -q "hello from an actor"
echo "install: pkg-config actorflow works"
