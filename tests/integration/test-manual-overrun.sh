#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a manual cutover that overruns --max-downtime is
# called off and retried like an automatic one, and CUTOVER's reply waits
# for the flip that follows (issue 12, "Cut over when told").
#
# The filter's test flag migrate.first_freeze_read_delay_ms makes every
# read wait 200 ms while the source is frozen for the first time, so the
# first final pass cannot finish within --max-downtime 100.  Held ready
# under a light writer, CUTOVER is accepted; stm-send must call the first
# cutover off (cutover_overrun, the source thawed within the budget),
# cut over at a later pass end within the budget, and only then answer
# "OK flipped downtime_ms=N"; the destination equals the fenced source.
#
# --converge throttle: the scenario needs a final pass with blocks to read,
# whose reads are delayed, which mirroring (the default) does not leave.

source ./functions.sh
source "$abs_top_srcdir/tests/integration/command-socket.sh"
set -eu
requires_psk_migration

size_mib=32
cmd_sock="$tmp/send.cmd"
NBDKIT_OPTIONS="-D migrate.first_freeze_read_delay_ms=200" start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" 120 100 --rate=,2m
start_psk_recv --once
start_stm_send send --tls-psk "$tmp/keys.psk" --cutover manual \
    --command-socket "$cmd_sock" --max-downtime 100 --converge throttle
wait_for 30 "the command socket $cmd_sock" test -S "$cmd_sock"
wait_ready "$cmd_sock" 60
sleep 2
grep -q '"event":"freeze"' "$tmp/send.out" && fail "stm-send froze the source before CUTOVER"

reply="$(send_cmd "$cmd_sock" CUTOVER 60)" || fail "no reply to CUTOVER"
info "CUTOVER: $reply"
case "$reply" in
    'OK flipped downtime_ms='*) ;;
    *) fail "CUTOVER was answered: $reply" ;;
esac
downtime_ms="${reply#OK flipped downtime_ms=}"
downtime_ms="${downtime_ms%% *}"
[ "$downtime_ms" -le 100 ] || fail "the retried cutover held the guest for $downtime_ms ms (--max-downtime 100)"

wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS after CUTOVER"
wait_recv_once_done "after the manual cutover"
out="$tmp/send.out"
grep -q '"event":"cutover_overrun"' "$out" ||
    fail "the first cutover was not called off, though its reads were delayed past --max-downtime"
held="$(json_field "$out" cutover_overrun held_ms)"
info "the called-off cutover held guest writes for $held ms"
[ "${held%%.*}" -lt 150 ] || fail "the called-off cutover held guest writes for $held ms"
[ "$(grep -c '"event":"freeze"' "$out")" -ge 2 ] ||
    fail "stm-send did not freeze again after calling the cutover off"
grep '"event":"downtime"' "$out" | grep -q '"forced":false' ||
    fail "the retried cutover was forced: $(grep '"event":"downtime"' "$out")"
state_is fenced || fail "the source is not fenced: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the fenced source"
info "destination identical to the fenced source"
info "PASS"
