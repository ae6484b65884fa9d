#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: what FLIP forward costs the frozen guest, with and without
# PRECONNECT, measured on the filter's control socket alone (no stm-send).
#
#   bench/flip-latency.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# The destination is an nbdkit started as stm-recv --export starts it
# (receiver/export.c): TLS with a PSK, the error filter in front (its gate
# file absent, so open).  Each run starts a fresh source (nbdkit
# --filter=migrate file, an idle guest: a flip is final) and plays the
# sender's cutover by hand: RESET, [PRECONNECT URI,] SNAPSHOT, CONFIRM of
# the whole image, FREEZE, FLIP forward URI, THAW.  Measured per run:
#   flip_ms    FLIP forward's round trip on the control socket
#   frozen_ms  THAW's frozen_us after the flip: from the gate closing to
#              the flip, the downtime as the guest would see it (it
#              includes FREEZE's reply and the client sending FLIP)
# and printed as medians over RUNS runs of each mode, interleaved.
#
# Environment: RUNS (default 20), SIZE_MIB (default 64), TLS (psk, the
# default, or off), BENCH_DIR, KEEP.
_flip_runs="${RUNS:-20}"
source "$(dirname "$0")/bench-lib.sh"
RUNS="$_flip_runs"
SIZE_MIB="${SIZE_MIB:-64}"
TLS="${TLS:-psk}"
need nbdkit; need python3; need psktool

make_random "$tmp/src.img" "$SIZE_MIB"
truncate -s "${SIZE_MIB}M" "$tmp/dst.img"
make_psk "$tmp/keys.psk"
port="$(free_port)"
case "$TLS" in
    psk) tls_args=(--tls=require --tls-psk="$tmp/keys.psk")
         DEST="nbds://stm@127.0.0.1:$port/?tls-psk-file=$tmp/keys.psk" ;;
    off) tls_args=(--tls=off)
         DEST="nbd://127.0.0.1:$port/" ;;
    *) die "TLS must be psk or off" ;;
esac
spawn "$tmp/dest.log" nbdkit -f -i 127.0.0.1 -p "$port" "${tls_args[@]}" \
      --filter=error file file="$tmp/dst.img" \
      error=EPERM error-rate=100% error-file="$tmp/gate"
DEST_PID=$SPAWNED
for (( i = 0; i < 100; i++ )); do
    ss -Hltn "sport = :$port" | grep -q LISTEN && break
    sleep 0.1
done

# cutover MODE: one run; prints "flip_ms frozen_ms preconnected" and
# returns once its source has stopped.
cutover ()
{
    start_source file file="$tmp/src.img"
    python3 - "$SRC_CTL" "$DEST" "$1" "$((SIZE_MIB * 1048576))" <<'PY' || die "the cutover ($1) failed"
import socket, sys, time
ctl, dest, mode, size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_UNIX)
s.connect(ctl)
f = s.makefile("rwb", buffering=0)
def req(line):
    f.write((line + "\n").encode())
    r = f.readline().decode().strip()
    if not r.startswith("OK"):
        sys.exit("%s -> %s" % (line.split()[0], r))
    return r
# Until the filter knows the image size (it learns it as nbdkit starts).
for _ in range(100):
    f.write(b"STATUS\n")
    if f.readline().startswith(b"OK"):
        break
    time.sleep(0.05)
req("RESET")
if mode == "preconnect":
    req("PRECONNECT " + dest)
req("SNAPSHOT")
while f.readline().strip() != b".":
    pass
req("CONFIRM 0 " + size)
req("FREEZE")
t0 = time.monotonic()
r = req("FLIP forward " + dest)
t1 = time.monotonic()
thaw = req("THAW")
frozen_us = int(thaw.split("frozen_us=")[1].split()[0])
pre = r.split("preconnected=")[1].split()[0]
print("%.3f %.3f %s" % ((t1 - t0) * 1000, frozen_us / 1000, pre))
PY
    stop "$SRC_PID"
}

declare -A flip frozen
for (( run = 1; run <= RUNS; run++ )); do
    for mode in fresh preconnect; do
        # Not in a process substitution: the next run must not start
        # before this one's source has stopped (its exit removes the
        # control socket's path, which the next one has taken over).
        cutover "$mode" > "$tmp/run.out"
        read -r f z p < "$tmp/run.out"
        [ -n "${p:-}" ] || die "run $run ($mode) gave no figures"
        want=0; [ "$mode" = preconnect ] && want=1
        [ "$p" = "$want" ] || die "run $run ($mode): the flip answered preconnected=$p"
        flip[$mode]+=" $f"
        frozen[$mode]+=" $z"
        note "run $run $mode: FLIP ${f} ms, frozen ${z} ms"
    done
done

fmedian ()
{
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
printf '\nFLIP forward to nbdkit (TLS %s, error filter), %d MiB, medians of %d runs\n' \
       "$TLS" "$SIZE_MIB" "$RUNS"
printf '%-12s %12s %14s\n' mode "FLIP ms" "frozen ms"
for mode in fresh preconnect; do
    # shellcheck disable=SC2086
    printf '%-12s %12.3f %14.3f\n' "$mode" "$(fmedian ${flip[$mode]})" "$(fmedian ${frozen[$mode]})"
done
