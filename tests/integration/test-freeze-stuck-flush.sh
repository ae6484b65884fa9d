#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a source whose flush hangs.  FREEZE flushes the
# plugin once before it closes the gate; that flush is bounded by
# migrate-freeze-timeout like the one inside the freeze, so a stuck plugin
# costs a refused FREEZE (the guest is never frozen), not the control
# socket.  While that flush still hangs, another FREEZE is refused at once
# and says why; once it has returned, FREEZE works again.  The filter also
# refuses, at start, a plugin that serializes all requests.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires nbdkit eval --version

# The eval plugin serves a file of 1 MiB; its first flush takes 4 s.
img="$tmp/img"
truncate -s 1M "$img"
first_flush="$tmp/first-flush-done"
NBD_SOCK="$tmp/nbd.sock"
CTL_SOCK="$tmp/ctl.sock"
start_eval_source ()   # THREAD_MODEL
{
    spawn "$tmp/nbdkit.log" "$tmp/nbdkit.err" \
        nbdkit -f -U "$NBD_SOCK" --filter="$MIGRATE_FILTER" eval \
        thread_model="echo $1" \
        get_size='echo 1048576' \
        can_write='exit 0' can_flush='exit 0' can_multi_conn='exit 0' \
        pread="dd if=$img skip=\$4 count=\$3 iflag=count_bytes,skip_bytes status=none" \
        pwrite="dd of=$img seek=\$4 conv=notrunc oflag=seek_bytes status=none" \
        flush="[ -e $first_flush ] || { sleep 4; touch $first_flush; }" \
        migrate-control="$CTL_SOCK" migrate-freeze-timeout=1s
    NBDKIT_PID=$SPAWNED_PID
}

# A plugin that serializes all requests is refused, and says why.
start_eval_source serialize_all_requests
wait_exit "$NBDKIT_PID" 30
[ "$EXIT_STATUS" -ne 0 ] || fail "nbdkit started the migrate filter over a serialize_all_requests plugin"
grep -q "serialize_all_requests" "$tmp/nbdkit.err" ||
    fail "the refusal does not name the thread model: $(cat "$tmp/nbdkit.err")"
info "refused: $(grep -m1 migrate "$tmp/nbdkit.err")"
rm -f "$NBD_SOCK" "$CTL_SOCK"

start_eval_source parallel
wait_for 30 "the source's sockets" test -S "$CTL_SOCK" -a -S "$NBD_SOCK"

ctl_open owner
t0=$(date +%s%N)
r="$(ctl_send owner FREEZE)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
info "FREEZE with a stuck flush: '$r' after $ms ms"
case "$r" in
    "ERR ETIMEDOUT"*"before closing the gate"*"never frozen"*) ;;
    *) fail "FREEZE with a stuck flush answered '$r'" ;;
esac
[ "$ms" -lt 3500 ] || fail "FREEZE waited $ms ms for the stuck flush (timeout 1 s)"

# The flush still hangs: refused at once, and STATUS is still served.
r="$(ctl_send owner FREEZE)"
case "$r" in
    "ERR EBUSY"*"has still not returned"*) ;;
    *) fail "FREEZE while the flush hangs answered '$r'" ;;
esac
state_is tracking || fail "the source is not tracking: $(ctl STATUS)"

# Once the flush has returned, FREEZE works again.  (The script marks
# the flush done just before it returns, so EBUSY may come a moment more.)
wait_for 20 "the stuck flush to return" test -e "$first_flush"
for (( i = 0; i < 50; i++ )); do
    r="$(ctl_send owner FREEZE)"
    case "$r" in "ERR EBUSY"*) sleep 0.1 ;; *) break ;; esac
done
case "$r" in "OK frozen"*) ;; *) fail "FREEZE after the flush returned answered '$r'" ;; esac
r="$(ctl_send owner THAW)"
case "$r" in "OK thawed"*) ;; *) fail "THAW answered '$r'" ;; esac
ctl_close owner
info "PASS"
