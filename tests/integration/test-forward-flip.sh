#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a forward flip under guest writes.
#
# stm-recv --export serves the finished image over NBD (nbdkit, the same
# PSK) and announces it in COMMITTED; stm-send --flip forward (no URI)
# makes the migrate filter forward every request there.  The guest
# stand-in (fio, 4k random writes, iodepth 8) keeps writing through the
# source's socket across the flip and must see no error at all.  After the
# flip the source is "forwarding": a write through it lands in the
# destination image and not in the source file, and the whole disk read
# back through the forward path equals the destination image.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires fio --version
requires nbdcopy --version
requires psktool --version

size_mib=32
start_psk_source "$size_mib"

# A free port for the export (the kernel's choice, released at once).
export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

requires fio --version
spawn "$tmp/fio.json" "$tmp/fio.err" \
      fio --name=guest --ioengine=nbd --uri="$NBD_URI" \
      --rw=randwrite --bs=4k --iodepth=8 --size="${size_mib}m" \
      --time_based --runtime=12 --output-format=json
WRITER_PID=$SPAWNED_PID
wait_for 30 "the guest writer to start writing" writes_above 1000

start_psk_recv --export "127.0.0.1:$export_port"
run_stm_send send 60 --tls-psk "$tmp/keys.psk" --flip forward
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send --flip forward exited with $EXIT_STATUS"
grep -q '"event":"flip","ts":[0-9.]*,"mode":"forward"' "$tmp/send.out" ||
    fail "no forward flip in stm-send's events"
# The receiver announced its export (EXPORT) long before the freeze, so
# the filter had connected to it ahead of the flip (PRECONNECT) and the
# flip used that connection: nothing slow happened while frozen.
grep -q '"event":"flip",.*"preconnected":true' "$tmp/send.out" ||
    fail "the forward flip connected inside the freeze: $(grep '"event":"flip"' "$tmp/send.out")"
state_is forwarding || fail "the source is not forwarding: $(ctl STATUS)"
info "flipped forward; downtime $(json_field "$tmp/send.out" downtime downtime_ms) ms"

# The guest keeps writing, now to the destination, until fio's time is up.
wait_exit "$WRITER_PID" 40
[ "$EXIT_STATUS" -eq 0 ] || fail "fio failed (exit $EXIT_STATUS): a guest I/O failed across the flip"
sed -n '/^{/,$p' "$tmp/fio.json" > "$tmp/fio-only.json"
errors="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(j["error"] for j in d["jobs"]))' "$tmp/fio-only.json")"
ios="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(j["write"]["total_ios"] for j in d["jobs"]))' "$tmp/fio-only.json")"
info "fio: $ios writes, $errors errors"
[ "$errors" = 0 ] || fail "fio reports $errors errors"

# A write through the source after the flip reaches the destination only.
cp "$tmp/src.img" "$tmp/src-at-flip.img"
nbd_write 1m 64k 0xa5 || fail "a write through the forwarding source failed"
cmp -s "$tmp/src.img" "$tmp/src-at-flip.img" ||
    fail "a write after the flip changed the source file"
head -c $(( 1024 * 1024 + 65536 )) "$tmp/dst.img" | tail -c 65536 |
    cmp -s - <(head -c 65536 /dev/zero | tr '\0' '\245') ||
    fail "the write after the flip is not in the destination image"

# Everything read through the forward path is the destination's.
run_bounded 60 readback nbdcopy -- "$NBD_URI" "$tmp/readback.img"
[ "$EXIT_STATUS" -eq 0 ] || fail "reading the disk back through the forward path failed"
cmp "$tmp/readback.img" "$tmp/dst.img" ||
    fail "the disk read through the forward path differs from the destination image"
info "read back through the forward path: identical to the destination"

# stm-recv keeps serving until stopped, then exits 0.
alive "$RECV_PID" || fail "stm-recv exited while its export should be serving"
kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --export exited with $EXIT_STATUS when stopped"
# Stopping it so is the documented end of a successful run, not an error.
if grep -q "error: interrupted" "$tmp/recv.err" || grep -q '"event":"error"' "$tmp/recv.out"; then
    fail "stm-recv --export reported its documented stop as an error: $(tail -n 3 "$tmp/recv.err")"
fi
grep -q '"event":"stopped".*"signal":"SIGTERM".*"state":"final"' "$tmp/recv.out" ||
    fail "stm-recv --export did not report a stopped event"
info "PASS"
