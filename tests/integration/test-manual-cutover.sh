#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: --cutover manual held ready under a writer, then
# cut over by hand (issue 12, "Cut over when told").
#
# A guest stand-in (fio, 4k random writes at 2 MiB/s) writes to the
# source throughout.  stm-send converges and then stays ready for about
# 25 s: STATUS on its command socket says phase=ready ready=1, it emits
# periodic ready events, the source stays tracking (never frozen) and the
# guest's writes keep completing.  CUTOVER through socat is answered
# "OK flipped downtime_ms=N" with N within --max-downtime, stm-send exits
# 0, and the destination equals the fenced source byte for byte.

: "${STM_TEST_TIMEOUT:=300}"
source ./functions.sh
source "$abs_top_srcdir/tests/integration/command-socket.sh"
set -eu
requires_psk_migration

# STM_TEST_HOLD_S and STM_TEST_MAX_DOWNTIME_MS hold it longer, or against
# a tighter budget, by hand (docs/performance.md, "Held ready").
size_mib=64
hold_s="${STM_TEST_HOLD_S:-25}"
max_downtime_ms="${STM_TEST_MAX_DOWNTIME_MS:-500}"
cmd_sock="$tmp/send.cmd"
start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" $(( hold_s + 175 )) 0 --rate=,2m
start_psk_recv --once
start_stm_send send --tls-psk "$tmp/keys.psk" --cutover manual \
    --command-socket "$cmd_sock" --max-downtime "$max_downtime_ms"
wait_for 30 "the command socket $cmd_sock" test -S "$cmd_sock"
mode="$(stat -c %a "$cmd_sock")"
[ "$mode" = 600 ] || fail "the command socket has mode $mode, not 600"

wait_ready "$cmd_sock" 120
info "ready: $(send_cmd "$cmd_sock" STATUS)"

# Held ready: the guest keeps writing to a source that is never frozen.
writes_start="$(status_writes)"
end=$(( SECONDS + hold_s ))
while [ "$SECONDS" -lt "$end" ]; do
    alive "$SEND_PID" || fail "stm-send exited while held ready"
    alive "$WRITER_PID" || fail "the guest writer stopped while stm-send was held ready"
    st="$(ctl STATUS)"
    case "$st" in *' state=tracking '*) ;; *) fail "the source is not tracking while ready: $st" ;; esac
    reply="$(send_cmd "$cmd_sock" STATUS)" || fail "no reply to STATUS while ready"
    case "$reply" in
        'OK phase='*' cutover=manual '*) ;;
        *) fail "unexpected STATUS reply while ready: $reply" ;;
    esac
    sleep 1
done
writes_end="$(status_writes)"
info "guest writes while held ready for $hold_s s: $(( writes_end - writes_start ))"
[ "$writes_end" -gt $(( writes_start + 100 )) ] ||
    fail "the guest wrote too little while held ready ($writes_start -> $writes_end)"
grep -q '"event":"freeze"' "$tmp/send.out" &&
    fail "stm-send froze the source before CUTOVER"
nready="$(grep -c '"event":"ready"' "$tmp/send.out" || true)"
[ "$nready" -ge $(( hold_s / 2 )) ] ||
    fail "only $nready ready events in $hold_s s held ready (one a second expected)"
grep '"event":"ready"' "$tmp/send.out" | grep -q '"ready":true' ||
    fail "no ready event says ready"
wait_ready "$cmd_sock" 60

# A second client sees the cutover in progress while the first waits.
reply="$(send_cmd "$cmd_sock" CUTOVER 60)" || fail "no reply to CUTOVER"
info "CUTOVER: $reply"
case "$reply" in
    'OK flipped downtime_ms='*) ;;
    *) fail "CUTOVER was answered: $reply" ;;
esac
downtime_ms="${reply#OK flipped downtime_ms=}"
downtime_ms="${downtime_ms%% *}"
[ "$downtime_ms" -le "$max_downtime_ms" ] ||
    fail "the manual cutover held the guest for $downtime_ms ms, over --max-downtime $max_downtime_ms"

wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS after CUTOVER"
wait_recv_once_done "after the manual cutover"
[ ! -e "$cmd_sock" ] || fail "stm-send left its command socket $cmd_sock behind"
state_is fenced || fail "the source is not fenced after CUTOVER: $(ctl STATUS)"
wait_exit "$WRITER_PID" 30
cmp "$tmp/src.img" "$tmp/dst.img" ||
    fail "the destination differs from the fenced source"
info "destination identical to the fenced source"

# The events: ready before the freeze, the cutover not forced, and the
# summary's downtime the one CUTOVER reported.
ev_downtime="$(json_field "$tmp/send.out" downtime downtime_ms)"
forced="$(grep '"event":"downtime"' "$tmp/send.out" | grep -c '"forced":true' || true)"
[ "$forced" -eq 0 ] || fail "the manual cutover was forced"
info "downtime: CUTOVER said $downtime_ms ms, the downtime event $ev_downtime ms"
info "passes: $(json_field "$tmp/send.out" done passes), $nready ready events; stderr:"
grep -v '^$' "$tmp/send.err" | head -n 5
# Held ready is no burden on the guest or the machine: a guest writing
# 2 MiB/s to a loopback destination is never throttled, and the passes
# that keep the destination current are paced (ready_policy.h), not run
# back to back.
# (A throttle set to converge before it was ready is released: its
# event says 0.)
held_throttle="$(sed -n '/"event":"ready"/,$p' "$tmp/send.out" |
    grep '"event":"throttle"' | grep -v '"bytes_per_second":0,' | tail -n 1)"
[ -z "$held_throttle" ] || fail "the guest was throttled while held ready: $held_throttle"
passes="$(json_field "$tmp/send.out" done passes)"
[ "$passes" -le $(( hold_s * 10 + 100 )) ] ||
    fail "$passes passes while held ready for $hold_s s: passes run back to back"
first_ready="$(grep -n '"event":"ready"' "$tmp/send.out" | head -n 1 | cut -d: -f1)"
first_freeze="$(grep -n '"event":"freeze"' "$tmp/send.out" | head -n 1 | cut -d: -f1)"
[ "$first_ready" -lt "$first_freeze" ] || fail "no ready event before the freeze"
info "PASS"
