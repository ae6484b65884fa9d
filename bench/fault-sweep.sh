#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm fault sweep: migrations under a live guest, each hit by one fault,
# at a random moment or at the commit or the flip, checking after each
# that every claim either side made is true.
#
#   bench/fault-sweep.sh [BUILD-DIR]        (N=12 SIZE_MIB=64 by default)
#
# The source is served the way the README starts it (nbdkit daemonized,
# known by its pidfile); a guest stand-in (fio) writes 4k blocks at random
# over the first 4 MiB at 1 MB/s through NBD, so later passes are small
# and a recopy would show in the bytes sent; stm-send reaches stm-recv
# through a TCP relay (socat), with --rate 32M so that passes last long
# enough to be hit.
# The faults, chosen in turn:
#   sender-kill        stm-send killed (-9) at a random moment, run again;
#   sender-committed   stm-send killed between COMMITTED and FLIP
#                      (STM_SEND_TEST_CRASH_AT=committed), run again;
#   sender-flipped     stm-send killed right after FLIP, run again;
#   receiver-kill      stm-recv killed (-9) at a random moment and
#                      started again on the same output and port;
#   relay-cut          the relay killed at a random moment and started
#                      again after up to 2 s.
# Every other run uses stm-recv --once.  The checks, for each run:
#   - stm-send's last exit status is 0 only with the source flipped for
#     this migration, 1 only with it tracking (thawed, authoritative);
#   - the receiver's state file says final exactly when the source has
#     flipped, and stm-recv --once exits 0 only when it is final;
#   - after a flip the destination equals the fenced source, byte for byte;
#   - all the runs together sent less than 1.6 times the image plus one
#     second at --rate (sent_bound in bench-lib.sh: a lost connection may
#     cost what was sent since the last durable SYNC, about a second);
#   - the migration survives the fault: it ends flipped (exit 0).
# It prints one line per run and exits 1 if any check failed.

source "$(dirname "$0")/bench-lib.sh"
need nbdkit; need fio; need socat; need psktool; need ss

N="${N:-12}"
SIZE_MIB="${SIZE_MIB:-64}"
size=$(( SIZE_MIB * 1024 * 1024 ))
# FAULTS="receiver-kill relay-cut" runs only those, in turn.
read -r -a faults <<< "${FAULTS:-sender-kill sender-committed sender-flipped receiver-kill relay-cut}"
make_psk "$tmp/keys.psk"
failed=0

# ctl_status KEY: a field of the source filter's STATUS.
ctl_status () { ctl_field "$tmp/src-ctl.sock" "$1"; }

start_receiver ()
{
    spawn "$tmp/recv-$run.$RANDOM.log" "$STM_RECV" --listen "127.0.0.1:$recv_port" \
          --output "$tmp/dst.img" --tls-psk "$tmp/keys.psk" --json $once
    RECV_PID=$SPAWNED
    wait_listening "$recv_port" stm-recv
}

start_relay () { start_tcp_relay "$relay_port" "$recv_port" "$tmp/relay.log"; }

# start_sender NAME [ENV...]: stm-send in the background, its output
# (JSON and messages) in NAME.err.
start_sender ()
{
    local name="$1"; shift
    spawn "$tmp/$name.err" env "$@" "$STM_SEND" \
          --source "nbd+unix:///?socket=$tmp/src.sock" --control "$tmp/src-ctl.sock" \
          --dest "127.0.0.1:$relay_port" --tls-psk "$tmp/keys.psk" --rate 32M \
          --retry-timeout 60s --json --no-progress
    SEND_PID=$SPAWNED
    SEND_OUT="$tmp/$name.err"
}

