# SPDX-License-Identifier: BSD-3-Clause
# shellcheck shell=bash
# stm benchmarks: the helpers the bench/*.sh scripts share.
#
# A script sources this file.  It finds the built tree (the first argument,
# else $STM_BUILD, else _build/ under the source tree), gives the run a
# private directory in /dev/shm (so images sit in the page cache, as in the
# comparison figures of the issues), starts every server in its own session
# and kills those sessions, and nothing else, when the script ends however
# it ends.  Timings are whole-process wall times in milliseconds; results
# are printed as a table of medians and ratios.
#
# Environment: RUNS (default 3) runs of every contender, interleaved so
# that a drift of the machine affects all of them alike; BENCH_DIR (default
# /dev/shm, else /tmp) for the images; KEEP=1 keeps the directory.

set -u

bench_name="$(basename "$0" .sh)"
srcdir="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-${STM_BUILD:-$srcdir/_build}}"
build="$(cd "$build" 2>/dev/null && pwd)" || {
    echo "$bench_name: no built tree at ${1:-${STM_BUILD:-$srcdir/_build}}" \
         "(give the build directory as the first argument or in STM_BUILD)" >&2
    exit 2
}
STM_SEND="$build/sender/stm-send"
STM_RECV="$build/receiver/stm-recv"
MIGRATE_FILTER="$build/nbdkit-plugin/.libs/nbdkit-migrate-filter.so"
for f in "$STM_SEND" "$STM_RECV" "$MIGRATE_FILTER"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "$bench_name: $f is not built" >&2; exit 2; }
done
RUNS="${RUNS:-3}"
# A python shim ahead of /usr/bin (pyenv) can break the system's tools.
PATH="/usr/bin:/bin:$PATH"

if [ -z "${BENCH_DIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then BENCH_DIR=/dev/shm; else BENCH_DIR=/tmp; fi
fi
tmp="$(mktemp -d "$BENCH_DIR/stm-bench.XXXXXX")"
_pids=()
_mounts=()
_at_exit=()

note () { echo "$bench_name: $*" >&2; }
die () { echo "$bench_name: ERROR: $*" >&2; exit 1; }
# tool_package TOOL: the Debian 12 package that provides TOOL, so that a
# message about a missing tool says what to install.
tool_package ()
{
    case "${1##*/}" in
        nbdkit) echo nbdkit ;;
        nbdcopy|nbdinfo|nbdsh) echo libnbd-bin ;;
        qemu-storage-daemon) echo qemu-system-common ;;
        qemu-img|qemu-io|qemu-nbd) echo qemu-utils ;;
        psktool|certtool) echo gnutls-bin ;;
        fio) echo fio ;;
        socat) echo socat ;;
        python3) echo python3 ;;
        ss|ip|tc) echo iproute2 ;;
        mkfs.ext4) echo e2fsprogs ;;
        cmp) echo diffutils ;;
        time) echo time ;;
        *) echo "the one that provides $1" ;;
    esac
}

# missing TOOL...: print the first TOOL that is not installed, with its
# package ("fio (Debian package fio)"); nothing, and status 1, if all are.
missing ()
{
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            { echo "$t (Debian package $(tool_package "$t"))"; return 0; }
    done
    return 1
}

# need TOOL: end the benchmark unless TOOL is installed.
need ()
{
    local m
    if m="$(missing "$1")"; then
        die "$m is not installed: apt-get install $(tool_package "$1")"
    fi
}

