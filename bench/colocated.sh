#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: migration between two datastores of one host, with a
# guest doing synced writes on the same disk.
#
#   bench/colocated.sh [BUILD_DIR]      (default $STM_BUILD, else _build/)
#
# The source and the destination image sit on one real disk (BENCH_DIR,
# default /var/tmp; tmpfs is refused, since the point is the disk).  The
# source is served by nbdkit --filter=fua --filter=migrate file, the fua
# filter in fuamode=force making every guest write a FUA write: the file
# plugin then writes it and fdatasyncs, which is what a guest's
# O_DIRECT|O_DSYNC write turns into on its disk image.  (fio's nbd engine
# ignores --direct and --sync, which act on files it opens, and cannot set
# the FUA flag itself.)  The guest stand-in is fio's nbd engine writing
# 4 KiB sequentially (a log) at GUEST_IOPS (default 1000) with iodepth 1,
# logging every write's latency on its own clock (--write_lat_log,
# --log_avg_msec=0, --log_unix_epoch=1).  It starts WARMUP seconds
# (default 2) before stm-send and runs until COOLDOWN seconds (default 2)
# after it ends.  stm migrates with --flip forward into stm-recv --export,
# so the guest keeps writing across the flip and the writes held by the
# freeze complete (on the destination).
#
# Each write is the interval [completion - latency, completion].  The
# freeze windows come from stm-send --json: from each "freeze" event's ts
# less its drain_ms (the gate closed then) to the next "flip" or
# "cutover_overrun" event's ts, widened by 2 ms on each side for fio's
# millisecond timestamps.  Printed per run: the guest's p99, p99.9 and
# max write latency during the migration outside the freeze, how many of
# those writes took more than 10, 20 and 50 ms, the max of the writes
# overlapping the freeze, and the p99/max for the WARMUP seconds before
# the migration.
# Each run also has the guest write alone for ALONE seconds (default 36,
# about as long as a 1 GiB pass at --rate 32M) with the same source stack
# and no migration ("alone" in the table): the disk's own noise, which no
# change to stm can remove.
#
# Environment: SIZE_MIB (default 1024), RUNS (default 3), RATES (default
# "32M unlimited": stm-send --rate values, "unlimited" for none),
# GUEST_IOPS, GUEST_MIB (the guest's log region, default 256), WARMUP,
# COOLDOWN, ALONE (0 leaves the guest-alone runs out), BUILDS (default "stm=BUILD_DIR"; several LABEL=DIR words
# compare builds, interleaved run by run), TRACE=1 (run stm-recv under
# strace and print how long its pwrite64, sync_file_range and fdatasync
# calls took: how long they held its event loop), BENCH_DIR, KEEP.
_colo_bench_dir="${BENCH_DIR:-/var/tmp}"
BENCH_DIR="$_colo_bench_dir"
source "$(dirname "$0")/bench-lib.sh"

SIZE_MIB="${SIZE_MIB:-1024}"
RATES="${RATES:-32M unlimited}"
GUEST_IOPS="${GUEST_IOPS:-1000}"
GUEST_MIB="${GUEST_MIB:-256}"
WARMUP="${WARMUP:-2}"
COOLDOWN="${COOLDOWN:-2}"
ALONE="${ALONE:-36}"
BUILDS="${BUILDS:-stm=$build}"
need nbdkit; need fio; need psktool; need python3
[ -n "${TRACE:-}" ] && need strace

fstype="$(findmnt -n -o FSTYPE -T "$tmp")"
case "$fstype" in
    tmpfs|ramfs) die "BENCH_DIR ($BENCH_DIR) is $fstype: give a directory on a real disk" ;;
esac
note "images in $tmp ($fstype on $(df --output=source "$tmp" | tail -n 1))"

for b in $BUILDS; do
    d="${b#*=}"
    for f in "$d/sender/stm-send" "$d/receiver/stm-recv" \
             "$d/nbdkit-plugin/.libs/nbdkit-migrate-filter.so"; do
        [ -e "$f" ] || die "$f is not built (BUILDS: $b)"
    done
