#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: with --converge mirror, --rate caps the sum of the
# pass's data and the mirrored guest writes.  A 16 MiB image is copied
# with --rate 4M while a guest writes 1 MiB/s of 4k random writes: the
# whole run (bytes_sent over its seconds, the TLS handshake and commit
# included, so a little under the cap) must stay within 5% of 4 MiB/s,
# the guest's writes must have been mirrored, and the destination must
# equal the fenced source.

source ./functions.sh
set -eu
requires_psk_migration

start_psk_source 16
start_writer_and_wait 16m 120 0 --rate=,1m
migrate_psk_once 60 --converge mirror --rate 4M

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"

out="$tmp/send.out"
bytes="$(json_field "$out" done bytes_sent)"
seconds="$(json_field "$out" done seconds)"
mirror="$(json_field "$out" done mirror_bytes)"
[ -n "$bytes" ] && [ -n "$seconds" ] && [ -n "$mirror" ] ||
    fail "the summary lacks bytes_sent, seconds or mirror_bytes: $(tail -n 1 "$out")"
[ "$mirror" -gt 0 ] || fail "no guest write was mirrored"
rate="$(awk -v b="$bytes" -v s="$seconds" 'BEGIN { printf "%.3f", b / s / 1048576 }')"
info "sent $bytes bytes ($mirror mirrored) in $seconds s: $rate MiB/s (--rate 4M)"
awk -v r="$rate" 'BEGIN { exit !(r <= 4 * 1.05) }' ||
    fail "the migration averaged $rate MiB/s, over --rate 4M by more than 5%"
info "PASS"
