#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm fault sweep for groups: two-disk migrations under a live guest on
# both disks, each hit by one fault, checking after each that there is
# exactly one complete, consistent set of disks (issue 12's promise).
#
#   bench/group-fault-sweep.sh [BUILD-DIR]   (N=24 SIZE_MIB=32 by default)
#
# Disks a and b, SIZE_MIB each, each served by its own nbdkit with the
# migrate filter, daemonized as the README starts it; a guest stand-in
# (fio) on each writes 4k blocks at random over its first 2 MiB at 1 MB/s,
# so later passes are small and a recopy would show in the bytes sent.
# One stm-send --disk a --disk b reaches one stm-recv --output a=...
# --output b=... through a TCP relay (socat), with --rate 32M (the sum of
# both disks) so that passes last long enough to be hit.  The faults,
# chosen in turn (FAULTS="..." runs only those):
#   sender-kill        stm-send killed (-9) at a random moment, run again;
#   sender-frozen      stm-send killed (-9) 0 to 60 ms after its freeze
#                      event: inside the group's cutover (final pass,
#                      commit or flips), run again;
#   sender-committed   stm-send killed between the group's COMMITTED and
#                      its FLIPs (STM_SEND_TEST_CRASH_AT), run again;
#   sender-flipped     stm-send killed right after the FLIPs, run again;
#   receiver-kill      stm-recv killed (-9) at a random moment and started
#                      again on the same outputs and port;
#   receiver-frozen    the same, 0 to 60 ms after stm-send's freeze event;
#   relay-cut          the relay killed at a random moment and started
#                      again after up to 2 s;
#   disk-kill          one disk's nbdkit (a and b in turn) killed (-9) at a
#                      random moment before the group commit: stm-send must
#                      exit 1 with the other disk thawed and serving, nothing
#                      flipped and the receiver's record not final; then the
#                      disk is served again by a new nbdkit (a new instance,
#                      so a new migration, whose tracking knows nothing):
#                      the receiver takes the incomplete migration over
#                      for it without --force, keeping its data, and the
#                      new stm-send compares its first pass (it must say
#                      so) and migrates the group to completion.
# Every other run uses stm-recv --once.  After each run (and its reruns),
# the set of disks is judged:
#   source set   every disk tracking, the receiver's record not final,
#                stm-send's last exit status 1 (or 3 if it reported a
#                split: never expected here);
#   destination  every disk fenced for this migration, the record final
#   set          (or prepared with stm-send saying so), each destination
#                byte-identical to its fenced source, exit status 0;
#   anything else breaks the promise.  Also: stm-recv --once exits 0 only
# with the record final, and within 10 s once it is; every fault here but
# disk-kill is a single crash the migration survives (it must end
# flipped), without a full recopy: the stm-send run again, or
# reconnected, resumes (its start or resumed event says mode resume, or
# flipped), and all runs together sent less than 1.6 times the two
# images plus one second at --rate (what a lost connection may cost: the
# transfer since the last durable SYNC, asked for about every second), a
# killed stm-send's bytes counted up to its last progress event.
# It prints one line per run (a disk-kill run: the line of its first
# stm-send, then that of the new migration, which takes the incomplete
# one over and compares) and exits 1 if any check failed, keeping its directory (every
# run's logs in r1, r2, ...; KEEP=1 keeps it in any case).

source "$(dirname "$0")/bench-lib.sh"
need nbdkit; need fio; need socat; need psktool; need ss; need cmp

N="${N:-24}"
SIZE_MIB="${SIZE_MIB:-32}"
size=$(( SIZE_MIB * 1024 * 1024 ))
read -r -a faults <<< "${FAULTS:-sender-kill sender-frozen sender-committed sender-flipped receiver-kill receiver-frozen relay-cut disk-kill}"
disks=(a b)
make_psk "$tmp/keys.psk"
failed=0
disk_kills=0

# The receiver's record of the group, beside the output that sorts first.
record () { sed -n 's/^state //p' "$tmp/a-dst.img.stm-state" 2>/dev/null; }

# start_receiver [OPTION...]: stm-recv for the group on $recv_port.  Sets
# RECV_ON_FINAL when the record is final already (a fault that came after
# the migration ended): such a stm-recv serves on, --once or not.
start_receiver ()
{
    RECV_ON_FINAL=""; [ "$(record)" = final ] && RECV_ON_FINAL=1
    spawn "$tmp/r$run/recv.$RANDOM.log" "$STM_RECV" --listen "127.0.0.1:$recv_port" \
          --output a="$tmp/a-dst.img" --output b="$tmp/b-dst.img" \
          --tls-psk "$tmp/keys.psk" --json $once "$@"
    RECV_PID=$SPAWNED
    wait_listening "$recv_port" stm-recv
}