done

make_psk "$tmp/keys.psk"
# One source image for every run: the guest's writes change its contents,
# which does not matter to a migration's timing.  It is written to disk
# and read once before the first run, so every run finds it in the page
# cache and nothing of it dirty.
make_random "$tmp/src.img" "$SIZE_MIB"
sync
cat "$tmp/src.img" >/dev/null

# start_guest URI: fio writing through URI; sets FIO_PID.
start_guest ()
{
    rm -f "$tmp/fio.json" "$tmp"/lat_*.log
    spawn "$tmp/fio.log" fio --name=guest --ioengine=nbd --uri="$1" \
          --rw=write --bs=4k --iodepth=1 --rate_iops="$GUEST_IOPS" \
          --size="${GUEST_MIB}m" --time_based --runtime=900 \
          --write_lat_log="$tmp/lat" --log_avg_msec=0 --log_unix_epoch=1 \
          --output-format=json --output="$tmp/fio.json"
    FIO_PID=$SPAWNED
}

# stop_guest: SIGINT (fio then writes its logs and report), wait.
stop_guest ()
{
    local i
    kill -INT "$FIO_PID" 2>/dev/null
    for (( i = 0; i < 300; i++ )); do kill -0 "$FIO_PID" 2>/dev/null || break; sleep 0.1; done
    stop "$FIO_PID"
}

# run_one LABEL DIR RATE: one migration; appends a row to rows.  With
# LABEL "alone" there is no migration: the guest writes for ALONE seconds
# in its place.
run_one ()
{
    local label="$1" dir="$2" rate="$3" export_port rc=0 t0 t1 rate_args=()
    STM_SEND="$dir/sender/stm-send"
    STM_RECV="$dir/receiver/stm-recv"
    MIGRATE_FILTER="$dir/nbdkit-plugin/.libs/nbdkit-migrate-filter.so"
    [ "$rate" = unlimited ] || rate_args=(--rate "$rate")

    rm -f "$tmp/dst.img" "$tmp/dst.img.stm-state" "$tmp/recv.strace"
    # Nothing of the previous run may still be on its way to the disk.
    sync

    rm -f "$tmp/src.sock" "$tmp/ctl.sock" "$tmp/src.pid"
    spawn "$tmp/source.log" nbdkit -f -U "$tmp/src.sock" -P "$tmp/src.pid" \
          --filter=fua --filter="$MIGRATE_FILTER" file file="$tmp/src.img" \
          fuamode=force migrate-control="$tmp/ctl.sock"
    SRC_PID=$SPAWNED
    wait_file "$tmp/src.pid" "$SRC_PID"
    wait_file "$tmp/ctl.sock" "$SRC_PID"
    SRC_URI="nbd+unix:///?socket=$tmp/src.sock"
    SRC_CTL="$tmp/ctl.sock"

    export_port="$(free_port)"
    RECV_WRAP=()
    [ -n "${TRACE:-}" ] &&
        RECV_WRAP=(strace -f -qq --seccomp-bpf -T -ttt -o "$tmp/recv.strace"
                   -e trace=pwrite64,sync_file_range,fdatasync,fsync,rename)
    # A fresh log: the port is read from it as soon as stm-recv writes it.
    rm -f "$tmp/recv.log"
    start_recv "$tmp/dst.img" --tls-psk "$tmp/keys.psk" --export "127.0.0.1:$export_port"

    start_guest "$SRC_URI"
    sleep "$WARMUP"
    kill -0 "$FIO_PID" 2>/dev/null || { cat "$tmp/fio.log" >&2; die "fio exited at start"; }
    t0=$(date +%s.%N)
    if [ "$label" = alone ]; then
        : >"$tmp/send.json"
        sleep "$ALONE"
    else
    "$STM_SEND" --source "$SRC_URI" --control "$SRC_CTL" --dest "127.0.0.1:$RECV_PORT" \
        --tls-psk "$tmp/keys.psk" --flip forward --json --no-progress "${rate_args[@]}" \
        >"$tmp/send.json" 2>"$tmp/send.log" </dev/null || rc=$?
    fi
    t1=$(date +%s.%N)
    sleep "$COOLDOWN"
    stop_guest
    [ "$rc" -eq 0 ] || { cat "$tmp/send.log" "$tmp/recv.log" >&2; die "stm-send failed with status $rc"; }
    stop "$RECV_PID"
    stop "$SRC_PID"

    local row
    row="$(python3 - "$tmp/lat_lat.1.log" "$tmp/send.json" "$tmp/fio.json" "$t0" "$t1" <<'PY'
import json, sys
lat_log, send_json, fio_json, t0, t1 = sys.argv[1:6]
t0 = float(t0); t1 = float(t1)
PAD = 0.002

events = [json.loads(l) for l in open(send_json) if l.startswith("{")]
windows, start = [], None
downtime = passes = None
for e in events:
    if e["event"] == "freeze":
        start = e["ts"] - e.get("drain_ms", 0) / 1000.0
    elif e["event"] in ("flip", "cutover_overrun") and start is not None:
        windows.append((start - PAD, e["ts"] + PAD)); start = None
    elif e["event"] == "downtime":
        downtime = e["downtime_ms"]
    elif e["event"] == "done":
        passes = e["passes"]
if start is not None:
    windows.append((start - PAD, t1 + PAD))

base, outside, inside = [], [], []
for line in open(lat_log):
    f = line.split(",")
    if len(f) < 3 or f[2].strip() != "1":
        continue
    end = int(f[0]) / 1000.0 + 0.001     # completion, ms resolution
    ms = int(f[1]) / 1e6
    begin = end - ms / 1000.0 - 0.001
    if any(begin <= b and end >= a for a, b in windows):
        inside.append(ms)
    elif end < t0:
        base.append(ms)
    elif begin <= t1:
        outside.append(ms)

def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100.0))]

