#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a live migration with the filter tracking 4K
# blocks (migrate-block=4K).  A guest writing 4k blocks at random leaves
# dirty blocks a few blocks apart; stm-send reads them several at a time
# across the clean gaps between them and sends only the dirty parts.
# The destination must equal the fenced source byte for byte, and the
# receiver must get exactly the dirty blocks (the gaps are not sent).

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
start_psk_source "$size_mib" migrate-block=4K
start_writer_and_wait "${size_mib}m" 120 1000 --rate=,8m

migrate_psk_once 90

out="$tmp/send.out"
[ "$(json_field "$out" start block)" = 4096 ] ||
    fail "stm-send did not see 4K blocks: $(grep '"event":"start"' "$out")"
passes="$(json_field "$out" done passes)"
[ "$passes" -ge 2 ] || fail "only $passes pass(es): nothing was dirty after the full pass"
# Every pass after the full one sends exactly the dirty blocks it was
# handed, though it reads across the clean gaps between them: what the
# receiver got in pass 2 (data and zeroes) is what the sender's pass 2
# covered, whole 4K blocks, far less than the image.
second="$(grep '"event":"pass_begin"' "$out" | sed -n '2s/.*"bytes":\([0-9]*\).*/\1/p')"
got="$(grep '"event":"pass_end"' "$tmp/recv.out" | sed -n '2s/.*"bytes_received":\([0-9]*\),"bytes_zeroed":\([0-9]*\).*/\1 \2/p')"
info "passes $passes; pass 2 covered $second bytes, the receiver got $got (data, zeroes)"
[ -n "$got" ] || fail "no pass 2 in the receiver's events"
set -- $got
[ $(( $1 + $2 )) -eq "$second" ] ||
    fail "the receiver got $(( $1 + $2 )) bytes in pass 2 for $second dirty: gaps were sent"
[ $(( second % 4096 )) -eq 0 ] || fail "pass 2 covered $second bytes, not whole 4K blocks"
[ "$second" -lt $(( size_mib * 1024 * 1024 / 2 )) ] ||
    fail "pass 2 covered $second bytes: more than half the image"

state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "destination identical to the fenced source"
info "PASS"
