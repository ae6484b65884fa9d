#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the point of no return tells the truth.  The
# commit is two-phase: COMMIT leaves the destination *prepared*, and only
# the sender's word after a successful FLIP makes it *final*; a flip that
# fails makes it *superseded*.  Each case runs with stm-recv --once and
# without:
#  A. a flip that fails after the commit (a forward target that refuses
#     the connection): stm-send exits 1 with the source thawed and
#     serving, the receiver records superseded and never exits 0;
#  B. stm-send killed between COMMITTED and FLIP: the receiver stays
#     prepared and keeps waiting (even with --once), the source thaws; a
#     stm-send run again finishes the migration, and only then is the
#     destination final (--once exits 0);
#  C. the filter thaws by itself (migrate-freeze-timeout) while the final
#     pass is held up: stm-send sees the freeze is gone before COMMIT and
#     commits nothing; the destination stays incomplete;
#  D. stm-send killed right after the flip: the source is fenced, the
#     receiver prepared; the same command run again says the migration had
#     already completed, records it final and exits 0.
# Before the two-phase commit, A, B and C left stm-recv saying "complete"
# (state file, done event, --once exit 0) for a destination the source
# kept writing past, and D's restarted stm-send exited 1 (which says the
# source is thawed and serving) with the source fenced.
#
# --converge throttle: the scenario needs in case C, a final pass with blocks to read,
# which mirroring (the default) does not leave.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=16
state="$tmp/dst.img.stm-state"
state_is_recorded () { grep -qx "state $1" "$state"; }

# fresh CASE [FILTER-PARAM...]: a new source (random image, new nbdkit),
# no destination, a new key.
fresh ()
{
    local name="$1"
    shift
    if [ -n "${NBDKIT_PID:-}" ]; then stop_nbdkit; fi
    rm -f "$tmp/dst.img" "$state"
    recv_mark=0
    [ -e "$tmp/recv.out" ] && recv_mark="$(wc -l < "$tmp/recv.out")"
    info "---- case $name"
    start_psk_source "$size_mib" "$@"
    nbd_touch
}

# recv_events: the receiver's JSON events of the current case (recv.out
# collects every receiver's).
recv_events () { tail -n +"$(( recv_mark + 1 ))" "$tmp/recv.out"; }

# stop_recv: end a receiver that is still running (SIGTERM).
stop_recv ()
{
    if alive "$RECV_PID"; then
        kill -TERM "$RECV_PID" 2>/dev/null || true
        wait_exit "$RECV_PID" 10
    fi
}

# recv_did_not_succeed ONCE: the receiver is still running, or exited
# with a failure: it must not have exited 0.
recv_did_not_succeed ()
{
    if alive "$RECV_PID"; then return 0; fi
    wait_exit "$RECV_PID" 1
    [ "$EXIT_STATUS" -ne 0 ] || fail "stm-recv $1 exited 0 although the source did not flip"
}

