#!/usr/bin/env bash
# Installs every Debian package actorflow needs to build, test, fuzz and
# benchmark. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config git
	libzmq3-dev libmsgpack-dev libcmocka-dev
	clang libclang-rt-14-dev clang-format valgrind
	python3 g++ libcaf-dev
	libcurl4-openssl-dev libcjson-dev libyajl-dev libsqlite3-dev libjansson-dev libmicrohttpd-dev
	nghttp2-proxy
	python3-aiohttp python3-matplotlib
	python3-zmq python3-msgpack
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

sudo=""
uid=$(id -u)
if [ "$uid" -ne 0 ]; then
	sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
