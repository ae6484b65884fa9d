#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the source returns read errors in the middle of
# the full pass.  nbdkit's error filter sits under the migrate filter and
# fails every read (EIO) once a trigger file exists.  stm-send must exit 1
# naming the source and the offset that failed, and say the source is
# thawed; the filter must be tracking and the guest's writes (which the
# error filter lets through) must keep completing.

source ./functions.sh
set -eu
requires_psk_migration
requires nbdkit --filter=error null --run true

size_mib=64
make_random_image "$tmp/src.img" "$size_mib"
make_psk "$tmp/keys.psk"

# As start_nbdkit_migrate, with the error filter under the migrate filter:
# reads fail with EIO while $tmp/inject exists.
NBD_SOCK="$tmp/nbd.sock"
NBD_URI="nbd+unix:///?socket=$NBD_SOCK"
CTL_SOCK="$tmp/ctl.sock"
spawn "$tmp/nbdkit.log" "$tmp/nbdkit.err" \
      nbdkit -f -U "$NBD_SOCK" -P "$tmp/nbdkit.pid" \
      --filter="$MIGRATE_FILTER" --filter=error \
      file file="$tmp/src.img" migrate-control="$CTL_SOCK" \
      error=EIO error-pread-rate=1 error-pread-file="$tmp/inject"
NBDKIT_PID=$SPAWNED_PID
nbdkit_ready () { [ -S "$NBD_SOCK" ] && [ -S "$CTL_SOCK" ] && [ -s "$tmp/nbdkit.pid" ]; }
wait_for 30 "nbdkit to start" nbdkit_ready

start_writer_and_wait 8m 90 0 --rate=,1m

start_psk_recv
start_stm_send send --tls-psk "$tmp/keys.psk" --rate 8M

wait_for 60 "stm-send to send 8 MiB" sent_at_least $(( 8 * 1024 * 1024 ))
alive "$SEND_PID" || fail "stm-send ended before the read errors began"
info "injecting read errors at $(json_field "$tmp/send.out" progress bytes_sent) bytes sent"
touch "$tmp/inject"

wait_exit "$SEND_PID" 60
info "stm-send exited with status $EXIT_STATUS"
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS after source read errors, not 1"
grep -q "cannot read the source $NBD_URI at offset [0-9]" "$tmp/send.err" ||
    fail "stm-send's error does not name the source and the offset: $(cat "$tmp/send.err")"
grep -Eiq 'thaw|authoritative' "$tmp/send.err" ||
    fail "stm-send's error does not say the source is thawed: $(cat "$tmp/send.err")"
! grep -q '"event":"reconnecting"' "$tmp/send.out" ||
    fail "stm-send tried to reconnect to the receiver after a source read error"
info "stm-send said: $(grep 'cannot read' "$tmp/send.err" | head -n 1)"

rm -f "$tmp/inject"
state_is tracking || fail "the source is not tracking after the failure: $(ctl STATUS)"
w="$(status_writes)"
wait_for 20 "guest writes to keep completing" writes_above "$w"
alive "$WRITER_PID" || fail "the guest writer stopped (a write failed?)"
nbd_write 40M 64k 0x5a || fail "a write to the source failed after the failure"
info "PASS"
