#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: after the group commit the destination's set is
# the authoritative one.  Two named disks migrated by one stm-send with
# --flip forward to one stm-recv --export; the test hook
# STM_SEND_TEST_FORWARD_REFUSED=b sends disk b's forward flip to a port
# nothing listens on, so it fails after the commit while disk a's
# succeeds.  Disk b must be fenced in its stead (never thawed back to
# serving from its source), stm-send must exit 0 saying so, the
# receiver must record the group final, and both destinations must equal
# their sources at the freeze.

source ./functions.sh
set -eu
requires_psk_migration

start_disk a 16
start_disk b 24
make_psk "$tmp/keys.psk"
start_disk_writer b 24m 60 --rate=,512k
wait_for 30 "the writer of disk b to start" disk_writes_above b 0

export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
start_stm_recv --output a="$tmp/a-dst.img" --output b="$tmp/b-dst.img" \
    --tls-psk "$tmp/keys.psk" --json --export "127.0.0.1:$export_port"
export STM_SEND_TEST_FORWARD_REFUSED=b
run_group_send send 90 a b -- --tls-psk "$tmp/keys.psk" --flip forward
unset STM_SEND_TEST_FORWARD_REFUSED
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send.err")"

[ "$(disk_status a state)" = forwarding ] || fail "disk a is not forwarding: $(disk_status a state)"
[ "$(disk_status b state)" = fenced ] || fail "disk b is not fenced: $(disk_status b state)"
grep -q "disk b: the forward flip failed.*fenced instead" "$tmp/send.err" ||
    fail "stm-send does not say disk b was fenced instead: $(cat "$tmp/send.err")"
grep '"event":"flip"' "$tmp/send.out" | grep -q '{"name":"a","mode":"forward".*{"name":"b","mode":"fence"' ||
    fail "the flip event does not say a forwards and b is fenced: $(grep '"flip"' "$tmp/send.out")"
grep '"event":"done"' "$tmp/send.out" | grep -q '"destination":"final"' ||
    fail "the group is not recorded final: $(tail -n 1 "$tmp/send.out")"
grep -qx 'state final' "$tmp/a-dst.img.stm-state" || fail "the receiver's record is not final"

wait_exit "$WRITER_PID_b" 60
for d in a b; do
    cmp "$tmp/$d-src.img" "$tmp/$d-dst.img" ||
        fail "disk $d: the destination differs from its source at the freeze"
done
info "disk a forwarding, disk b fenced in its stead; the set on the destination is complete"
info "PASS"