_cleanup ()
{
    local status=$? pid i
    trap '' INT TERM EXIT
    for pid in "${_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for (( i = 0; i < 50; i++ )); do
        local any=
        for pid in "${_pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && any=1; done
        [ -z "$any" ] && break
        sleep 0.1
    done
    for pid in "${_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    wait 2>/dev/null
    # A tmpfs mounted for the run goes with it, kept or not: its files
    # live in memory only.
    for m in "${_mounts[@]}"; do umount "$m" 2>/dev/null || note "could not unmount $m"; done
    # What the script asked to undo (at_exit), once its processes are gone.
    for (( i = ${#_at_exit[@]} - 1; i >= 0; i-- )); do eval "${_at_exit[$i]}"; done
    if [ -n "${KEEP:-}" ]; then note "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$status"
}
trap _cleanup EXIT
trap 'note interrupted; exit 1' INT TERM

# at_exit COMMAND...: run COMMAND when the benchmark ends however it
# ends, after its processes are killed, the last registered first (e.g.
# deleting a network namespace made for the run).
at_exit ()
{
    local q
    printf -v q '%q ' "$@"
    _at_exit+=("$q")
}

# spawn LOG COMMAND...: start COMMAND in its own session in the
# background; sets SPAWNED.
spawn ()
{
    local log="$1"; shift
    setsid "$@" </dev/null >"$log" 2>&1 &
    SPAWNED=$!
    _pids+=("$SPAWNED")
}

# stop PID: end a process started by spawn, and wait for it.
stop ()
{
    kill -TERM -- "-$1" 2>/dev/null
    local i
    for (( i = 0; i < 50; i++ )); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

# mount_tmpfs DIR MIB: mount a tmpfs of MIB MiB on DIR (created), unmounted
# when the benchmark ends however it ends.
mount_tmpfs ()
{
    mkdir -p "$1"
    mount -t tmpfs -o "size=${2}m" stm-bench "$1" ||
        die "could not mount a tmpfs on $1 (root is needed; or leave BENCH_DIR unset for /dev/shm)"
    _mounts+=("$1")
}

# fs_type DIR: the type of the file system holding DIR (tmpfs, ext2/ext3...).
fs_type () { stat -f -c %T "$1"; }

# wait_file PATH PID: wait (30 s at most) until PATH exists, while PID lives.
wait_file ()
{
    local i
    for (( i = 0; i < 300; i++ )); do
        [ -e "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || die "process $2 exited before creating $1"
        sleep 0.05
    done
    die "$1 did not appear within 30 s"
}

# free_port: print a TCP port nobody listens on.
free_port ()
{
    local p
    while :; do
        p=$(( 20000 + RANDOM % 40000 ))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
}

now_ms () { echo $(( $(date +%s%N) / 1000000 )); }

# median N...: the median of integers.
median ()
{
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
        else print int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# make_random FILE MIB: MIB MiB of incompressible data.  A short image
# (dd killed, or the file system full) would make every figure wrong, and
# QEMU's mirror refuse a target of another size: the benchmark ends.
make_random ()
{
    dd if=/dev/urandom of="$1" bs=1M count="$2" status=none iflag=fullblock ||
        die "could not write $2 MiB of random data to $1 (dd failed; the file is left short)"
    [ "$(stat -c %s "$1")" -eq $(( $2 * 1048576 )) ] ||
        die "$1 has $(stat -c %s "$1") bytes, not $2 MiB"
}

make_psk () { psktool -u stm -p "$1" >/dev/null 2>&1 || die "psktool failed"; }

# start_source IMAGE_ARGS...: nbdkit with the migrate filter on a Unix
# socket, serving the plugin and arguments given (e.g. file file=X).
# Sets SRC_PID, SRC_URI, SRC_CTL.
start_source ()
{
    rm -f "$tmp/src.sock" "$tmp/ctl.sock" "$tmp/src.pid"
    spawn "$tmp/source.log" nbdkit -f -U "$tmp/src.sock" -P "$tmp/src.pid" \
          --filter="$MIGRATE_FILTER" "$@" migrate-control="$tmp/ctl.sock"
    SRC_PID=$SPAWNED
    wait_file "$tmp/src.pid" "$SRC_PID"
    wait_file "$tmp/ctl.sock" "$SRC_PID"
    SRC_URI="nbd+unix:///?socket=$tmp/src.sock"
    SRC_CTL="$tmp/ctl.sock"
}

# start_recv OUTPUT TLS_ARGS...: stm-recv --once on RECV_ADDR (default
# 127.0.0.1), behind the command in the array RECV_WRAP, if set.  Sets
# RECV_PID and RECV_PORT.
start_recv ()
{
    local out="$1" i addr="${RECV_ADDR:-127.0.0.1}"; shift
    spawn "$tmp/recv.log" ${RECV_WRAP[@]+"${RECV_WRAP[@]}"} "$STM_RECV" --listen "$addr:0" --output "$out" --once "$@"
    RECV_PID=$SPAWNED
    RECV_PORT=
    for (( i = 0; i < 600; i++ )); do
        RECV_PORT="$(sed -n "s/.*listening on ${addr//./\\.}:\\([0-9][0-9]*\\).*/\\1/p" \
                     "$tmp/recv.log" | head -n 1)"
        [ -n "$RECV_PORT" ] && return 0
        kill -0 "$RECV_PID" 2>/dev/null || { cat "$tmp/recv.log" >&2; die "stm-recv exited at start"; }
        sleep 0.05
    done
    die "stm-recv did not say its port"
}

# wait_pid PID SECONDS: wait for a spawned process to exit; prints nothing,
# returns its status (124 if killed after SECONDS).
wait_pid ()
{
    local i n=$(( $2 * 20 ))
    for (( i = 0; i < n; i++ )); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$1" 2>/dev/null; then stop "$1"; return 124; fi
    wait "$1"
}

# ----------------------------------------------------------------------
# Fault sweeps (fault-sweep.sh, group-fault-sweep.sh): sources served the
# way the README starts them, a relay to cut, random moments, and what the
# filter and stm-send say afterwards.

# ctl_field SOCKET KEY: a field of the STATUS reply of the filter whose
# control socket is SOCKET (nothing if it does not answer).
ctl_field ()
{
    printf 'STATUS\n' | socat -t 2 - "UNIX-CONNECT:$1" 2>/dev/null |
        sed -n "1s/.*[ ]$2=\\([^ ]*\\).*/\\1/p"
}

# rand_ms LO HI: a random whole number of milliseconds in [LO, HI].
rand_ms () { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); }

sleep_ms () { sleep "$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')"; }

# start_daemon_disk NAME IMAGE: serve IMAGE through the migrate filter
# with nbdkit daemonized, exactly as the README starts it (no -f: nbdkit
# forks into the background and is known by its pidfile), on
# $tmp/NAME.sock with the control socket $tmp/NAME-ctl.sock.  Sets
# DAEMON_PID (also tracked for the cleanup).
start_daemon_disk ()
{
    local name="$1" image="$2" i
    rm -f "$tmp/$name.sock" "$tmp/$name-ctl.sock" "$tmp/$name.pid"
    nbdkit -U "$tmp/$name.sock" -P "$tmp/$name.pid" --filter="$MIGRATE_FILTER" \
           file file="$image" migrate-control="$tmp/$name-ctl.sock" \
           >>"$tmp/nbdkit-$name.log" 2>&1 ||
        die "nbdkit of $name did not start: $(tail -n 3 "$tmp/nbdkit-$name.log")"
    # The parent may return before the daemon has written its pidfile.
    for (( i = 0; i < 100; i++ )); do
        [ -s "$tmp/$name.pid" ] && break
        sleep 0.05
    done
    [ -s "$tmp/$name.pid" ] || die "nbdkit (daemonized) wrote no pidfile $tmp/$name.pid"
    DAEMON_PID="$(cat "$tmp/$name.pid")"
    _pids+=("$DAEMON_PID")
    wait_file "$tmp/$name-ctl.sock" "$DAEMON_PID"
}

# stop_daemon PID: end a daemonized nbdkit (SIGTERM, then SIGKILL after
# 5 s); it is not our child, so it is polled, not waited for.
stop_daemon ()
{
    local i
    kill -TERM "$1" 2>/dev/null
    for (( i = 0; i < 50; i++ )); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null
    return 0
}

# wait_listening PORT WHAT: wait (5 s at most) until something listens on
# 127.0.0.1:PORT.
wait_listening ()
{
    local i
    for (( i = 0; i < 100; i++ )); do
        ss -Hltn "sport = :$1" | grep -q LISTEN && return 0
        sleep 0.05
    done
    die "$2 did not listen on $1"
}

# start_tcp_relay FROM TO LOG: socat relaying 127.0.0.1:FROM to
# 127.0.0.1:TO, a connection each; sets RELAY_PID (cut it with
# kill -KILL -- -$RELAY_PID).
start_tcp_relay ()
{
    spawn "$3" socat "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$2"
    RELAY_PID=$SPAWNED
    wait_listening "$1" "the relay"
}

# bytes_of FILE: what a stm-send run reported sending in FILE (its --json
# output): its summary, else its last progress event, else 0.  The first
# bytes_sent of the line is the run's: a group's summary adds each disk's
# after it.
bytes_of ()
{
    local line
    line="$(grep '"event":"done"' "$1" | tail -n 1)"
    [ -n "$line" ] || line="$(grep '"event":"progress"' "$1" | tail -n 1)"
    line="$(grep -o '"bytes_sent":[0-9]*' <<< "$line" | head -n 1)"
    echo "${line#*:}" | sed 's/^$/0/'
}

# sent_bound BYTES RATE: the most that the stm-send runs of a migration of
# BYTES, hit by one fault, may send in all without having copied again
# from scratch: 1.6 times BYTES (the full pass and the passes of what the
# guest dirtied meanwhile), plus one second at RATE bytes/s, what a lost
# connection may cost (what was sent since the last durable SYNC, which
# stm-send asks for about every second: stm-send(1)).
sent_bound () { echo $(( $1 * 16 / 10 + $2 )); }

# migration_of FILE...: the migration id of the last start event in the
# stm-send outputs FILE...
migration_of ()
{
    grep -h '"event":"start"' "$@" | sed -n 's/.*"migration_id":"\([0-9a-f]*\)".*/\1/p' |
        tail -n 1
}

# CPU time.  On a machine with few CPUs a pipeline of processes is bound by
# the CPU time they use together, not by any one of them, so the benchmarks
# can show it per process.  CPU_TIMES is a command prefix (an array) that
# runs the rest of its command line and writes to the file named by its
# first argument the CPU time the command used, user plus system, in ms:
#   "${CPU_TIMES[@]}" FILE COMMAND...
# It uses the shell's own `times`, so no extra package is needed.
CPU_TIMES=(bash -c '"${@:2}"; rc=$?
    # times runs in this shell (a subshell would count its own children);
    # it prints the children'"'"'s user and system time as 0m1.234s.
    times >"$1"; { read -r _ _; read -r u s; } <"$1"
    # ms: the same time in milliseconds.
    ms () { local t="${1%s}"; t="${t#*m}"; echo $(( ${1%%m*} * 60000 + 10#${t/./} )); }
    echo $(( $(ms "$u") + $(ms "$s") )) >"$1"
    exit $rc' cpu-times)

# cpu_ms_of_pid PID: CPU time (user plus system, all threads) a running
# process has used so far, in ms.
cpu_ms_of_pid ()
{
    local hz; hz="$(getconf CLK_TCK)"
    # Fields 14 and 15 of /proc/PID/stat, counted after the command name,
    # which is in parentheses and may hold spaces.
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null |
        awk -v hz="$hz" '{ printf "%d\n", ($12 + $13) * 1000 / hz }'
}

# time_stm_send TLS_ARGS...: run stm-send from the current source to the
# current receiver (at RECV_ADDR, default 127.0.0.1; behind the command in
# the array SEND_WRAP, if set);
# sets MS (wall time) and fails the benchmark on error.
# The wall time covers the whole process: connecting, the handshake, the
# full pass, the (empty) final pass, COMMIT and the flip.
time_stm_send ()
{
    local t0 t1 rc=0
    t0=$(now_ms)
    ${SEND_WRAP[@]+"${SEND_WRAP[@]}"} "$STM_SEND" --source "$SRC_URI" --control "$SRC_CTL" \
        --dest "${RECV_ADDR:-127.0.0.1}:$RECV_PORT" --no-progress "$@" \
        >"$tmp/send.log" 2>&1 </dev/null || rc=$?
    t1=$(now_ms)
    MS=$(( t1 - t0 ))
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/send.log" "$tmp/recv.log" >&2
        die "stm-send failed with status $rc"
    fi
    wait_pid "$RECV_PID" 30 || die "stm-recv --once did not exit 0 after the migration"
}

# time_cmd COMMAND...: run COMMAND, set MS; fail the benchmark on error.
time_cmd ()
{
    local t0 t1 rc=0
    t0=$(now_ms)
    "$@" >"$tmp/cmd.log" 2>&1 </dev/null || rc=$?
    t1=$(now_ms)
    MS=$(( t1 - t0 ))
    [ "$rc" -eq 0 ] || { cat "$tmp/cmd.log" >&2; die "'$*' failed with status $rc"; }
}

# start_nbdkit_target PORT ARGS...: nbdkit on 127.0.0.1:PORT (TCP) with
# ARGS; sets TGT_PID.
start_nbdkit_target ()
{
    local port="$1"; shift
    rm -f "$tmp/tgt.pid"
    spawn "$tmp/target.log" nbdkit -f -i 127.0.0.1 -p "$port" -P "$tmp/tgt.pid" "$@"
    TGT_PID=$SPAWNED
    wait_file "$tmp/tgt.pid" "$TGT_PID"
}

# Results: record NAME MS, then print_table BASE (ratios against BASE).
declare -A _results
_names=()
record ()
{
    [ -n "${_results[$1]+x}" ] || _names+=("$1")
    _results[$1]="${_results[$1]:-} $2"
}
median_of () { median ${_results[$1]}; }

# print_table BYTES: medians, MiB/s for BYTES moved, and each contender's
# speed relative to stm (>1: stm is that many times faster).
print_table ()
{
    local bytes="$1" n med stm_med
    stm_med="$(median_of "${2:-stm-psk}")"
    printf '\n%-34s %10s %10s %14s   %s\n' contender "median ms" "MiB/s" \
           "stm speedup" "runs (ms)"
    for n in "${_names[@]}"; do
        med="$(median_of "$n")"
        awk -v n="$n" -v m="$med" -v b="$bytes" -v s="$stm_med" -v r="${_results[$n]}" \
            'BEGIN { rate = m > 0 ? b / 1048576 / (m / 1000) : 0; ratio = s > 0 ? m / s : 0;
                     printf "%-34s %10d %10.0f %13.2fx  %s\n", n, m, rate, ratio, r }'
    done
}

# CPU results: record_cpu NAME MS... (one figure, or the parts of a
# pipeline: for stm the source nbdkit, stm-send and stm-recv), then
# print_cpu_table.
declare -A _cpu
_cpu_names=()
record_cpu ()
{
    local name="$1" total=0 i=0 ms; shift
    [ -n "${_cpu[$name]+x}" ] || _cpu_names+=("$name")
    for ms in "$@"; do
        total=$(( total + ms ))
        _cpu[$name:$i]="${_cpu[$name:$i]:-} $ms"
        i=$(( i + 1 ))
    done
    _cpu[$name]="${_cpu[$name]:-} $total"
    _cpu[$name:parts]=$#
}

# print_cpu_table PART_NAMES [BYTES]: median CPU time of each contender,
# all its processes together, and how many CPUs that kept busy over its
# median wall time.  With N CPUs no contender can finish in less than its
# CPU time / N.  With BYTES (what every contender copied), also the CPU
# seconds per GiB copied, all processes together and each process, which
# compare across image sizes.
print_cpu_table ()
{
    local n med wall i parts split per_gib
    printf '\n%-34s %10s %10s %10s %10s   %s\n' contender "CPU ms" "wall ms" "CPUs busy" \
           "${2:+CPU s/GiB}" "CPU ms by process${1:+ ($1)}${2:+, and s/GiB}"
    for n in "${_cpu_names[@]}"; do
        med="$(median ${_cpu[$n]})"
        wall="$(median_of "$n")"
        split=
        per_gib=
        parts="${_cpu[$n:parts]}"
        if [ "$parts" -gt 1 ]; then
            for (( i = 0; i < parts; i++ )); do
                split="$split${split:+ / }$(median ${_cpu[$n:$i]})"
                [ -z "${2:-}" ] || per_gib="$per_gib${per_gib:+ / }$(awk -v c="$(median ${_cpu[$n:$i]})" \
                    -v b="$2" 'BEGIN { printf "%.2f", c / 1000 / (b / 1073741824) }')"
            done
            [ -z "$per_gib" ] || split="$split = $per_gib"
        fi
        awk -v n="$n" -v c="$med" -v w="$wall" -v s="$split" -v b="${2:-0}" 'BEGIN {
            g = b > 0 ? sprintf("%.2f", c / 1000 / (b / 1073741824)) : ""
            printf "%-34s %10d %10d %10.2f %10s   %s\n", n, c, w, (w > 0 ? c / w : 0), g, s }'
    done
}
