#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a forward flip with X.509 credentials.
#
# stm-recv --tls-certs --export starts nbdkit with --tls-certificates and
# --tls-verify-peer on the finished image; stm-send --tls-certs --flip
# forward turns the announced URI into one with tls-certificates= (its own
# directory, with client-cert.pem and client-key.pem), and the migrate
# filter connects with it.  The guest stand-in (fio, rate-limited) keeps
# writing across the flip without an error, and a write through the source
# afterwards lands in the destination image only.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires fio --version
requires certtool --version

size_mib=16
start_source "$size_mib"
make_x509 "$tmp/certs"
export_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

start_writer_and_wait "${size_mib}m" 8 10 --rate=,2m

start_stm_recv --output "$tmp/dst.img" --tls-certs "$tmp/certs" --json \
    --export "127.0.0.1:$export_port"
run_stm_send send 60 --tls-certs "$tmp/certs" --flip forward
[ "$EXIT_STATUS" -eq 0 ] || fail "stm-send --tls-certs --flip forward exited with $EXIT_STATUS"
# The filter connected with our certificates ahead of the freeze.
grep -q '"event":"flip",.*"preconnected":true' "$tmp/send.out" ||
    fail "the forward flip connected inside the freeze: $(grep '"event":"flip"' "$tmp/send.out")"
state_is forwarding || fail "the source is not forwarding: $(ctl STATUS)"
info "flipped forward over X.509; downtime $(json_field "$tmp/send.out" downtime downtime_ms) ms"

wait_exit "$WRITER_PID" 30
[ "$EXIT_STATUS" -eq 0 ] || fail "fio failed (exit $EXIT_STATUS): a guest I/O failed across the flip"

cp "$tmp/src.img" "$tmp/src-at-flip.img"
nbd_write 2m 64k 0x3c || fail "a write through the forwarding source failed"
cmp -s "$tmp/src.img" "$tmp/src-at-flip.img" || fail "a write after the flip changed the source file"
head -c $(( 2 * 1024 * 1024 + 65536 )) "$tmp/dst.img" | tail -c 65536 |
    cmp -s - <(head -c 65536 /dev/zero | tr '\0' '\074') ||
    fail "the write after the flip is not in the destination image"
info "PASS"
