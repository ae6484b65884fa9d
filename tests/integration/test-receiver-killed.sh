#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the receiver dies (SIGKILL) in the middle of the
# full pass while the guest writes, and does not come back.  stm-send
# tries to reconnect (and says so) for --retry-timeout, then must exit 1
# and say that the source is thawed / still authoritative; the filter must
# be tracking and the guest's writes must keep completing.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=128
start_psk_source "$size_mib"
start_writer_and_wait 64m 90 0 --rate=,1m

start_psk_recv

# At 8 MiB/s the full pass of 128 MiB takes about 16 s.
start_stm_send send --tls-psk "$tmp/keys.psk" --rate 8388608 --retry-timeout 3

# The first SNAPSHOT starts the full pass.
wait_for 30 "stm-send to start its first pass" generation_at_least 1
sleep 2
alive "$SEND_PID" || fail "stm-send ended before the receiver could be killed"
state_is tracking || fail "the source is not tracking during the full pass"

info "killing stm-recv (pid $RECV_PID) mid-pass"
{ kill -KILL "$RECV_PID"; wait "$RECV_PID"; } 2>/dev/null || true
wait_exit "$SEND_PID" 60
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS after losing the receiver, not 1"
grep -q '"event":"reconnecting"' "$tmp/send.out" ||
    fail "stm-send did not report that it was reconnecting"
grep -q 'retry-timeout' "$tmp/send.err" ||
    fail "stm-send's error does not say it gave up after --retry-timeout: $(cat "$tmp/send.err")"
grep -Eiq 'thaw|authoritative' "$tmp/send.err" ||
    fail "stm-send's error does not say the source is thawed: $(cat "$tmp/send.err")"
info "stm-send said: $(grep -Ei 'thaw|authoritative' "$tmp/send.err" | head -n 1)"

state_is tracking || fail "the source is not tracking after the failure: $(ctl STATUS)"
w="$(status_writes)"
wait_for 20 "guest writes to keep completing" writes_above "$w"
alive "$WRITER_PID" || fail "the guest writer stopped"
nbd_write 4M 64k 0x6b || fail "a write to the source failed after the sender's failure"
info "PASS"
