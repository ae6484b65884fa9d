#!/bin/bash
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
requires_built
requires socat -V
requires qemu-io --version
requires fio --version
requires psktool --version

size_mib=32
make_random_image "$tmp/src.img" "$size_mib"
make_psk "$tmp/keys.psk"

start_nbdkit_migrate "$tmp/src.img"
start_writer "${size_mib}m" 120
wait_for 30 "the guest writer to start writing" writes_above 1000

# 1. abort
start_stm_recv --output "$tmp/dst.img" --tls-psk "$tmp/keys.psk" --json
run_stm_send abort 60 --tls-psk "$tmp/keys.psk" --rate 12M --converge=abort
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send --converge=abort exited with $EXIT_STATUS, not 1"
grep -q "does not converge" "$tmp/abort.err" ||
    fail "stm-send did not say that the migration does not converge"
grep -q "thawed and remains authoritative" "$tmp/abort.err" ||
    fail "stm-send did not say that the source stays authoritative"
! grep -q '"event":"freeze"' "$tmp/abort.out" || fail "stm-send --converge=abort froze the source"
state_is tracking || fail "the source is not tracking after the abort: $(ctl STATUS)"
[ "$(status_field throttle)" = 0 ] || fail "the throttle is on after the abort: $(ctl STATUS)"
before="$(status_writes)"
wait_for 10 "guest writes to keep reaching the source" writes_above $(( before + 1000 ))
info "part 1: aborted, the source thawed and serving"

# 2. interrupted while throttling
spawn "$tmp/throttle.out" "$tmp/throttle.err" "$STM_SEND" --source "$NBD_URI" \
    --control "$CTL_SOCK" --dest "127.0.0.1:$RECV_PORT" --json --no-progress \
    --tls-psk "$tmp/keys.psk" --rate 12M
send_pid=$SPAWNED_PID
throttled () { grep -q '"event":"throttle"' "$tmp/throttle.out"; }
wait_for 40 "stm-send to throttle the guest" throttled
t="$(status_field throttle)"
[ -n "$t" ] && [ "$t" -gt 0 ] || fail "STATUS shows no throttle while stm-send throttles: $(ctl STATUS)"
info "throttled to $t bytes/s; interrupting stm-send"
kill -TERM "$send_pid"
wait_exit "$send_pid" 20
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