for once in --once ""; do
    label="stm-recv ${once:-without --once}"

    # A. A flip that fails after the commit.
    fresh "A ($label)"
    start_psk_recv $once
    run_stm_send sendA 60 --tls-psk "$tmp/keys.psk" --flip forward=nbd://127.0.0.1:1/
    [ "$EXIT_STATUS" -eq 1 ] || fail "A: stm-send exited $EXIT_STATUS after a failed flip, not 1"
    grep -q "thawed and remains authoritative" "$tmp/sendA.err" ||
        fail "A: stm-send does not say the source is thawed: $(cat "$tmp/sendA.err")"
    state_is tracking || fail "A: the source is not tracking: $(ctl STATUS)"
    nbd_write 0 64k 0x5a || fail "A: the source does not take writes after the failed flip"
    wait_for 10 "A: the receiver to record the commit superseded" state_is_recorded superseded
    recv_events | grep -q '"event":"outcome".*"outcome":"thawed".*"state":"superseded"' ||
        fail "A: no outcome event saying superseded"
    if recv_events | grep -q '"event":"done"'; then
        fail "A: stm-recv reported done for a destination the source did not flip to"
    fi
    sleep 1
    recv_did_not_succeed "$once"
    if [ -z "$once" ]; then
        # A superseded copy resumes: the next run copies what changed.
        run_stm_send sendA2 60 --tls-psk "$tmp/keys.psk"
        [ "$EXIT_STATUS" -eq 0 ] || fail "A: the migration after the failed flip exited $EXIT_STATUS"
        grep -q '"event":"start".*"mode":"resume"' "$tmp/sendA2.out" ||
            fail "A: the migration after the failed flip did not resume"
        state_is_recorded final || fail "A: not final after the flip: $(cat "$state")"
        cmp "$tmp/src.img" "$tmp/dst.img" || fail "A: the destination differs from the fenced source"
    fi
    stop_recv

    # B. stm-send killed between COMMITTED and FLIP.
    fresh "B ($label)"
    start_psk_recv $once
    STM_SEND_TEST_CRASH_AT=committed run_stm_send sendB 60 --tls-psk "$tmp/keys.psk"
    [ "$EXIT_STATUS" -eq 137 ] || fail "B: stm-send was not killed at the commit (status $EXIT_STATUS)"
    wait_for 10 "B: the source to thaw when its owner died" state_is tracking
    state_is_recorded prepared || fail "B: the destination is not prepared: $(cat "$state")"
    nbd_write 1m 64k 0xa5 || fail "B: the source does not take writes"
    sleep 1
    alive "$RECV_PID" || fail "B: stm-recv $once exited although the flip never happened"
    grep -q "prepared.*sender left before reporting" "$tmp/recv.err" ||
        fail "B: stm-recv does not say the destination is prepared, outcome unknown"
    run_stm_send sendB2 60 --tls-psk "$tmp/keys.psk"
    [ "$EXIT_STATUS" -eq 0 ] || fail "B: the restarted stm-send exited $EXIT_STATUS"
    sent="$(json_field "$tmp/sendB2.out" done bytes_sent)"
    [ -n "$sent" ] && [ "$sent" -lt $(( size_mib * 1024 * 1024 / 2 )) ] ||
        fail "B: the restarted stm-send sent ${sent:-no summary} bytes: a recopy"
    recv_events | grep -q '"outcome":"thawed","state":"superseded"' ||
        fail "B: the restarted sender did not record the prepared copy superseded first"
    state_is_recorded final || fail "B: not final after the flip: $(cat "$state")"
    state_is fenced || fail "B: the source is not fenced: $(ctl STATUS)"
    cmp "$tmp/src.img" "$tmp/dst.img" || fail "B: the destination differs from the fenced source"
    if [ -n "$once" ]; then wait_recv_once_done "(B, after the flip)"; else stop_recv; fi

    # C. The filter thaws by itself while the final pass is held up.
    fresh "C ($label)" migrate-freeze-timeout=1s
    nbd_write 0 1m 0x11 || fail "C: cannot write to the source"
    stop_nbdkit
    NBDKIT_OPTIONS="-D migrate.first_freeze_read_delay_ms=1500" \
        start_nbdkit_migrate "$tmp/src.img" migrate-freeze-timeout=1s
    nbd_touch
    start_psk_recv $once
    # A guest that keeps writing, so the final pass has blocks to read.
    start_writer_and_wait 4m 60 50 --rate=,512k
    run_stm_send sendC 90 --tls-psk "$tmp/keys.psk" --max-downtime 5000 \
        --converge throttle
    kill -TERM "$WRITER_PID" 2>/dev/null || true
    [ "$EXIT_STATUS" -eq 1 ] || fail "C: stm-send exited $EXIT_STATUS, not 1"
    grep -q "the freeze ended before the commit" "$tmp/sendC.err" ||
        fail "C: stm-send does not say the freeze ended before the commit: $(cat "$tmp/sendC.err")"
    state_is tracking || fail "C: the source is not tracking: $(ctl STATUS)"
    state_is_recorded incomplete || fail "C: the destination is not incomplete: $(cat "$state")"
    if recv_events | grep -q '"event":"commit"'; then
        fail "C: the receiver committed after the source thawed"
    fi
    sleep 1
    recv_did_not_succeed "$once"
    stop_recv

    # D. stm-send killed right after the flip.
    fresh "D ($label)"
    start_psk_recv $once
    STM_SEND_TEST_CRASH_AT=flipped run_stm_send sendD 60 --tls-psk "$tmp/keys.psk"
    [ "$EXIT_STATUS" -eq 137 ] || fail "D: stm-send was not killed after the flip (status $EXIT_STATUS)"
    state_is fenced || fail "D: the source is not fenced: $(ctl STATUS)"
    state_is_recorded prepared || fail "D: the destination is not prepared: $(cat "$state")"
    alive "$RECV_PID" || fail "D: stm-recv $once exited before the flip was recorded"
    run_stm_send sendD2 60 --tls-psk "$tmp/keys.psk"
    [ "$EXIT_STATUS" -eq 0 ] || fail "D: the restarted stm-send exited $EXIT_STATUS with the source fenced"
    grep -q "had already flipped" "$tmp/sendD2.err" ||
        fail "D: the restarted stm-send does not say the migration had already flipped"
    grep -q '"event":"done".*"destination":"final"' "$tmp/sendD2.out" ||
        fail "D: the summary does not say the destination is final"
    state_is_recorded final || fail "D: not final: $(cat "$state")"
    cmp "$tmp/src.img" "$tmp/dst.img" || fail "D: the destination differs from the fenced source"
    # Once more: the receiver already says final.
    if [ -z "$once" ]; then
        run_stm_send sendD3 60 --tls-psk "$tmp/keys.psk"
        [ "$EXIT_STATUS" -eq 0 ] || fail "D: a third run exited $EXIT_STATUS"
        grep -q "had already completed" "$tmp/sendD3.err" ||
            fail "D: a third run does not say the migration had already completed"
        stop_recv
    else
        wait_recv_once_done "(D, after the flip was recorded)"
    fi
done

# A forward flip to something that is not an NBD URI is a usage error,
# before anything is copied or frozen.
run_stm_send badflip 10 --tls-psk "$tmp/keys.psk" --flip forward=notauri
[ "$EXIT_STATUS" -eq 2 ] || fail "--flip forward=notauri exited $EXIT_STATUS, not 2"
info "PASS"
