#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-send --verify compares every disk with its
# destination by hashes at the freeze, before the commit.
#
# 1. A migration under a guest writer, with --verify: the verification
#    finds the destination identical (a "verify" event), the migration
#    flips, and the destination equals the source.
# 2. A destination damaged behind stm-recv's back while the migration is
#    held ready (--cutover manual): one byte of the image file is flipped
#    where the guest does not write, so no pass sends it again.  At
#    CUTOVER the verification finds it: a "difference" event whose range
#    holds the byte, exit 1, the source thawed (tracking, serving writes)
#    and the destination never committed.

source ./functions.sh
source "$abs_top_srcdir/tests/integration/command-socket.sh"
set -eu
requires_psk_migration

size_mib=64
start_psk_source "$size_mib"
start_writer_and_wait 4m 60 0 --rate=,2m

# 1. Identical.
migrate_psk_once 120 --verify
grep -q '"event":"verify".*"result":"identical"' "$tmp/send.out" ||
    fail "no verify event saying identical"
grep -q '"event":"difference"' "$tmp/send.out" && fail "a difference was reported"
grep -q -- "--verify: .* identical to the frozen source" "$tmp/send.err" ||
    fail "stm-send did not say the destination was verified"
state_is fenced || fail "the source is not fenced after a verified migration"
kill "$WRITER_PID" 2>/dev/null || true
wait_exit "$WRITER_PID" 30 || true
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs after a verified migration"
info "verified migration: identical"

# 2. Damaged: a new source and destination.
stop_nbdkit
rm -f "$tmp/dst.img" "$tmp/dst.img.stm-state"
mv "$tmp/recv.out" "$tmp/recv-1.out"
start_source "$size_mib"
start_writer_and_wait 4m 120 0 --rate=,2m
start_psk_recv
cmd_sock="$tmp/send.cmd"
start_stm_send send2 --tls-psk "$tmp/keys.psk" --verify --cutover manual \
    --command-socket "$cmd_sock"
wait_for 30 "the command socket $cmd_sock" test -S "$cmd_sock"
wait_ready "$cmd_sock" 60
# Past the writer's 4 MiB, in data the first pass sent and made durable.
offset=$(( 40 * 1024 * 1024 + RANDOM * 7 ))
byte="$(od -An -tu1 -j "$offset" -N1 "$tmp/dst.img" | tr -d ' ')"
printf "$(printf '\\%03o' $(( byte ^ 0xff )))" |
    dd of="$tmp/dst.img" bs=1 seek="$offset" conv=notrunc status=none
info "flipped the byte at $offset of the destination behind stm-recv's back"
reply="$(send_cmd "$cmd_sock" CUTOVER 60)" || fail "no reply to CUTOVER"
info "CUTOVER: $reply"
wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited $EXIT_STATUS after a failed verification, not 1"
line="$(grep '"event":"difference"' "$tmp/send2.out")" ||
    fail "no difference event for the damaged destination"
[ "$(printf '%s\n' "$line" | wc -l)" -eq 1 ] || fail "more than one difference: $line"
d_off="$(printf '%s' "$line" | sed -n 's/.*"offset":\([0-9]*\).*/\1/p')"
d_len="$(printf '%s' "$line" | sed -n 's/.*"length":\([0-9]*\).*/\1/p')"
[ "$d_off" -le "$offset" ] && [ "$offset" -lt $(( d_off + d_len )) ] ||
    fail "the difference ($d_off, $d_len) does not hold the flipped byte at $offset"
grep -q -- "--verify: the destination .* differs from the frozen source in 1 range" \
    "$tmp/send2.err" || fail "stm-send did not name the difference in its error"
grep -q "thawed" "$tmp/send2.err" || fail "stm-send did not say the source is thawed"
state_is tracking || fail "the source is not tracking after a failed verification"
nbd_write 0 4096 0x33 || fail "the thawed source does not serve writes"
grep -q '"event":"commit"' "$tmp/recv.out" && fail "stm-recv committed a destination that failed verification"
info "PASS"
