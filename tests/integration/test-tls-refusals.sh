#!/bin/bash
# stm integration test: a TLS receiver refuses a sender with the wrong
# pre-shared key and a plaintext (--insecure) sender.  Each refused
# stm-send exits 1; nothing reaches the output; the source keeps serving
# (tracking, writes work); the receiver keeps running and then accepts a
# sender with the right key, whose migration is byte-identical.

source ./functions.sh
set -eu
requires_built
requires socat -V
requires qemu-io --version
requires psktool --version

size_mib=64
start_source "$size_mib"
make_psk "$tmp/good.psk"
make_psk "$tmp/bad.psk"
cmp -s "$tmp/good.psk" "$tmp/bad.psk" && fail "psktool made the same key twice"

nbd_touch
start_stm_recv --output "$tmp/dst.img" --tls-psk "$tmp/good.psk" --once --json

# check_refused NAME: the attempt NAME was refused and harmed nothing.
check_refused ()
{
    [ "$EXIT_STATUS" -eq 1 ] ||
        fail "$1: stm-send exited with $EXIT_STATUS, not 1"
    [ -s "$tmp/$1.err" ] || fail "$1: stm-send said nothing on stderr"
    alive "$RECV_PID" || fail "$1: stm-recv exited after a refused sender"
    image_untouched "$tmp/dst.img" || fail "$1: data reached $tmp/dst.img"
    state_is tracking || fail "$1: the source is not tracking: $(ctl STATUS)"
    nbd_write 0 64k 0x5a || fail "$1: a write to the source failed"
    info "$1: stm-send said: $(grep -v '^{' "$tmp/$1.err" | head -n 3)"
    info "$1: refused; source serving; receiver running; output untouched"
}

run_stm_send wrong-psk 60 --tls-psk "$tmp/bad.psk"
check_refused wrong-psk

run_stm_send plaintext 60 --insecure
check_refused plaintext

# The source has been written meanwhile; migrate with the right key.
run_stm_send good 120 --tls-psk "$tmp/good.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the sender with the right key failed ($EXIT_STATUS)"
wait_recv_once_done "after the migration"
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source"
info "PASS"
