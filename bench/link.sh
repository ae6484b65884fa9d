#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm benchmark: one full migration of a realistic image over a real,
# shaped network link, stm against nbdcopy and QEMU's mirror (issue 15).
#
#   bench/link.sh [BUILD_DIR]      (default $STM_BUILD, else _build/; root)
#
# The image is an ext4 file system made with mkfs.ext4 -d from a directory
# of this machine (libraries: compressible, with free space as holes), made
# once and kept in WORK.  Its allocated bytes (du) are printed: rates and
# the bytes on the wire are given against those, not the image's size.
#
# The link.  Two network namespaces, stmbench-PID-a (the source host) and
# stmbench-PID-b (the destination host), joined two ways:
#   fast   a veth pair, each end's egress shaped by tc tbf to FAST_RATE
#          (default 1gbit), no delay added: 10.201.1.1 -> 10.201.1.2
#   slow   two TUN devices joined by bench/link-delay.py, a delay line of
#          SLOW_RTT_MS / 2 each way (default 20 ms round trip), each
#          device's egress shaped by tbf to SLOW_RATE (default 100mbit)
#          before the delay: 10.201.2.1 -> 10.201.2.2
# The delay is a user-space delay line because this machine's kernel has
# no netem (CONFIG_NET_SCH_NETEM is not set); it works the same on a
# kernel that has one, so figures stay comparable.  Its CPU time (it
# shares the machine's CPUs with the contenders) is printed with each
# run.  Before its runs each link is measured: the time of a TCP connect
# (one round trip, the best of five) and the rate of one TCP stream of
# zeros (socat), about 1.5 s of the configured rate.
#
# Contenders, every TCP endpoint in its namespace (Unix sockets, such as
# the migrate filter's, are local to a host and not shaped):
#   stm                    nbdkit --filter=migrate file src.img in A;
#                          stm-send --tls-psk in A into stm-recv --once in
#                          B, default flags; time: stm-send's whole run
#                          (connect, handshake, full pass, COMMIT with its
#                          fdatasync, flip)
#   stm-compress-MODE      the same with stm-send --compress MODE, for each
#                          MODE of COMPRESS (default "off auto zstd") that
#                          stm-send --help lists; none if it has no
#                          --compress
#   nbdcopy-nbds-psk       nbdcopy --flush -- [ nbdkit file src.img ] into
#                          nbdkit --tls=require --tls-psk file dst.img in B
#                          (nbdcopy does not flush unless asked: --flush
#                          makes it durable, as stm's COMMIT is); time: the
#                          whole nbdcopy process
#   qemu-mirror-nbds-psk   qemu-storage-daemon in A, blockdev-mirror
#                          sync=full into the same nbdkit target in B over
#                          TLS (tls-creds-psk; QEMU_TLS=0: plain NBD,
#                          qemu-mirror-nbd); time: blockdev-add (connect,
#                          handshake) plus mirror start to COMPLETED after
#                          block-job-cancel at READY (QEMU flushes the
#                          target before READY)
# Every run: wall time, bytes on the wire (the Sent counters of the two
# tbf qdiscs of the link, both directions, headers included: the same
# count for every tool), CPU time of all the contender's processes, and
# the destination compared with the source (cmp): a difference ends the
# benchmark.  Per link, a table of medians with each contender's time
# over stm's (>1: stm is that many times faster).
#
# Environment:
#   SIZE_MIB     the image's size (default 2048)
#   SRC_DIR      what the image holds (default /usr/lib/x86_64-linux-gnu)
#   WORK         where the image is kept (default /var/tmp/stm-bench);
#                REBUILD=1 makes it again (after SRC_DIR changed)
#   LINKS        which links, in order (default "fast slow")
#   FAST_RATE, SLOW_RATE, SLOW_RTT_MS   the links (rates: Nkbit, Nmbit,
#                Ngbit)
#   RUNS         runs of every contender on every link (default 1)
#   COMPRESS     stm-send --compress modes to try (default "off auto zstd")
#   SKIP         contenders to leave out (names above, space separated)
#   QEMU_TLS     1 (default) or 0
#   RUN_TIMEOUT  seconds one contender's run may take (default 1800)
#   JSON, MD     files to write every run (JSON) and the tables (markdown)
#   BENCH_DIR, KEEP  as for every benchmark (bench-lib.sh); the images
#                are copied into BENCH_DIR (default /dev/shm) for the runs
#
# For example, a quick check (150 MiB of data; about a minute):
#   SIZE_MIB=256 SRC_DIR=/usr/share/doc bench/link.sh _build
# and the measurement (2 GiB, 1.4 GiB of data; about 20 minutes, twice
# that with three --compress modes, nearly all of it on the slow link):
#   RUNS=3 JSON=link.json MD=link.md bench/link.sh _build
# Every timed command runs under timeout --foreground, so that it stays in
# the terminal's process group and an interrupt (^C) reaches it at once.
_link_runs="${RUNS:-1}"
source "$(dirname "$0")/bench-lib.sh"
RUNS="$_link_runs"

