#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: stm-recv --export on a port another NBD server
# already holds, serving an image of the same size.  Our nbdkit cannot
# bind and exits; stm-recv must notice that (its readiness is nbdkit's
# pidfile, not a connection to the port, which the other server would
# answer) and announce no URI, so the forward flip fails and the source is
# thawed and authoritative.  Before, the sender was sent to the other
# server and the guest's I/O to the wrong image.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires psktool --version

size_mib=8
start_psk_source "$size_mib"
nbd_touch

# The other server: the same size, the same key, on the export port.
export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
spawn "$tmp/other.out" "$tmp/other.err" \
    nbdkit -f -i 127.0.0.1 -p "$export_port" -P "$tmp/other.pid" \
    --tls=require --tls-psk="$tmp/keys.psk" memory "${size_mib}M"
OTHER_PID=$SPAWNED_PID
wait_for 30 "the other server to listen" test -s "$tmp/other.pid"

start_psk_recv --export "127.0.0.1:$export_port"
run_stm_send send 60 --tls-psk "$tmp/keys.psk" --flip forward
[ "$EXIT_STATUS" -eq 1 ] || fail "stm-send exited with $EXIT_STATUS, not 1, with the export port taken"
info "stm-send said: $(head -n 1 "$tmp/send.err")"
grep -q "serves none" "$tmp/send.err" ||
    fail "stm-send does not say the receiver serves no URI: $(cat "$tmp/send.err")"
grep -q "exited at start" "$tmp/recv.err" ||
    fail "stm-recv does not say its nbdkit could not start: $(cat "$tmp/recv.err")"
state_is tracking || fail "the source is not tracking after the failed flip: $(ctl STATUS)"
alive "$OTHER_PID" || fail "the other server went away"
nbd_write 1M 64k 0x3c || fail "a write to the source failed after the failed flip"
info "PASS"