printf '%-3s %-17s %-6s %-8s %-10s %-11s %-9s %-6s %s\n' run fault at_ms send_rc source dest_state recv_rc ratio verdict
for (( run = 1; run <= N; run++ )); do
    fault="${faults[$(( (run - 1) % ${#faults[@]} ))]}"
    once=""; (( run % 2 )) && once="--once"
    make_random "$tmp/src.img" "$SIZE_MIB"
    rm -f "$tmp/dst.img" "$tmp/dst.img.stm-state"
    _pids=()
    start_daemon_disk src "$tmp/src.img"
    SRC_PID=$DAEMON_PID
    spawn "$tmp/fio.log" fio --name=guest --ioengine=nbd --uri="nbd+unix:///?socket=$tmp/src.sock" \
          --rw=randwrite --bs=4k --iodepth=8 --size=4m --rate=,1m --time_based --runtime=300 --thread
    WRITER_PID=$SPAWNED
    recv_port="$(free_port)"; relay_port="$(free_port)"
    start_receiver
    start_relay
    sleep 0.5
    at=0; env_args=()
    case "$fault" in
        sender-committed) env_args=(STM_SEND_TEST_CRASH_AT=committed) ;;
        sender-flipped) env_args=(STM_SEND_TEST_CRASH_AT=flipped) ;;
        *) at="$(rand_ms 200 3500)" ;;
    esac
    start_sender "send-$run-1" "${env_args[@]}"
    runs_out=("$SEND_OUT")
    if [ "$at" -gt 0 ]; then
        sleep_ms "$at"
        case "$fault" in
            sender-kill) kill -KILL "$SEND_PID" 2>/dev/null ;;
            receiver-kill)
                kill -KILL "$RECV_PID" 2>/dev/null; wait "$RECV_PID" 2>/dev/null
                sleep 1; start_receiver ;;
            relay-cut)
                kill -KILL -- "-$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null
                sleep_ms "$(rand_ms 0 2000)"; start_relay ;;
        esac
    fi
    wait_pid "$SEND_PID" 200; rc=$?
    # A killed sender is run again with the same arguments.
    if [ "$rc" -eq 137 ] || [ "$rc" -eq 143 ]; then
        start_sender "send-$run-2"
        runs_out+=("$SEND_OUT")
        wait_pid "$SEND_PID" 200; rc=$?
    fi
    src_state="$(ctl_status state)"; src_mig="$(ctl_status migration)"
    kill -TERM -- "-$WRITER_PID" 2>/dev/null
    recv_rc=running
    if [ -n "$once" ]; then
        wait_pid "$RECV_PID" 10; recv_rc=$?
        [ "$recv_rc" -eq 124 ] && recv_rc=running
    fi
    dest_state="$(sed -n 's/^state //p' "$tmp/dst.img.stm-state" 2>/dev/null)"
    mig="$(migration_of "${runs_out[@]}")"
    total=0
    for f in "${runs_out[@]}"; do total=$(( total + $(bytes_of "$f") )); done
    ratio="$(awk -v t="$total" -v s="$size" 'BEGIN { printf "%.2f", t / s }')"

    verdict=ok
    flipped=no
    case "$src_state" in fenced|forwarding) flipped=yes ;; esac
    if [ "$rc" -eq 0 ]; then
        [ "$flipped" = yes ] && [ "$src_mig" = "$mig" ] || verdict="exit 0 but the source is $src_state"
        cmp -s "$tmp/src.img" "$tmp/dst.img" || verdict="exit 0 but the destination differs"
    elif [ "$rc" -eq 1 ]; then
        [ "$src_state" = tracking ] || verdict="exit 1 but the source is $src_state"
        # Every fault here is a single crash, which a migration survives.
        [ "$verdict" = ok ] && verdict="the migration did not survive one $fault"
    else
        verdict="stm-send exited $rc"
    fi
    if [ "$flipped" = yes ] && [ "$dest_state" != final ] && [ "$rc" -eq 0 ] &&
       ! grep -q '"destination":"prepared"' "${runs_out[-1]}"; then
        verdict="flipped, stm-send said final, but the receiver records $dest_state"
    fi
    [ "$flipped" = no ] && [ "$dest_state" = final ] && verdict="final on the receiver but the source is $src_state"
    [ "$recv_rc" = 0 ] && [ "$dest_state" != final ] && verdict="stm-recv --once exited 0 with the destination $dest_state"
    [ "$total" -lt "$(sent_bound "$size" $(( 32 * 1024 * 1024 )) )" ] || verdict="sent ${ratio}x the image"
    [ "$verdict" = ok ] || failed=1
    printf '%-3s %-17s %-6s %-8s %-10s %-11s %-9s %-6s %s\n' "$run" "$fault" "$at" "$rc" \
           "$src_state" "${dest_state:-none}" "$recv_rc${once:+ (once)}" "$ratio" "$verdict"

    for pid in "${_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    stop_daemon "$SRC_PID"
    wait 2>/dev/null
done
[ "$failed" -eq 0 ] && note "every claim held in $N runs" || note "some claims did not hold (see above)"
exit "$failed"