# restart_receiver [OPTION...]: kill stm-recv (-9) and start it again.
restart_receiver ()
{
    kill -KILL "$RECV_PID" 2>/dev/null; wait "$RECV_PID" 2>/dev/null
    start_receiver "$@"
}

start_relay () { start_tcp_relay "$relay_port" "$recv_port" "$tmp/r$run/relay.log"; }

# start_disk NAME: serve $tmp/NAME-src.img; sets PID_NAME.
start_disk () { start_daemon_disk "$1" "$tmp/$1-src.img"; printf -v "PID_$1" %s "$DAEMON_PID"; }

# start_guest NAME: fio writing to disk NAME; sets FIO_NAME.  --thread:
# a job forked as a process goes into a session of its own, where killing
# fio's leaves it running (and, once its server is gone, spinning and
# logging without end).
start_guest ()
{
    spawn "$tmp/r$run/fio-$1.$RANDOM.log" fio --name="guest-$1" --ioengine=nbd \
          --uri="nbd+unix:///?socket=$tmp/$1.sock" --rw=randwrite --bs=4k --iodepth=8 \
          --size=2m --rate=,1m --time_based --runtime=300 --thread
    printf -v "FIO_$1" %s "$SPAWNED"
}

# start_sender NAME [ENV...]: the group's stm-send in the background, its
# output (JSON and messages) in r$run/NAME.out; sets SEND_PID and adds the
# file to runs_out.
start_sender ()
{
    local name="$1"; shift
    SEND_OUT="$tmp/r$run/$name.out"
    spawn "$SEND_OUT" env "$@" "$STM_SEND" \
          --disk "name=a,source=nbd+unix:///?socket=$tmp/a.sock,control=$tmp/a-ctl.sock" \
          --disk "name=b,source=nbd+unix:///?socket=$tmp/b.sock,control=$tmp/b-ctl.sock" \
          --dest "127.0.0.1:$relay_port" --tls-psk "$tmp/keys.psk" --rate 32M \
          --retry-timeout 60s --json --no-progress
    SEND_PID=$SPAWNED
    runs_out+=("$SEND_OUT")
}

# writes_flow NAME: does disk NAME's filter count new guest writes within
# 3 s (so it is thawed and serving, not merely reporting tracking)?
writes_flow ()
{
    local w0 w i
    w0="$(ctl_field "$tmp/$1-ctl.sock" writes)"
    [ -n "$w0" ] || return 1
    for (( i = 0; i < 30; i++ )); do
        sleep 0.1
        w="$(ctl_field "$tmp/$1-ctl.sock" writes)"
        [ -n "$w" ] && [ "$w" -gt "$w0" ] && return 0
    done
    return 1
}

# judge_set RC: the verdict on the set of disks as it is now, given
# stm-send's last exit status RC; sets SET (source, destination, split,
# or broken), STATES and VERDICT (ok, or what broke).
judge_set ()
{
    local rc="$1" d st mg tracking=0 flipped=0 rec mig
    rec="$(record)"; mig="$(migration_of "${runs_out[@]}")"
    STATES=""; VERDICT=ok
    for d in "${disks[@]}"; do
        st="$(ctl_field "$tmp/$d-ctl.sock" state)"; mg="$(ctl_field "$tmp/$d-ctl.sock" migration)"
        STATES="$STATES${STATES:+/}${st:-dead}"
        case "$st" in
            tracking) tracking=$(( tracking + 1 )) ;;
            fenced|forwarding) [ "$mg" = "$mig" ] && flipped=$(( flipped + 1 )) ;;
        esac
    done
    if [ "$tracking" -eq "${#disks[@]}" ]; then
        SET=source
        [ "$rec" = final ] && VERDICT="every disk tracking but the receiver records final"
        [ "$rc" -eq 1 ] || VERDICT="every disk tracking but stm-send exited $rc"
    elif [ "$flipped" -eq "${#disks[@]}" ]; then
        SET=destination
        if [ "$rec" != final ] &&
           ! { [ "$rc" -eq 0 ] && grep -q '"destination":"prepared"' "${runs_out[-1]}"; }; then
            VERDICT="every disk flipped but the receiver records ${rec:-nothing}"
        fi
        for d in "${disks[@]}"; do
            cmp -s "$tmp/$d-src.img" "$tmp/$d-dst.img" || VERDICT="disk $d's destination differs from its fenced source"
        done
        [ "$rc" -eq 0 ] || VERDICT="every disk flipped but stm-send exited $rc"
    elif [ "$rc" -eq 3 ] && grep -q '"source_state":"split"' "${runs_out[-1]}"; then
        SET=split
        VERDICT="a split, reported (exit 3)"
    else
        SET=broken
        VERDICT="no complete set: disks $STATES, record ${rec:-none}, exit $rc"
    fi
}

