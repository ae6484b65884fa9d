#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: giving up on a migration that does not converge
# leaves the source thawed, unthrottled and serving.
#
# 1. --converge=abort under a guest that writes faster than --rate allows:
#    stm-send exits 1 saying the migration does not converge, the source is
#    tracking (not frozen), the throttle is off, and the guest's writes
#    still reach the source.
# 2. --converge=throttle, interrupted (SIGTERM) once it has throttled the
#    guest: the throttle is released on that exit path too.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=32
start_psk_source "$size_mib"
start_writer_and_wait "${size_mib}m" 120 1000

# 1. abort
start_psk_recv
run_stm_send abort 60 --tls-psk "$tmp/keys.psk" --rate 12M --converge=abort
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send --converge=abort exited with $EXIT_STATUS, not 1"
grep -q "does not converge" "$tmp/abort.err" ||
    fail "stm-send did not say that the migration does not converge"
# Nothing was frozen, so "thawed" would not be true.
grep -q "was never frozen and remains authoritative" "$tmp/abort.err" ||
    fail "stm-send did not say that the source, never frozen, stays authoritative"
! grep -q '"event":"freeze"' "$tmp/abort.out" || fail "stm-send --converge=abort froze the source"
state_is tracking || fail "the source is not tracking after the abort: $(ctl STATUS)"
[ "$(status_field throttle)" = 0 ] || fail "the throttle is on after the abort: $(ctl STATUS)"
before="$(status_writes)"
wait_for 10 "guest writes to keep reaching the source" writes_above $(( before + 1000 ))
info "part 1: aborted, the source thawed and serving"

# 2. interrupted while throttling
start_stm_send throttle --tls-psk "$tmp/keys.psk" --rate 12M --converge throttle
throttled () { grep -q '"event":"throttle"' "$tmp/throttle.out"; }
wait_for 40 "stm-send to throttle the guest" throttled
t="$(status_field throttle)"
[ -n "$t" ] && [ "$t" -gt 0 ] || fail "STATUS shows no throttle while stm-send throttles: $(ctl STATUS)"
info "throttled to $t bytes/s; interrupting stm-send"
kill -TERM "$SEND_PID"
wait_exit "$SEND_PID" 20
[ "$EXIT_STATUS" -eq 1 ] || fail "the interrupted stm-send exited with $EXIT_STATUS, not 1"
grep -q "throttle is released" "$tmp/throttle.err" ||
    fail "stm-send did not say that it released the throttle"
[ "$(status_field throttle)" = 0 ] || fail "the throttle is still on: $(ctl STATUS)"
state_is tracking || fail "the source is not tracking: $(ctl STATUS)"
before="$(status_writes)"
wait_for 10 "guest writes to keep reaching the source" writes_above $(( before + 1000 ))
# The guest writes everywhere: stop it before a write that must read back.
kill -TERM "$WRITER_PID" 2>/dev/null || true
wait_exit "$WRITER_PID" 10
nbd_write 0 4k 0x5a || fail "a write to the source failed after the interrupted migration"
info "PASS"