SIZE_MIB="${SIZE_MIB:-2048}"
SRC_DIR="${SRC_DIR:-/usr/lib/x86_64-linux-gnu}"
WORK="${WORK:-/var/tmp/stm-bench}"
LINKS="${LINKS:-fast slow}"
FAST_RATE="${FAST_RATE:-1gbit}"
SLOW_RATE="${SLOW_RATE:-100mbit}"
SLOW_RTT_MS="${SLOW_RTT_MS:-20}"
COMPRESS="${COMPRESS:-off auto zstd}"
QEMU_TLS="${QEMU_TLS:-1}"
RUN_TIMEOUT="${RUN_TIMEOUT:-1800}"
SKIP=" ${SKIP:-} "
size=$(( SIZE_MIB * 1048576 ))

[ "$(id -u)" -eq 0 ] || die "network namespaces (ip netns) need root"
for t in ip tc nbdkit nbdcopy psktool cmp python3 mkfs.ext4 socat timeout; do need "$t"; done
wanted () { [[ "$SKIP" != *" $1 "* ]]; }

qemu_name=qemu-mirror-nbds-psk
[ "$QEMU_TLS" = 1 ] || qemu_name=qemu-mirror-nbd
qemu_skipped=
if wanted "$qemu_name" && m="$(missing qemu-storage-daemon)"; then
    qemu_skipped="$qemu_name skipped: $m is not installed"
    note "$qemu_skipped"
    SKIP="$SKIP $qemu_name "
fi

# The --compress modes to run: those of COMPRESS that stm-send's help
# names near --compress (all of them if it names none: a mode it refuses
# then fails its run, saying so).
compress_modes=()
if "$STM_SEND" --help 2>&1 | grep -q -- '--compress'; then
    help="$("$STM_SEND" --help 2>&1 | grep -A 4 -- '--compress')"
    for m in $COMPRESS; do grep -qw -- "$m" <<<"$help" && compress_modes+=("$m"); done
    [ "${#compress_modes[@]}" -gt 0 ] || read -r -a compress_modes <<<"$COMPRESS"
else
    note "stm-send has no --compress: only its default flags are run"
fi

# rate_bits RATE: tc's rate (Nbit, Nkbit, Nmbit, Ngbit) in bits/s.
rate_bits ()
{
    local n="${1%%[!0-9]*}" unit="${1##*[0-9]}"
    [ -n "$n" ] || die "rate $1: give it as Nkbit, Nmbit or Ngbit"
    case "$unit" in
        gbit) echo $(( n * 1000000000 )) ;;
        mbit) echo $(( n * 1000000 )) ;;
        kbit) echo $(( n * 1000 )) ;;
        bit|"") echo "$n" ;;
        *) die "rate $1: give it as Nkbit, Nmbit or Ngbit" ;;
    esac
}

