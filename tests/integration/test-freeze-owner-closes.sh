#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a freeze never outlives its owner.  If the control
# connection that froze the source closes, or migrate-freeze-timeout
# passes, the filter thaws by itself: writes held at the gate complete
# and new writes go through.  Reads keep flowing while frozen.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version

size_mib=64
make_random_image "$tmp/src.img" "$size_mib"

# now_ms: milliseconds since the epoch.
now_ms () { echo $(( $(date +%s%N) / 1000000 )); }

# start_held_write PATTERN: a 64k write at 1 MiB in the background.
start_held_write ()
{
    spawn "$tmp/held.out" "$tmp/held.err" \
          qemu-io -f raw -c "write -P $1 1M 64k" "$NBD_URI"
    HELD_PID=$SPAWNED_PID
}

# --- 1. The owner sends FREEZE and hangs up at once (a short socat input).
start_nbdkit_migrate "$tmp/src.img"
nbd_touch
r="$(printf 'FREEZE\n' | timeout 30 socat -t 5 - "UNIX-CONNECT:$CTL_SOCK" | head -n 1)"
info "FREEZE then close -> $r"
case "$r" in "OK frozen"*) ;; *) fail "FREEZE answered '$r'" ;; esac
wait_for 10 "the filter to thaw after its owner closed" state_is tracking
nbd_write 0 64k 0x11 || fail "a write after the owner closed did not complete"
info "case 1: thawed after the owner closed; writes work"

# --- 2. A write is held while frozen and completes when the owner closes.
ctl_open owner
r="$(ctl_send owner FREEZE)"
case "$r" in "OK frozen"*) ;; *) fail "FREEZE answered '$r'" ;; esac
state_is frozen || fail "STATUS does not say frozen after FREEZE"
# Reads keep flowing while frozen.
run_bounded 20 reader qemu-io -f raw -r -c "read 0 64k" "$NBD_URI"
[ "$EXIT_STATUS" -eq 0 ] || fail "a read while frozen did not complete"
start_held_write 0x22
sleep 1
alive "$HELD_PID" || fail "a write completed while the source was frozen"
ctl_close owner
wait_exit "$HELD_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "the held write failed after the thaw (status $EXIT_STATUS)"
! grep -Eqi 'fail|error' "$tmp/held.out" "$tmp/held.err" ||
    fail "the held write reported an error: $(cat "$tmp/held.out" "$tmp/held.err")"
wait_for 10 "the filter to thaw after its owner closed" state_is tracking
cmp -s -n 65536 -i 1048576:0 "$tmp/src.img" <(head -c 65536 /dev/zero | tr '\0' '\042') ||
    fail "the held write's data is not in the source file"
info "case 2: a held write completed once the owner closed"
stop_nbdkit

# --- 3. The freeze timeout: the owner stays connected but silent.
start_nbdkit_migrate "$tmp/src.img" migrate-freeze-timeout=2s
nbd_touch
ctl_open owner2
t0="$(now_ms)"
r="$(ctl_send owner2 FREEZE)"
case "$r" in "OK frozen"*) ;; *) fail "FREEZE answered '$r'" ;; esac
state_is frozen || fail "STATUS does not say frozen after FREEZE"
start_held_write 0x33
wait_for 15 "the freeze timeout to thaw the source" state_is tracking
t1="$(now_ms)"
elapsed=$(( t1 - t0 ))
info "thawed by timeout after $elapsed ms"
[ "$elapsed" -ge 1500 ] || fail "thawed after $elapsed ms, before the 2 s timeout"
wait_exit "$HELD_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "the held write failed after the timeout thaw"
n="$(status_field thaws_by_timeout)"
[ "$n" = 1 ] || fail "thaws_by_timeout is '$n', not 1"
nbd_write 2M 64k 0x44 || fail "a write after the timeout thaw did not complete"
ctl_close owner2
state_is tracking || fail "not tracking after the owner closed"
info "PASS"
