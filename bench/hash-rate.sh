#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: the hashing rate of the keyed hashes considered for
# block comparison (proto/block_hash.h), on 64 KiB units, one core.
#
#   bench/hash-rate.sh [RUNS]        (default 3)
#
# Builds bench/hash-rate.c with GnuTLS (and libb2 if its header is there)
# into a temporary directory and runs it RUNS times.
set -eu
runs="${1:-3}"
dir="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
b2=()
[ -e /usr/include/blake2.h ] && b2=(-DHAVE_LIBB2 -lb2)
cc -O2 -o "$tmp/hash-rate" "$dir/hash-rate.c" $(pkg-config --cflags --libs gnutls) "${b2[@]}"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
for (( i = 1; i <= runs; i++ )); do
    echo "run $i of $runs"
    "$tmp/hash-rate"
done
