#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm integration test: a TLS receiver refuses a sender with the wrong
# pre-shared key and a plaintext (--insecure) sender.  Each refused
# stm-send exits 1; nothing reaches the output; the source keeps serving
# (tracking, writes work); the receiver keeps running and then accepts a
# sender with the right key, whose migration is byte-identical.
# Each refusal's message is asserted on both sides, and so are the TLS
# mode mismatches (PSK against X.509 both ways, TLS against --insecure
# both ways) and an unknown CA: each side says what really differs.

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

# said NAME PATTERN: stm-send's stderr for attempt NAME matches PATTERN.
said ()
{
    grep -q -- "$2" "$tmp/$1.err" ||
        fail "$1: stm-send did not say \"$2\": $(cat "$tmp/$1.err")"
}
# recv_said PATTERN: the receiver's log (since the last mark) matches.
recv_mark () { recv_from=$(( $(wc -l < "$tmp/recv.err") + 1 )); }
recv_said ()
{
    wait_for 10 "stm-recv to log \"$1\"" \
        sh -c 'tail -n +"$1" "$2" | grep -q -- "$3"' sh "$recv_from" "$tmp/recv.err" "$1"
}

# The other receivers: X.509 and --insecure, each on a fresh output.
# mismatch NAME RECV-ARGS... -- SEND-ARGS...: a receiver with RECV-ARGS, a
# sender with SEND-ARGS that must be refused (stop_recv ends the receiver).
mismatch ()
{
    local name="$1"
    shift
    local recv_args=()
    while [ "$1" != "--" ]; do recv_args+=("$1"); shift; done
    shift
    start_stm_recv --output "$tmp/$name.img" "${recv_args[@]}"
    recv_mark
    run_stm_send "$name" 60 "$@"
    [ "$EXIT_STATUS" -eq 1 ] || fail "$name: stm-send exited with $EXIT_STATUS, not 1"
    info "$name: stm-send said: $(grep -v '^{' "$tmp/$name.err" | head -n 1)"
}
stop_recv ()
{
    kill "$RECV_PID"
    wait_exit "$RECV_PID" 10 || true
}

make_x509 "$tmp/x509"
make_x509 "$tmp/other-ca"
mismatch psk-vs-x509 --tls-certs "$tmp/x509" -- --tls-psk "$tmp/good.psk"
said psk-vs-x509 "the receiver does not take a pre-shared key: it wants certificates"
said psk-vs-x509 "the peers use different TLS modes"
if grep -q "stm accepts only PSK" "$tmp/psk-vs-x509.err"; then
    fail "psk-vs-x509: stm-send still blames the key exchange"
fi
recv_said "if the peer runs with --tls-psk, the peers use different TLS modes"
stop_recv

mismatch plaintext-vs-x509 --tls-certs "$tmp/x509" -- --insecure
said plaintext-vs-x509 "this receiver requires TLS (it runs with --tls-certs)"
recv_said "the peer speaks the stm protocol without TLS"
stop_recv

mismatch unknown-ca --tls-certs "$tmp/x509" -- --tls-certs "$tmp/other-ca"
said unknown-ca "the peer's certificate is not trusted: .*issuer is unknown; the source was never frozen"
if grep -q '\.;' "$tmp/unknown-ca.err"; then
    fail "unknown-ca: a stray \".;\" in: $(cat "$tmp/unknown-ca.err")"
fi
stop_recv

mismatch psk-vs-plain --insecure -- --tls-psk "$tmp/good.psk"
said psk-vs-plain "the peer answered without TLS (does it run with --insecure?)"
recv_said "speaks TLS (a sender run with --tls-psk or --tls-certs?) and this receiver runs with --insecure"
stop_recv

# The PSK receiver that finally takes the migration.
start_stm_recv --output "$tmp/dst.img" --tls-psk "$tmp/good.psk" --once --json
recv_mark
run_stm_send wrong-psk 60 --tls-psk "$tmp/bad.psk"
check_refused wrong-psk
said wrong-psk "check that both sides use the same PSK identity and key"

recv_mark
run_stm_send plaintext 60 --insecure
check_refused plaintext
# Not "Connection reset by peer": the receiver answers a plain sender
# with a plain ERROR frame.
said plaintext "this receiver requires TLS (it runs with --tls-psk) and the sender connected without it (--insecure)"
if grep -q "Connection reset" "$tmp/plaintext.err"; then
    fail "plaintext: stm-send still says Connection reset by peer"
fi
recv_said "the peer speaks the stm protocol without TLS (a sender run with --insecure?)"

# A sender with certificates against this PSK receiver.
recv_mark
run_stm_send x509-vs-psk 60 --tls-certs "$tmp/x509"
check_refused x509-vs-psk
said x509-vs-psk "if the peer runs with --tls-psk, the peers use different TLS modes"
recv_said "the peer offered no pre-shared key (does it run with --tls-certs?)"

# The source has been written meanwhile; migrate with the right key.
run_stm_send good 120 --tls-psk "$tmp/good.psk"
[ "$EXIT_STATUS" -eq 0 ] || fail "the sender with the right key failed ($EXIT_STATUS)"
wait_recv_once_done "after the migration"
state_is fenced || fail "the source is not fenced after the migration"
cmp "$tmp/src.img" "$tmp/dst.img" || fail "destination differs from the source"

info "PASS"