# finish_run: stop what the run started and keep its logs with it.
finish_run ()
{
    local pid
    for pid in "${_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    stop_daemon "$PID_a"; stop_daemon "$PID_b"
    wait 2>/dev/null
    cp "$tmp"/nbdkit-*.log "$tmp/a-dst.img.stm-state" "$tmp/r$run/" 2>/dev/null
    rm -f "$tmp"/nbdkit-*.log
}

# report FAULT AT RC RECV_RC RATIO: one line of the table, and the verdict
# counted (a broken run keeps its directory's name in the line).
report ()
{
    # A broken promise keeps the run directory, with every log.
    [ "$VERDICT" = ok ] || { failed=1; KEEP=1; }
    printf '%-3s %-16s %-5s %-5s %-7s %-21s %-11s %-12s %-6s %s\n' "$run" "$1" "$2" "$3" \
           "$SET" "$STATES" "$(record || true)" "$4" "$5" \
           "$VERDICT$( [ "$VERDICT" = ok ] || echo " (logs: $tmp/r$run)")"
}

printf '%-3s %-16s %-5s %-5s %-7s %-21s %-11s %-12s %-6s %s\n' run fault at_ms rc set "states (a/b)" record recv_rc ratio verdict
for (( run = 1; run <= N; run++ )); do
    fault="${faults[$(( (run - 1) % ${#faults[@]} ))]}"
    mkdir -p "$tmp/r$run"
    once=""; (( run % 2 )) && once="--once"
    for d in "${disks[@]}"; do make_random "$tmp/$d-src.img" "$SIZE_MIB"; done
    rm -f "$tmp"/?-dst.img "$tmp"/?-dst.img.stm-state
    _pids=(); runs_out=()
    start_disk a; start_disk b
    start_guest a; start_guest b
    recv_port="$(free_port)"; relay_port="$(free_port)"
    start_receiver
    start_relay
    sleep 0.5
    at=0; env_args=()
    case "$fault" in
        sender-committed) env_args=(STM_SEND_TEST_CRASH_AT=committed) ;;
        sender-flipped) env_args=(STM_SEND_TEST_CRASH_AT=flipped) ;;
        # A disk is killed early enough to come before the group commit
        # (the full pass of both disks alone lasts SIZE_MIB/16 s).
        disk-kill) at="$(rand_ms 200 $(( SIZE_MIB * 1000 / 16 )) )" ;;
        sender-frozen|receiver-frozen) ;;
        *) at="$(rand_ms 200 3000)" ;;
    esac
    start_sender send1 "${env_args[@]}"
    victim=""
    if [ "$fault" = sender-frozen ] || [ "$fault" = receiver-frozen ]; then
        # Inside the cutover: the group's final pass, its commit or its
        # flips, whichever the moment falls in (the cutover lasts tens of
        # ms).  Polled every 10 ms, for 60 s at most.
        for (( i = 0; i < 6000; i++ )); do
            grep -q '"event":"freeze"' "$SEND_OUT" && break
            kill -0 "$SEND_PID" 2>/dev/null || break
            sleep 0.01
        done
        after="$(rand_ms 0 60)"
        sleep_ms "$after"
        if [ "$fault" = sender-frozen ]; then kill -KILL "$SEND_PID" 2>/dev/null; else restart_receiver; fi
        at="f+$after"
    fi
    if [ "${at#f+}" = "$at" ] && [ "$at" -gt 0 ]; then
        sleep_ms "$at"
        case "$fault" in
            sender-kill) kill -KILL "$SEND_PID" 2>/dev/null ;;
            receiver-kill) restart_receiver ;;
            relay-cut)
                kill -KILL -- "-$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null
                sleep_ms "$(rand_ms 0 2000)"; start_relay ;;
            disk-kill)
                victim="${disks[$(( disk_kills % 2 ))]}"; disk_kills=$(( disk_kills + 1 ))
                # Before the group commit only: later, a dead disk is
                # another fault (after the point of no return).
                if grep -q '"event":"commit"' "$SEND_OUT"; then
                    victim=""
                else
                    kill -KILL "$(cat "$tmp/$victim.pid")"
                    # fio's nbd engine spins on a dead server, logging
                    # without end: that guest goes with its disk.
                    kill -KILL -- "-$(eval echo "\$FIO_$victim")" 2>/dev/null
                fi ;;
        esac
    fi
    wait_pid "$SEND_PID" 200 2>/dev/null; rc=$?
    if [ "$fault" = disk-kill ] && [ -z "$victim" ]; then
        SET=none; STATES=""; VERDICT="not run: the group commit came before the kill"
        failed=1; report "$fault" "$at" "$rc" - -
        finish_run; continue
    fi
    if [ -n "$victim" ]; then
        # The first stm-send's outcome: all thawed, nothing flipped.
        survivor=a; [ "$victim" = a ] && survivor=b
        judge_set "$rc"
        STATES="${STATES/dead/killed}"
        if [ "$rc" -ne 1 ]; then
            VERDICT="stm-send exited $rc after disk $victim's nbdkit died, not 1"
        elif [ "$(ctl_field "$tmp/$survivor-ctl.sock" state)" != tracking ]; then
            VERDICT="disk $survivor is not tracking after disk $victim died"
        elif ! writes_flow "$survivor"; then
            VERDICT="disk $survivor does not serve writes after disk $victim died"
        elif [ "$(record)" = final ] || [ "$(record)" = prepared ]; then
            VERDICT="the receiver records $(record) after disk $victim died"
        elif grep -q '"event":"flip"' "${runs_out[@]}"; then
            VERDICT="a flip event although disk $victim died before the commit"
        else
            VERDICT=ok
        fi
        SET="thawed"
        report "$fault-$victim" "$at" "$rc" - -
        # A new nbdkit is a new migration (its instance id is new, and
        # its tracking knows nothing).  The receiver takes the group's
        # incomplete migration over for it without --force, keeping the
        # data, and the new stm-send compares its first pass: it must
        # end flipped, judged below like every other run.
        held="$(record)"
        start_disk "$victim"; start_guest "$victim"
        # stm-recv --once ends (exit 1) when its sender aborts: start it
        # again for the new migration.
        if [ -n "$once" ]; then
            wait_pid "$RECV_PID" 10; recv_rc=$?
            [ "$recv_rc" -eq 1 ] || VERDICT="stm-recv --once exited $recv_rc after its sender aborted, not 1"
            start_receiver
        fi
        start_sender send2
        wait_pid "$SEND_PID" 200 2>/dev/null; rc=$?
        # (Unless the disk died before the receiver heard of the group.)
        if [ "$VERDICT" = ok ] && [ -n "$held" ] && [ "$held" != none ] &&
               ! grep -q "comparing the first pass" "$SEND_OUT"; then
            VERDICT="the new migration over the incomplete one did not compare"
        fi
    elif [ "$rc" -eq 137 ] || [ "$rc" -eq 143 ]; then
        # A killed sender is run again with the same arguments.
        start_sender send2
        wait_pid "$SEND_PID" 200 2>/dev/null; rc=$?
    fi
    # Judge with the guests still writing: a thawed source must serve.
    judge_set "$rc"
    # SIGKILL: fio's nbd engine may ignore SIGTERM once its server is gone.
    for d in "${disks[@]}"; do kill -KILL -- "-$(eval echo "\$FIO_$d")" 2>/dev/null; done
    recv_rc=running
    if [ -n "$once" ]; then
        wait_pid "$RECV_PID" 10; recv_rc=$?
        [ "$recv_rc" -eq 124 ] && recv_rc=running
    fi
    [ "$recv_rc" = 0 ] && [ "$(record)" != final ] &&
        VERDICT="stm-recv --once exited 0 with the record $(record)"
    [ -n "$once" ] && [ -z "$RECV_ON_FINAL" ] && [ "$(record)" = final ] && [ "$recv_rc" != 0 ] &&
        VERDICT="stm-recv --once did not exit 0 (within 10 s) with the record final"
    [ "$VERDICT" = ok ] && [ "$SET" != destination ] &&
        VERDICT="the migration did not survive one $fault"
    total=0
    for f in "${runs_out[@]}"; do total=$(( total + $(bytes_of "$f") )); done
    ratio="$(awk -v t="$total" -v s="$(( 2 * size ))" 'BEGIN { printf "%.2f", t / s }')"
    # After a disk's nbdkit died the second migration is a new one and
    # may copy everything again; no other fault may.
    if [ -z "$victim" ]; then
        [ "$total" -lt "$(sent_bound $(( 2 * size )) $(( 32 * 1024 * 1024 )) )" ] ||
            VERDICT="sent ${ratio}x the images"
        # The bytes of a killed stm-send are known only up to its last
        # progress event; what shows a recopy for certain is a run, or a
        # reconnection, that starts the migration anew.
        if grep -q '"event":"resumed".*"mode":"new"' "${runs_out[@]}" ||
           { [ "${#runs_out[@]}" -gt 1 ] && grep -q '"event":"start".*"mode":"new"' "${runs_out[-1]}"; }; then
            VERDICT="copied again from scratch after one $fault"
        fi
    fi
    report "${victim:+rerun-}$fault" "$at" "$rc" "$recv_rc${once:+ (once)}" "$ratio"
    finish_run
done
[ "$failed" -eq 0 ] && note "every claim held in $N runs" || note "some claims did not hold (see above)"
exit "$failed"
