#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a COMMIT that arrives before the export's nbdkit
# is ready waits for it.
#
# stm-recv --export starts nbdkit at HELLO, so it is normally ready long
# before the freeze.  Here an nbdkit that takes two seconds to start (a
# wrapper first on PATH) meets a small migration that commits sooner:
# COMMITTED must wait until nbdkit is ready and then announce its URI (not
# announce none, which would fail the flip), the forward flip must work,
# and the guest's disk read through the source afterwards must be the
# destination's.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires nbdcopy --version
requires psktool --version

size_mib=8
start_psk_source "$size_mib"
nbd_touch

real_nbdkit="$(command -v nbdkit)"
mkdir "$tmp/slow-bin"
cat > "$tmp/slow-bin/nbdkit" <<EOF
#!/bin/sh
sleep 2
exec "$real_nbdkit" "\$@"
EOF
chmod +x "$tmp/slow-bin/nbdkit"

export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
PATH="$tmp/slow-bin:$PATH" start_psk_recv --export "127.0.0.1:$export_port"
run_stm_send send 60 --tls-psk "$tmp/keys.psk" --flip forward
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send --flip forward exited with $EXIT_STATUS: $(cat "$tmp/send.err")"
grep -q "COMMITTED waits" "$tmp/recv.err" ||
    fail "the commit did not wait for nbdkit: the migration was not faster than its start, so the test proves nothing"
waited="$(sed -n 's/.*COMMITTED waited \([0-9]*\) ms.*/\1/p' "$tmp/recv.err")"
[ -n "$waited" ] || fail "stm-recv does not say how long COMMITTED waited"
info "COMMITTED waited $waited ms for nbdkit; downtime $(json_field "$tmp/send.out" downtime downtime_ms) ms"
state_is forwarding || fail "the source is not forwarding: $(ctl STATUS)"

# The guest's disk, read through the forward path, is the destination.
run_bounded 60 readback nbdcopy -- "$NBD_URI" "$tmp/readback.img"
[ "$EXIT_STATUS" -eq 0 ] || fail "reading the disk back through the forward path failed"
cmp "$tmp/readback.img" "$tmp/dst.img" ||
    fail "the disk read through the forward path differs from the destination image"

kill -TERM "$RECV_PID"
wait_exit "$RECV_PID" 20
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv --export exited with $EXIT_STATUS when stopped"
info "PASS"