# build_image: the ext4 image of SRC_DIR, SIZE_MIB MiB, made once and
# kept in WORK; sets IMAGE.
build_image ()
{
    local key; key="$(printf '%s' "$SRC_DIR" | tr -c 'A-Za-z0-9' '_')"
    IMAGE="$WORK/link-${SIZE_MIB}M$key.img"
    [ -s "$IMAGE" ] && [ -z "${REBUILD:-}" ] && return 0
    [ -d "$SRC_DIR" ] || die "SRC_DIR $SRC_DIR is not a directory: no image made"
    mkdir -p "$WORK" || die "could not create the image cache $WORK"
    note "making $IMAGE: ext4 of $SIZE_MIB MiB holding $SRC_DIR (kept; REBUILD=1 makes it again)"
    rm -f "$IMAGE.part"
    if ! { truncate -s "${SIZE_MIB}M" "$IMAGE.part" &&
           mkfs.ext4 -q -F -d "$SRC_DIR" "$IMAGE.part"; } >"$tmp/mkfs.log" 2>&1; then
        rm -f "$IMAGE.part"
        cat "$tmp/mkfs.log" >&2
        die "mkfs.ext4 -d $SRC_DIR into $SIZE_MIB MiB failed (too small for the data?); no image kept"
    fi
    mv "$IMAGE.part" "$IMAGE" || die "could not move the new image to $IMAGE"
}

NS_A="stmbench-$$-a"
NS_B="stmbench-$$-b"
declare -A DEV_A DEV_B IP_B LINK_DESC PROBE
DELAY_PID=

make_namespaces ()
{
    local ns
    for ns in "$NS_A" "$NS_B"; do
        ip netns add "$ns" || die "could not create the network namespace $ns"
        at_exit ip netns del "$ns"
        ip -n "$ns" link set lo up || die "could not bring up lo in $ns"
    done
}

# tbf_on NS DEV RATE: shape DEV's egress in NS to RATE.  The bucket holds
# 2 ms at RATE, at least 64 KiB (a whole GSO packet); the queue behind it
# at most 50 ms.
tbf_on ()
{
    local burst=$(( $(rate_bits "$3") / 8 / 500 ))
    [ "$burst" -ge 65536 ] || burst=65536
    tc -n "$1" qdisc add dev "$2" root tbf rate "$3" burst "$burst" latency 50ms ||
        die "could not shape $2 in $1 to $3 (tc tbf); the namespaces are deleted at exit"
}

# link_up NAME DEV_A DEV_B SUBNET RATE: address the two ends (SUBNET.1 in
# A, SUBNET.2 in B), bring them up and shape both.
link_up ()
{
    local name="$1" a="$2" b="$3" net="$4" rate="$5"
    ip -n "$NS_A" addr add "$net.1" peer "$net.2" dev "$a" &&
        ip -n "$NS_B" addr add "$net.2" peer "$net.1" dev "$b" &&
        ip -n "$NS_A" link set "$a" up && ip -n "$NS_B" link set "$b" up ||
        die "could not address and bring up the $name link ($a in $NS_A, $b in $NS_B)"
    tbf_on "$NS_A" "$a" "$rate"
    tbf_on "$NS_B" "$b" "$rate"
    DEV_A[$name]="$a" DEV_B[$name]="$b" IP_B[$name]="$net.2"
}

make_fast_link ()
{
    ip -n "$NS_A" link add fast0 type veth peer name fast0 netns "$NS_B" ||
        die "could not create a veth pair between $NS_A and $NS_B"
    link_up fast fast0 fast0 10.201.1 "$FAST_RATE"
    LINK_DESC[fast]="veth, tbf $FAST_RATE each way, no added delay"
}

make_slow_link ()
{
    local a="stmd$$a" b="stmd$$b" i one_way
    one_way="$(awk -v r="$SLOW_RTT_MS" 'BEGIN { print r / 2 }')"
    spawn "$tmp/delay.log" python3 -u "$srcdir/bench/link-delay.py" "$a" "$b" "$one_way"
    DELAY_PID=$SPAWNED
    for (( i = 0; i < 200; i++ )); do
        grep -q '^ready' "$tmp/delay.log" && break
        kill -0 "$DELAY_PID" 2>/dev/null || { cat "$tmp/delay.log" >&2; die "the delay line exited at start"; }
        sleep 0.05
    done
    grep -q '^ready' "$tmp/delay.log" || die "the delay line did not create $a and $b within 10 s"
    ip link set "$a" netns "$NS_A" && ip link set "$b" netns "$NS_B" ||
        die "could not move the TUN devices $a and $b into $NS_A and $NS_B"
    link_up slow "$a" "$b" 10.201.2 "$SLOW_RATE"
    LINK_DESC[slow]="TUN delay line, tbf $SLOW_RATE each way, ${SLOW_RTT_MS} ms round trip"
}

