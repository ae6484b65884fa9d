#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --rate caps the average over a pass.  A 16 MiB
# image with no guest writing is copied with --rate 3M: the full pass
# (bytes over seconds in its pass_end event) must average within 3% of
# 3 MiB/s.  Paying for each read after it was sent used to put this pass
# at about 3.4 MiB/s (the last read unpaid, the initial burst on top).

source ./functions.sh
set -eu
requires_psk_migration

start_psk_source 16
migrate_psk_once 60 --rate 3M

out="$tmp/send.out"
line="$(grep '"event":"pass_end"' "$out" | head -n 1)"
bytes="$(printf '%s\n' "$line" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p')"
seconds="$(printf '%s\n' "$line" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')"
[ -n "$bytes" ] && [ -n "$seconds" ] || fail "no bytes or seconds in the first pass_end: $line"
rate="$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.3f", b / s / 1048576 }')"
info "the full pass sent $bytes bytes in $seconds s: $rate MiB/s (--rate 3M)"
awk -v r="$rate" 'BEGIN { exit !(r <= 3 * 1.03) }' ||
    fail "the full pass averaged $rate MiB/s, over --rate 3M by more than 3%"
awk -v r="$rate" 'BEGIN { exit !(r >= 3 * 0.85) }' ||
    fail "the full pass averaged only $rate MiB/s with --rate 3M"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"
info "PASS"