err = 0
try:
    text = open(fio_json).read()
    err = json.loads(text[text.index("{"):])["jobs"][0]["error"]
except Exception:
    err = -1
print("%.2f %s %.1f %d %.2f %.2f %.2f %d %d %d %.2f %.2f %.2f %d %d" % (
    t1 - t0, passes if passes is not None else "-",
    downtime if downtime is not None else -1,
    len(outside), pct(outside, 99), pct(outside, 99.9), max(outside or [0]),
    sum(1 for x in outside if x > 10), sum(1 for x in outside if x > 20),
    sum(1 for x in outside if x > 50), max(inside or [0]),
    pct(base, 99), max(base or [0]), len(windows), err))
PY
    )" || die "cannot read the latency log $tmp/lat_lat.1.log"
    # KEEP=1 keeps every run's logs, not only the last.
    if [ -n "${KEEP:-}" ]; then
        cp "$tmp/lat_lat.1.log" "$tmp/lat-$label-$rate-$run.log"
        cp "$tmp/send.json" "$tmp/send-$label-$rate-$run.json"
    fi
    local total passes down n p99 p999 max over10 over20 over50 inmax bp99 bmax nwin err
    read -r total passes down n p99 p999 max over10 over20 over50 inmax bp99 bmax nwin err <<<"$row"
    [ "$err" = 0 ] || die "$label: fio reported error $err"
    [ "$label" = alone ] && { down=-; inmax=-; }
    rows+=("$(printf '%-10s %-9s %3d %7s %6s %8s %7s %7s %7s %7s %5s %5s %5s %7s %8s %8s' \
              "$label" "$rate" "$run" "$total" "$passes" "$down" "$n" "$p99" "$p999" "$max" \
              "$over10" "$over20" "$over50" "$inmax" "$bp99" "$bmax")")
    local v
    for v in p99 p999 max; do
        record "$label $rate $v" "$(awk -v v="${!v}" 'BEGIN { printf "%.0f", v * 100 }')"
    done
    for v in over10 over20 over50; do record "$label $rate $v" "${!v}"; done
    note "${rows[-1]}"
    [ "$nwin" -le 1 ] || note "$label: $nwin freeze windows (a cutover was called off)"

    if [ -n "${TRACE:-}" ] && [ "$label" != alone ]; then
        # Only stm-recv's own calls: strace -f follows the export's
        # nbdkit too, which serves the guest after the flip.
        traces+=("$label $rate run $run: $(awk '
            NR == 1 { main = $1 }
            $1 == main && /<[0-9.]+>$/ {
                call = $3; sub(/\(.*/, "", call)
                t = $NF; gsub(/[<>]/, "", t); t *= 1000
                n[call]++; s[call] += t; if (t > m[call]) m[call] = t
            }
            END { for (c in n) printf "%s %d calls, max %.1f ms, total %.0f ms; ", c, n[c], m[c], s[c] }' \
            "$tmp/recv.strace")")
        note "${traces[-1]}"
    fi
}

declare -a rows traces
for (( run = 1; run <= RUNS; run++ )); do
    if [ "$ALONE" != 0 ]; then
        note "run $run: the guest alone for $ALONE s"
        first="${BUILDS%% *}"
        run_one alone "${first#*=}" -
    fi
    for rate in $RATES; do
        for b in $BUILDS; do
            note "run $run: ${b%%=*} --rate $rate (${SIZE_MIB} MiB)"
            run_one "${b%%=*}" "${b#*=}" "$rate"
        done
    done
done

printf '\n%s MiB image on %s, guest: fio nbd 4 KiB sequential FUA writes at %s IOPS, iodepth 1; flip forward\n' \
       "$SIZE_MIB" "$fstype" "$GUEST_IOPS"
printf 'latencies in ms; "outside" = during the migration, not overlapping a freeze window\n'
printf '%-10s %-9s %3s %7s %6s %8s %7s %7s %7s %7s %5s %5s %5s %7s %8s %8s\n' build rate run "total s" passes \
       "downtime" "writes" "p99" "p99.9" "max" ">10" ">20" ">50" "max in" "base p99" "base max"
printf '%s\n' "${rows[@]}"
printf '\nmedian over runs (ms):\n'
groups=()
[ "$ALONE" = 0 ] || groups+=("alone -")
for b in $BUILDS; do
    for rate in $RATES; do groups+=("${b%%=*} $rate"); done
done
# hundredths: the median of figures recorded in hundredths of a ms.
hundredths () { awk -v v="$(median_of "$1")" 'BEGIN { printf "%.2f", v / 100 }'; }
# sum NAME: the sum of integers recorded under NAME.
sum () { echo ${_results[$1]} | tr ' ' '\n' | awk '{ s += $1 } END { print s + 0 }'; }
printf '%-10s %-9s %8s %8s %8s %9s   %s\n' build rate "p99" "p99.9" "max" "worst max" \
       "writes over 10 / 20 / 50 ms, all runs"
for g in "${groups[@]}"; do
    printf '%-10s %-9s %8s %8s %8s %9s   %s / %s / %s\n' ${g} "$(hundredths "$g p99")" \
        "$(hundredths "$g p999")" "$(hundredths "$g max")" \
        "$(printf '%s\n' ${_results[$g max]} | sort -n | tail -n 1 | awk '{ printf "%.2f", $1 / 100 }')" \
        "$(sum "$g over10")" "$(sum "$g over20")" "$(sum "$g over50")"
done
if [ -n "${TRACE:-}" ]; then
    printf '\nstm-recv system calls (strace -T; strace slows them, so these runs are not in the figures):\n'
    printf '%s\n' "${traces[@]}"
fi