# wire_bytes LINK: the bytes both ends of LINK have sent so far (their
# tbf qdiscs' Sent counters).
wire_bytes ()
{
    local a b
    a="$(tc -n "$NS_A" -s qdisc show dev "${DEV_A[$1]}" | awk '$1 == "Sent" { print $2; exit }')"
    b="$(tc -n "$NS_B" -s qdisc show dev "${DEV_B[$1]}" | awk '$1 == "Sent" { print $2; exit }')"
    [ -n "$a" ] && [ -n "$b" ] || die "could not read the tc counters of the $1 link"
    echo $(( a + b ))
}

# ns_wait_listening NS PORT WHAT: wait (5 s at most) until something in
# NS listens on PORT.
ns_wait_listening ()
{
    local i
    for (( i = 0; i < 100; i++ )); do
        ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q LISTEN && return 0
        sleep 0.05
    done
    die "$3 did not listen on port $2 in $1"
}

# probe_link LINK: measure LINK's round trip (the best of five TCP
# connects) and the rate of one TCP stream over it; sets PROBE[LINK].
probe_link ()
{
    local link="$1" ip="${IP_B[$1]}" port pid us bytes t0 t1 i
    port="$(free_port)"
    spawn "$tmp/probe-rtt.log" ip netns exec "$NS_B" \
          socat "TCP-LISTEN:$port,bind=$ip,reuseaddr,fork" OPEN:/dev/null
    pid=$SPAWNED
    ns_wait_listening "$NS_B" "$port" "the probe's listener"
    # EPOCHREALTIME: no process is started between the two readings.
    us="$(ip netns exec "$NS_A" bash -c 'best=
        for i in 1 2 3 4 5; do
            t0=${EPOCHREALTIME/./}; exec 3<>"/dev/tcp/$1/$2" || exit 1; t1=${EPOCHREALTIME/./}
            exec 3<&-
            d=$(( t1 - t0 )); { [ -z "$best" ] || [ "$d" -lt "$best" ]; } && best=$d
        done; echo "$best"' probe "$ip" "$port")" || die "could not connect over the $link link"
    stop "$pid"
    bytes=$(( $(rate_bits "${LINK_RATE[$link]}") / 8 * 3 / 2 ))
    port="$(free_port)"
    spawn "$tmp/probe-rate.log" ip netns exec "$NS_B" \
          socat -u "TCP-LISTEN:$port,bind=$ip,reuseaddr" OPEN:/dev/null,wronly
    pid=$SPAWNED
    ns_wait_listening "$NS_B" "$port" "the probe's receiver"
    t0="$(now_ms)"
    head -c "$bytes" /dev/zero | ip netns exec "$NS_A" socat -u - "TCP:$ip:$port" ||
        die "could not send the probe's stream over the $link link"
    # The receiver ends when it has read everything: that is the time.
    for (( i = 0; i < 6000; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
    t1="$(now_ms)"
    stop "$pid"
    PROBE[$link]="$(awk -v us="$us" -v b="$bytes" -v ms=$(( t1 - t0 )) 'BEGIN {
        printf "TCP connect (one round trip) %.2f ms; one TCP stream %.0f Mbit/s", us / 1000, b * 8 / ms / 1000 }')"
    note "$link link: ${PROBE[$link]}"
}
declare -A LINK_RATE=([fast]="$FAST_RATE" [slow]="$SLOW_RATE")

# link_cpu LINK: the CPU ms the slow link's delay line has used so far (0
# for another link): run_* take it before and after a run.
link_cpu ()
{
    if [ "$1" = slow ] && [ -n "$DELAY_PID" ]; then cpu_ms_of_pid "$DELAY_PID"; else echo 0; fi
}

# Results: result LINK NAME MS WIRE_BYTES CPU_MS LINK_CPU_MS (one run; the
# last: the delay line's, not counted in CPU_MS).
declare -A R_MS R_WIRE R_CPU R_LCPU
declare -a ORDER
runs_json=()
result ()
{
    local key="$1 $2"
    [ -n "${R_MS[$key]+x}" ] || ORDER+=("$key")
    R_MS[$key]="${R_MS[$key]:-} $3" R_WIRE[$key]="${R_WIRE[$key]:-} $4" R_CPU[$key]="${R_CPU[$key]:-} $5"
    R_LCPU[$key]="${R_LCPU[$key]:-} $6"
    note "$1 $2: $3 ms, $4 bytes on the wire, $5 CPU ms (the delay line $6 more);" \
         "destination identical"
    runs_json+=("{\"link\":\"$1\",\"contender\":\"$2\",\"run\":$run,\"ms\":$3,\"wire_bytes\":$4,\"cpu_ms\":$5,\"delay_line_cpu_ms\":$6}")
}

check_copy ()
{
    cmp -s "$tmp/src.img" "$dst" ||
        die "$1 over the $2 link: the destination $dst differs from the source (KEEP=1 keeps both)"
}

# start_target LINK TLS(0|1): nbdkit file dst.img (pre-sized) in B on
# LINK's address; sets TGT_PID, TGT_PORT.
start_target ()
{
    TGT_PORT="$(free_port)"
    rm -f "$dst" "$tmp/tgt.pid"; truncate -s "$size" "$dst"
    local tls=()
    [ "$2" -eq 1 ] && tls=(--tls=require --tls-psk="$tmp/keys.psk")
    spawn "$tmp/target.log" ip netns exec "$NS_B" nbdkit -f -i "${IP_B[$1]}" -p "$TGT_PORT" \
          -P "$tmp/tgt.pid" "${tls[@]}" file "$dst"
    TGT_PID=$SPAWNED
    wait_file "$tmp/tgt.pid" "$TGT_PID"
}

run_stm ()   # LINK NAME STM-SEND-ARGS...
{
    local link="$1" name="$2" w0 w1 l0 l1 src_cpu; shift 2
    rm -f "$dst"
    start_source file file="$tmp/src.img"
    RECV_ADDR="${IP_B[$link]}"
    RECV_WRAP=(ip netns exec "$NS_B" "${CPU_TIMES[@]}" "$tmp/recv.cpu")
    start_recv "$dst" --tls-psk "$tmp/keys.psk"
    SEND_WRAP=(timeout --foreground "$RUN_TIMEOUT" ip netns exec "$NS_A" "${CPU_TIMES[@]}" "$tmp/send.cpu")
    w0="$(wire_bytes "$link")" l0="$(link_cpu "$link")"
    time_stm_send --tls-psk "$tmp/keys.psk" "$@"
    w1="$(wire_bytes "$link")" l1="$(link_cpu "$link")"
    unset RECV_WRAP SEND_WRAP
    src_cpu="$(cpu_ms_of_pid "$(cat "$tmp/src.pid")")"
    stop "$SRC_PID"
    check_copy "$name" "$link"
    result "$link" "$name" "$MS" $(( w1 - w0 )) \
           $(( src_cpu + $(cat "$tmp/send.cpu") + $(cat "$tmp/recv.cpu") )) $(( l1 - l0 ))
}

run_nbdcopy ()   # LINK
{
    local link="$1" w0 w1 l0 l1 tgt_cpu
    start_target "$link" 1
    w0="$(wire_bytes "$link")" l0="$(link_cpu "$link")"
    time_cmd "${CPU_TIMES[@]}" "$tmp/cmd.cpu" timeout --foreground "$RUN_TIMEOUT" ip netns exec "$NS_A" \
        nbdcopy --flush -- [ nbdkit file "$tmp/src.img" ] \
        "nbds://stm@${IP_B[$link]}:$TGT_PORT/?tls-psk-file=$tmp/keys.psk"
    w1="$(wire_bytes "$link")" l1="$(link_cpu "$link")"
    # nbdcopy's CPU time includes the nbdkit it started for the source.
    tgt_cpu="$(cpu_ms_of_pid "$(cat "$tmp/tgt.pid")")"
    stop "$TGT_PID"
    check_copy nbdcopy-nbds-psk "$link"
    result "$link" nbdcopy-nbds-psk "$MS" $(( w1 - w0 )) $(( $(cat "$tmp/cmd.cpu") + tgt_cpu )) \
           $(( l1 - l0 ))
}

run_qemu ()   # LINK
{
    local link="$1" w0 w1 l0 l1 qsd qsd_cpu tgt_cpu ms tls=() id=() rc=0
    start_target "$link" "$QEMU_TLS"
    if [ "$QEMU_TLS" = 1 ]; then
        mkdir -p "$tmp/qemu-psk" && cp "$tmp/keys.psk" "$tmp/qemu-psk/keys.psk"
        tls=(--object "tls-creds-psk,id=tls0,endpoint=client,dir=$tmp/qemu-psk,username=stm")
        id=(tls0)
    fi
    rm -f "$tmp/qmp.sock"
    spawn "$tmp/qsd.log" ip netns exec "$NS_A" qemu-storage-daemon \
        --blockdev "driver=file,node-name=f0,filename=$tmp/src.img" \
        --blockdev driver=raw,node-name=src,file=f0 "${tls[@]}" \
        --chardev "socket,path=$tmp/qmp.sock,server=on,wait=off,id=c0" --monitor chardev=c0
    qsd=$SPAWNED
    wait_file "$tmp/qmp.sock" "$qsd"
    w0="$(wire_bytes "$link")" l0="$(link_cpu "$link")"
    timeout --foreground "$RUN_TIMEOUT" python3 "$srcdir/bench/live-qemu-mirror.py" "$tmp/qmp.sock" \
        "$TGT_PORT" background "$RUN_TIMEOUT" 120 "${IP_B[$link]}" "${id[@]}" \
        >"$tmp/qemu.json" 2>"$tmp/qemu.err" || rc=$?
    w1="$(wire_bytes "$link")" l1="$(link_cpu "$link")"
    [ "$rc" -eq 0 ] || { cat "$tmp/qemu.err" "$tmp/qsd.log" >&2; die "QEMU's mirror over the $link link failed (status $rc)"; }
    ms="$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(round(d["add_ms"] + d["total_ms"]) if d["converged"] and d["completed"] else "")' "$tmp/qemu.json")"
    [ -n "$ms" ] || { cat "$tmp/qemu.json" >&2; die "QEMU's mirror over the $link link did not complete"; }
    qsd_cpu="$(cpu_ms_of_pid "$qsd")"
    tgt_cpu="$(cpu_ms_of_pid "$(cat "$tmp/tgt.pid")")"
    stop "$qsd"; stop "$TGT_PID"
    check_copy "$qemu_name" "$link"
    result "$link" "$qemu_name" "$ms" $(( w1 - w0 )) $(( qsd_cpu + tgt_cpu )) $(( l1 - l0 ))
}

# print_link LINK OUT: the medians of LINK's contenders, as text on
# stdout and, if OUT is a file name, as a markdown table appended to it.
print_link ()
{
    local link="$1" out="$2" key stm ms
    stm="$(median ${R_MS[$link stm]:-0})"
    echo
    echo "$link link (${LINK_DESC[$link]}): ${PROBE[$link]}"
    printf '%-24s %9s %11s %10s %10s %8s %8s %8s   %s\n' contender "median s" "data MiB/s" \
           "wire MiB" "wire/data" "CPU s" "line s" "vs stm" "runs (s)"
    [ -z "$out" ] || {
        echo; echo "$link link (${LINK_DESC[$link]}): ${PROBE[$link]}"; echo
        echo "| contender | median s | data MiB/s | wire MiB | wire/data | CPU s | delay line CPU s | time / stm's |"
        echo "|---|---|---|---|---|---|---|---|"; } >>"$out"
    for key in "${ORDER[@]}"; do
        [ "${key%% *}" = "$link" ] || continue
        ms="$(median ${R_MS[$key]})"
        awk -v n="${key#* }" -v m="$ms" -v w="$(median ${R_WIRE[$key]})" \
            -v c="$(median ${R_CPU[$key]})" -v l="$(median ${R_LCPU[$key]})" \
            -v d="$alloc" -v s="$stm" -v r="${R_MS[$key]}" \
            -v out="$out" 'BEGIN {
            rate = d / 1048576 / (m / 1000); ratio = s > 0 ? m / s : 0
            runs = ""; k = split(r, v, " ")
            for (i = 1; i <= k; i++) runs = runs sprintf(" %.2f", v[i] / 1000)
            printf "%-24s %9.2f %11.1f %10.1f %10.2f %8.1f %8.1f %7.2fx  %s\n", n, m / 1000,
                   rate, w / 1048576, w / d, c / 1000, l / 1000, ratio, runs
            if (out != "")
                printf "| %s | %.2f | %.1f | %.1f | %.2f | %.1f | %.1f | %.2fx |\n", n, m / 1000,
                       rate, w / 1048576, w / d, c / 1000, l / 1000, ratio >> out }'
    done
}

