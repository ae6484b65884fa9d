#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv --export when a committed copy is
# superseded and the migration resumes.
#
# stm-send --flip forward is killed between COMMITTED and FLIP: the source
# thaws (its owner died) and stays authoritative, and the destination is
# prepared with its export open.  A guest write then changes the source.
# A second stm-send finds the copy prepared and the source tracking,
# reports it superseded (the export must close, and its nbdkit be
# replaced, which disconnects every client of the stale copy), resumes, commits again (the new nbdkit opens) and flips
# forward.  The disk read back through the source is the destination,
# and holds the guest's write made after the first commit.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires nbdinfo --version
requires nbdcopy --version
requires psktool --version

size_mib=8
start_psk_source "$size_mib"
nbd_touch

export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export_uri="nbds://stm@127.0.0.1:$export_port/?tls-psk-file=$tmp/keys.psk"
start_psk_recv --export "127.0.0.1:$export_port"

STM_SEND_TEST_CRASH_AT=committed run_stm_send send1 60 --tls-psk "$tmp/keys.psk" --flip forward
[ "$EXIT_STATUS" -eq 137 ] || fail "stm-send was not killed at the commit (status $EXIT_STATUS)"
wait_for 10 "the source to thaw when its owner died" state_is tracking
first_pid="$(sed -n 's/.*exporting .* over NBD at .* (nbdkit pid \([0-9]*\)).*/\1/p' "$tmp/recv.err" | tail -n 1)"
[ -n "$first_pid" ] || fail "stm-recv did not open its export at the commit: $(cat "$tmp/recv.err")"
nbdinfo --size "$export_uri" >/dev/null || fail "the export of the prepared copy does not answer"

# The guest writes to the source after the commit: the copy is stale.
nbd_write 2m 64k 0x6b || fail "a write to the thawed source failed"

run_stm_send send2 60 --tls-psk "$tmp/keys.psk" --flip forward
[ "$EXIT_STATUS" -eq 0 ] || fail "the second stm-send exited with $EXIT_STATUS: $(cat "$tmp/send2.err")"
grep -q "restarting its nbdkit" "$tmp/recv.err" ||
    fail "stm-recv did not close and restart its export when the copy was superseded"
second_pid="$(sed -n 's/.*exporting .* over NBD at .* (nbdkit pid \([0-9]*\)).*/\1/p' "$tmp/recv.err" | tail -n 1)"
[ -n "$second_pid" ] && [ "$second_pid" != "$first_pid" ] ||
    fail "the export after the second commit is served by the same nbdkit ($first_pid) as the stale copy"
if alive "$first_pid"; then
    fail "the nbdkit of the stale copy ($first_pid) still runs, and its clients with it"
fi
state_is forwarding || fail "the source is not forwarding: $(ctl STATUS)"
info "superseded: nbdkit $first_pid replaced by $second_pid, which serves after the second commit"

# Everything read through the forward path is the destination's, and the
# guest's write after the first commit is in it.
run_bounded 60 readback nbdcopy -- "$NBD_URI" "$tmp/readback.img"
[ "$EXIT_STATUS" -eq 0 ] || fail "reading the disk back through the forward path failed"
cmp "$tmp/readback.img" "$tmp/dst.img" ||
    fail "the disk read through the forward path differs from the destination image"
head -c $(( 2 * 1048576 + 65536 )) "$tmp/dst.img" | tail -c 65536 |
    cmp -s - <(head -c 65536 /dev/zero | tr '\0' '\153') ||
    fail "the guest's write after the first commit is not in the destination"

kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --export exited with $EXIT_STATUS when stopped"
info "PASS"
