#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv --export is up before the freeze and
# serves nothing before the commit.
#
# The export's nbdkit starts when the sender's HELLO is accepted, with its
# gate closed (nbdkit's error filter, stm-recv(1) --export): a client that
# connects to the export during the migration completes the NBD handshake
# (it learns the size, nothing more), and every read and write it sends is
# refused.  stm-send --rate holds the migration in its first pass for a
# few seconds, which leaves time to try.  The early handshake and the
# refused requests must all come before stm-send's freeze event, so the
# export's nbdkit ran before the source was frozen (before this change it
# started inside COMMIT, with the source frozen, and served at once).  The
# commit must not have waited for nbdkit, the refused write must have
# changed nothing (the destination equals the source in the end), and
# after the flip the export serves the image.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires nbdinfo --version
requires nbdcopy --version
requires psktool --version

size_mib=16
start_psk_source "$size_mib"
nbd_touch

export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export_uri="nbds://stm@127.0.0.1:$export_port/?tls-psk-file=$tmp/keys.psk"
start_psk_recv --export "127.0.0.1:$export_port"

# now_s: the wall clock in seconds with milliseconds, as in stm-send's
# events.
now_s () { python3 -c 'import time; print("%.3f" % time.time())'; }

# About four seconds of first pass.
start_stm_send send --tls-psk "$tmp/keys.psk" --flip forward --rate 4M

# The handshake passes the gate: nbdinfo learns the size.
wait_for 20 "the export to answer on port $export_port" nbdinfo --size "$export_uri"
size="$(nbdinfo --size "$export_uri")"
[ "$size" -eq $(( size_mib * 1048576 )) ] ||
    fail "the export announces $size bytes, not $(( size_mib * 1048576 ))"
t_handshake="$(now_s)"
info "the export answered its handshake during the migration (size $size)"

# A read is refused, and returns no data (--no-extents: the read itself,
# not only the block status nbdcopy asks for first).
rm -f "$tmp/early.img"
run_bounded 20 early-read nbdcopy --no-extents -- "$export_uri" "$tmp/early.img"
t_read="$(now_s)"
[ "$EXIT_STATUS" -ne 0 ] || fail "a read from the export before the commit succeeded"
grep -qi "not permitted" "$tmp/early-read.err" ||
    fail "the early read failed, but not as refused: $(cat "$tmp/early-read.err")"
if [ -s "$tmp/early.img" ] && [ -n "$(tr -d '\0' < "$tmp/early.img" | head -c 1)" ]; then
    fail "the early read returned data from the image"
fi
info "a read before the commit: $(grep -i -m 1 "not permitted" "$tmp/early-read.err")"

# A write is refused too.
head -c 1048576 /dev/zero | tr '\0' '\132' > "$tmp/pattern.img"
truncate -s "${size_mib}M" "$tmp/pattern.img"
run_bounded 20 early-write nbdcopy -- "$tmp/pattern.img" "$export_uri"
t_write="$(now_s)"
[ "$EXIT_STATUS" -ne 0 ] || fail "a write to the export before the commit succeeded"
grep -qi "not permitted" "$tmp/early-write.err" ||
    fail "the early write failed, but not as refused: $(cat "$tmp/early-write.err")"

wait_exit "$SEND_PID" 60
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send --flip forward exited with $EXIT_STATUS"
state_is forwarding || fail "the source is not forwarding: $(ctl STATUS)"

# All of it happened before the freeze.
t_freeze="$(grep -o '"event":"freeze","ts":[0-9.]*' "$tmp/send.out" | head -n 1 | sed 's/.*"ts"://')"
[ -n "$t_freeze" ] || fail "no freeze event from stm-send"
python3 -c 'import sys; a = [float(x) for x in sys.argv[1:]]; sys.exit(0 if max(a[:-1]) < a[-1] else 1)' \
        "$t_handshake" "$t_read" "$t_write" "$t_freeze" ||
    fail "the early handshake, read and write ($t_handshake, $t_read, $t_write) did not all come before the freeze ($t_freeze): the test proves nothing"
info "handshake, refused read and refused write $(python3 -c 'import sys; print("%.0f" % ((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$t_write" "$t_freeze") ms and more before the freeze"
if grep -q "COMMITTED waits" "$tmp/recv.err"; then
    fail "the commit waited for the export's nbdkit: $(grep "COMMITTED wait" "$tmp/recv.err")"
fi

# The refused write changed nothing: no guest wrote, so the destination
# is the source.
cmp "$tmp/src.img" "$tmp/dst.img" || fail "the destination differs from the source"

# After the commit the export serves the image.
run_bounded 30 late-read nbdcopy -- "$export_uri" "$tmp/late.img"
[ "$EXIT_STATUS" -eq 0 ] || fail "a read from the export after the flip failed: $(cat "$tmp/late-read.err")"
cmp "$tmp/late.img" "$tmp/dst.img" || fail "the export after the flip does not serve the destination image"
info "after the flip the export serves the image"

kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --export exited with $EXIT_STATUS when stopped"
info "PASS"