write_json ()   # FILE
{
    local l links=()
    for l in $LINKS; do
        links+=("{\"name\":\"$l\",\"rate\":\"${LINK_RATE[$l]}\",\"desc\":\"${LINK_DESC[$l]}\",\"probe\":\"${PROBE[$l]}\"}")
    done
    # "${a[*]}" joins with the first character of IFS: a comma here.
    ( IFS=,
      printf '{"image":{"size_bytes":%d,"allocated_bytes":%d,"src_dir":"%s"},"links":[%s],"runs":[%s]}\n' \
          "$size" "$alloc" "$SRC_DIR" "${links[*]}" "${runs_json[*]}" ) >"$1" ||
        die "could not write $1"
}

# ----------------------------------------------------------------------
build_image
cp --sparse=always "$IMAGE" "$tmp/src.img" || die "could not copy $IMAGE into $tmp"
alloc="$(du --block-size=1 "$IMAGE" | cut -f 1)"
dst="$tmp/dst.img"
make_psk "$tmp/keys.psk"
make_namespaces
for l in $LINKS; do
    case "$l" in
        fast) make_fast_link ;;
        slow) make_slow_link ;;
        *) die "LINKS: $l is not a link (fast, slow)" ;;
    esac
done
note "build $build; $RUNS run(s); images in $tmp"
note "image: $SIZE_MIB MiB ext4 of $SRC_DIR, $alloc bytes allocated" \
     "($(awk -v a="$alloc" 'BEGIN { printf "%.0f", a / 1048576 }') MiB, du)"

for link in $LINKS; do
    probe_link "$link"
    for (( run = 1; run <= RUNS; run++ )); do
        note "$link link: run $run of $RUNS"
        wanted stm && run_stm "$link" stm
        for m in ${compress_modes[@]+"${compress_modes[@]}"}; do
            wanted "stm-compress-$m" && run_stm "$link" "stm-compress-$m" --compress "$m"
        done
        wanted nbdcopy-nbds-psk && run_nbdcopy "$link"
        wanted "$qemu_name" && run_qemu "$link"
    done
done

echo
echo "full migration of a $SIZE_MIB MiB ext4 image of $SRC_DIR" \
     "($alloc bytes allocated), $RUNS run(s), medians"
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
     "kernel $(uname -r); images in $BENCH_DIR"
[ -z "${MD:-}" ] || : >"$MD"
for link in $LINKS; do print_link "$link" "${MD:-}"; done
[ -z "$qemu_skipped" ] || echo "$qemu_skipped"
[ -z "${JSON:-}" ] || write_json "$JSON"
echo "destination byte-identical (cmp) in every run"
