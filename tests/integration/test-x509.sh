#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: X.509 mutual authentication.  A sender with a
# client certificate from the receiver's CA migrates; a sender without a
# client certificate, and one whose certificate another CA signed, are
# refused without harm to the source, the receiver or the output.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires certtool --version

size_mib=64
start_source "$size_mib"
make_x509 "$tmp/pki"

# A certs dir with the CA (to verify the receiver) but no client pair.
mkdir "$tmp/nocert"
cp "$tmp/pki/ca-cert.pem" "$tmp/nocert/"

# A client pair signed by a CA the receiver does not trust.
make_x509 "$tmp/other"
mkdir "$tmp/wrongca"
cp "$tmp/pki/ca-cert.pem" "$tmp/wrongca/"
cp "$tmp/other/client-cert.pem" "$tmp/other/client-key.pem" "$tmp/wrongca/"

nbd_touch
start_stm_recv --output "$tmp/dst.img" --tls-certs "$tmp/pki" --once --json

check_refused ()
{
    alive "$RECV_PID" || fail "$1: stm-recv exited after a refused sender"
    image_untouched "$tmp/dst.img" || fail "$1: data reached $tmp/dst.img"
    state_is tracking || fail "$1: the source is not tracking: $(ctl STATUS)"
    nbd_write 0 64k 0x5a || fail "$1: a write to the source failed"
    info "$1: stm-send said: $(grep -v '^{' "$tmp/$1.err" | head -n 3)"
    info "$1: refused; source serving; receiver running; output untouched"
}

# Without a client certificate the sender may give up before connecting
# (a configuration it cannot use) or be refused by the receiver: either
# way it must fail.
run_stm_send nocert 60 --tls-certs "$tmp/nocert"
[ "$EXIT_STATUS" -eq 1 ] || [ "$EXIT_STATUS" -eq 2 ] ||
    fail "nocert: stm-send exited with $EXIT_STATUS, not 1 or 2"
check_refused nocert

run_stm_send wrongca 60 --tls-certs "$tmp/wrongca"
[ "$EXIT_STATUS" -eq 1 ] || fail "wrongca: stm-send exited with $EXIT_STATUS, not 1"
check_refused wrongca

run_stm_send good 120 --tls-certs "$tmp/pki"
[ "$EXIT_STATUS" -eq 0 ] || fail "the sender with a valid certificate failed ($EXIT_STATUS)"
wait_recv_once_done "after the migration"
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source"
info "PASS"
