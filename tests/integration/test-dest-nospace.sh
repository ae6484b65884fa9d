#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: the destination runs out of space in the middle of
# the full pass.  stm-recv writes into a 16 MiB file system (a tmpfs in a
# mount namespace of its own, when this test may mount; otherwise under a
# 16 MiB file size limit, where the failure comes as the output is sized)
# and answers ERROR nospace.  stm-send must not retry that: it exits 1,
# says that the destination is out of space and that the source is
# thawed; the source keeps tracking and takes every write.

source ./functions.sh
set -eu
requires_psk_migration

size_mib=64
start_psk_source "$size_mib"
mkdir "$tmp/dstfs"

# Run stm-recv through a wrapper that limits the space it can write.
real_recv="$STM_RECV"
STM_RECV="$tmp/recv-wrap.sh"
if [ -z "${STM_TEST_NO_MOUNT:-}" ] &&
   unshare -m sh -c "mount -t tmpfs -o size=16m tmpfs '$tmp/dstfs'" 2>/dev/null; then
    how="a 16 MiB tmpfs"
    cat > "$STM_RECV" <<WRAP
#!/bin/sh
exec unshare -m sh -c 'mount -t tmpfs -o size=16m tmpfs "\$0" && exec "\$@"' \
     "$tmp/dstfs" "$real_recv" "\$@"
WRAP
else
    how="a 16 MiB file size limit"
    cat > "$STM_RECV" <<WRAP
#!/bin/sh
ulimit -f 16384 || exit 99
exec "$real_recv" "\$@"
WRAP
fi
chmod +x "$STM_RECV"
info "the destination has $how"

start_writer_and_wait 32m 90 0 --rate=,1m

start_stm_recv --output "$tmp/dstfs/dst.img" --tls-psk "$tmp/keys.psk" --json
run_stm_send send 60 --tls-psk "$tmp/keys.psk" --rate 32M
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS when the destination filled up, not 1"
grep -qi 'space' "$tmp/send.err" ||
    fail "stm-send's error does not say the destination is out of space: $(cat "$tmp/send.err")"
grep -Eiq 'thaw|authoritative' "$tmp/send.err" ||
    fail "stm-send's error does not say the source is thawed: $(cat "$tmp/send.err")"
! grep -q '"event":"reconnecting"' "$tmp/send.out" ||
    fail "stm-send tried to reconnect after running out of space"
info "stm-send said: $(grep -i 'space' "$tmp/send.err" | head -n 1)"

state_is tracking || fail "the source is not tracking after the failure: $(ctl STATUS)"
w="$(status_writes)"
wait_for 20 "guest writes to keep completing" writes_above "$w"
alive "$WRITER_PID" || fail "the guest writer stopped (a write failed?)"
nbd_write 40M 64k 0x5a || fail "a write to the source failed after the failure"
cmp -s -n 65536 -i $(( 40 * 1024 * 1024 )):0 "$tmp/src.img" \
    <(head -c 65536 /dev/zero | tr '\0' '\132') ||
    fail "the write after the failure is not in the source file"
info "PASS"
