#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-send --converge mirror-sync, where a guest
# write is acknowledged once the destination has it durable.
#
# 1. Under an unthrottled writer (fio, 4k random writes, iodepth 8):
#    stm-send exits 0, the destination equals the fenced source, the
#    filter's STATUS says mirror=mirror-sync while the migration runs and
#    reports mirror_sync_timeouts, and the summary says mirror-sync.
# 2. With --mirror-wait 300, the receiver is stopped (SIGSTOP) for 2 s in
#    the middle of the pass: the guest's writes wait at most about the
#    300 ms (then they are marked dirty), so fio's longest write stays
#    under 300 ms plus a 2 s margin for a loaded machine, well below the
#    stall it would see if writes waited for the receiver; the filter
#    counts sync timeouts; after SIGCONT the migration completes and the
#    destination equals the fenced source.

source ./functions.sh
set -eu
requires_psk_migration
requires python3 --version

# mirroring_sync: does the filter's STATUS say mirror=mirror-sync?
mirroring_sync () { [ "$(status_field mirror)" = mirror-sync ]; }

# check_result NAME: stm-send ($SEND_PID) succeeded, the source is
# fenced and the destination equals it.
check_result ()
{
    local name="$1"
    # Generous: under a loaded machine mirror-sync waits on every fdatasync.
    wait_exit "$SEND_PID" 90
    [ "$EXIT_STATUS" -eq 0 ] ||
        fail "$name: stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send.err")"
    wait_recv_once_done "after the migration ($name)"
    state_is fenced || fail "$name: the source is not fenced: $(ctl STATUS)"
    grep '"event":"done"' "$tmp/send.out" | grep -q '"mirror":"mirror-sync"' ||
        fail "$name: the summary does not say mirror-sync: $(tail -n 1 "$tmp/send.out")"
    cmp "$tmp/src.img" "$tmp/dst.img" ||
        fail "$name: the destination differs from the fenced source"
    info "$name: destination identical; $(ctl STATUS | tr ' ' '\n' |
        grep -E '^(writes|mirror_(entries|fallbacks|sync_timeouts|requeued))=' | tr '\n' ' ')"
}

# 1. An unthrottled writer throughout.
start_psk_source 32
start_writer_and_wait 32m 120 0
start_psk_recv --once
start_stm_send send --tls-psk "$tmp/keys.psk" --converge mirror-sync \
    --rate 16777216 --max-passes 10
wait_for 20 "the filter to say mirror=mirror-sync during the migration" mirroring_sync
alive "$SEND_PID" || fail "unthrottled: stm-send ended before the filter was seen mirroring"
t="$(status_field mirror_sync_timeouts)"
case "$t" in
    [0-9]*) info "unthrottled: mirror=mirror-sync, mirror_sync_timeouts=$t during the migration" ;;
    *) fail "unthrottled: STATUS does not report mirror_sync_timeouts: $(ctl STATUS)" ;;
esac
check_result unthrottled
[ "$(status_field mirror_entries)" -gt 0 ] || fail "unthrottled: the filter mirrored no write"
wait_exit "$WRITER_PID" 30
stop_nbdkit
rm -f "$tmp/dst.img" "$tmp"/dst.img.*

# 2. The receiver stopped for 2 s in the pass; writes wait 300 ms at most.
wait_ms=300
start_psk_source 64
start_writer_and_wait 64m 7 0 --output-format=json
start_psk_recv --once
# At 8 MiB/s the pass lasts about 8 s, longer than the writer runs.
start_stm_send send --tls-psk "$tmp/keys.psk" --converge mirror-sync \
    --mirror-wait "$wait_ms" --rate 8388608 --max-passes 10
wait_for 20 "stm-send to send 8 MiB" sent_at_least $(( 8 << 20 ))
mirroring_sync || fail "stopped: the filter is not in mirror-sync: $(ctl STATUS)"
timeouts_before="$(status_field mirror_sync_timeouts)"
info "stopping stm-recv (pid $RECV_PID) for 2 s"
kill -STOP "$RECV_PID"
sleep 2
timeouts_stopped="$(status_field mirror_sync_timeouts)"
kill -CONT "$RECV_PID"
info "stm-recv continued; mirror_sync_timeouts $timeouts_before before the stop, $timeouts_stopped after 2 s stopped"
[ "$timeouts_stopped" -gt "$timeouts_before" ] ||
    fail "stopped: no mirror-sync wait timed out while the receiver was stopped"
wait_exit "$WRITER_PID" 30
[ "$EXIT_STATUS" -eq 0 ] ||
    fail "stopped: the guest's writes failed (fio exited with $EXIT_STATUS): $(tail -n 3 "$tmp/fio.err")"
alive "$SEND_PID" || fail "stopped: the migration ended before the writer: the writer did not cover the stall"
max_ms="$(fio_write_max_ms "$tmp/fio.log")"
info "stopped: the guest's longest write took $max_ms ms (--mirror-wait $wait_ms)"
[ "$max_ms" -lt $(( wait_ms + 2000 )) ] ||
    fail "stopped: a guest write took $max_ms ms with the receiver stopped, beyond --mirror-wait $wait_ms ms + 2 s"
check_result stopped
info "PASS"
