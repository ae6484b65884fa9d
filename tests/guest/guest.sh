# SPDX-License-Identifier: BSD-3-Clause
# stm guest tests: the helpers of the tests that migrate a real QEMU guest.
#
# A test sources tests/integration/functions.sh first (the temporary
# directory $tmp, the watchdog, spawn/track, cleanup, wait_for, ...) and
# then this file.  The guest is Debian's kernel under QEMU (TCG: there is
# no KVM here) with the initramfs built by tests/guest/mkinitramfs.sh and
# the init in tests/guest/init; see tests/guest/README for what it does and
# how to run it by hand.  Each disk of the guest is served by its own
# nbdkit --filter=migrate and migrated by one group migration (one stm-send --disk ... for every disk, one
# cutover), or with STM_GUEST_GROUP=0 by a stm-send/stm-recv pair per disk:
# see guest_migrate.

guest_dir="$abs_top_srcdir/tests/guest"
GUEST_SEND_OPTIONS=()
guest_cache="$abs_top_builddir/tests/guest"

# ----------------------------------------------------------------------
# What the guest needs.

# guest_requires: skip the test (77) unless QEMU, a kernel, a static
# busybox and the ext4 tools are here, and build (or find in the cache)
# the initramfs.  Sets GUEST_KERNEL and GUEST_INITRD.
guest_requires ()
{
    local out status=0
    requires qemu-system-x86_64 --version
    requires mkfs.ext4 -V
    requires e2fsck -V
    out="$(bash "$guest_dir/mkinitramfs.sh" "$guest_cache" 2>"$tmp/mkinitramfs.err")" ||
        status=$?
    case "$status" in
        0) ;;
        77) skip "$(cat "$tmp/mkinitramfs.err")" ;;
        *) fail "building the guest's initramfs failed: $(cat "$tmp/mkinitramfs.err")" ;;
    esac
    GUEST_KERNEL="$(echo "$out" | sed -n 's/^kernel //p')"
    GUEST_INITRD="$(echo "$out" | sed -n 's/^initrd //p')"
}

# guest_mkfs IMAGE MIB [random]: a fresh ext4 image of MIB MiB.  The
# inode tables and the journal are written now (not lazily), so that the
# guest's kernel does not write them in the background during the
# migration.  With "random", the free blocks hold random bytes instead of
# zeroes (nothing is discarded), so the migration has data to copy.
guest_mkfs ()
{
    rm -f "$1"
    if [ "${3:-}" = random ]; then
        make_random_image "$1" "$2"
    else
        truncate -s "$2M" "$1"
    fi
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$1" ||
        fail "mkfs.ext4 of $1 failed"
}

# ----------------------------------------------------------------------
# The guest.

# guest_boot NAME SECONDS APPEND DRIVE...: boot the guest in the
# background, its serial console in $tmp/NAME.log, the kernel command
# line extended by APPEND (stm.mode=... and the rest, see init), each
# DRIVE a -drive file=... value of a raw virtio disk (vda, vdb, vdc in
# order).  QEMU is killed after SECONDS.  Sets GUEST_PID.
guest_boot ()
{
    local name="$1" secs="$2" append="$3" drive args=()
    shift 3
    for drive in "$@"; do
        args+=(-drive "file=$drive,format=raw,if=virtio,cache=none")
    done
    spawn "$tmp/$name.log" "$tmp/$name.err" \
          timeout -s KILL "$secs" \
          qemu-system-x86_64 -accel tcg -m 256 -smp 1 \
          -nographic -no-reboot -monitor none -nic none \
          -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
          -append "console=ttyS0 loglevel=4 panic=-1 $append" "${args[@]}"
    GUEST_PID=$SPAWNED_PID
}

# guest_has NAME PATTERN: does the console log of guest NAME hold a line
# matching the extended regular expression PATTERN?
guest_has () { grep -aEq "$2" "$tmp/$1.log"; }

# guest_wait NAME SECONDS PATTERN: wait for PATTERN in guest NAME's log;
# fail early if the guest reports an error or QEMU exits first.
guest_wait ()
{
    local name="$1" secs="$2" pattern="$3" i
    for (( i = 0; i < secs * 10; i++ )); do
        guest_has "$name" "$pattern" && return 0
        guest_has "$name" 'STM-GUEST: ERROR' &&
            fail "the guest ($name) reports: $(grep -a 'STM-GUEST: ERROR' "$tmp/$name.log" | head -n 1)"
        alive "$GUEST_PID" ||
            { guest_has "$name" "$pattern" && return 0
              fail "the guest ($name) ended before '$pattern' (see $name.log)"; }
        sleep 0.1
    done
    fail "timed out after $secs s waiting for '$pattern' from the guest ($name)"
}

# guest_files NAME: how many files guest NAME has reported written and
# synced with their manifest lines (its last "FILE N" line; 0 if none).
guest_files ()
{
    local n
    n="$(grep -aEo 'STM-GUEST: FILE [0-9]+' "$tmp/$1.log" | tail -n 1 | sed 's/.* //' || true)"
    echo "${n:-0}"
}

# guest_files_at_least NAME N: has guest NAME reported N files or more?
guest_files_at_least () { [ "$(guest_files "$1")" -ge "$2" ]; }

# guest_kill: kill the running guest's QEMU at once (a crash of the
# source host, as far as the disks can tell).
guest_kill ()
{
    kill -KILL -- "-$GUEST_PID" 2>/dev/null || true
    wait "$GUEST_PID" 2>/dev/null || true
}

# guest_io_errors NAME: print the lines of guest NAME's log that show an
# I/O error (the init's or the kernel's); true if there is one.
guest_io_errors ()
{
    grep -aE 'STM-GUEST: ERROR|I/O error|EXT4-fs (error|warning)|Buffer I/O' "$tmp/$1.log"
}

# guest_stop_writer CTL-IMAGE: tell the writer to stop (its vdc).
guest_stop_writer ()
{
    printf 'STOP' | dd of="$1" bs=512 conv=notrunc,fsync status=none ||
        fail "could not write the stop marker into $1"
}

# guest_verify_boot NAME DATA MANIFEST: boot the guest in verify mode on
# the two images (console in $tmp/NAME.log) and wait for it to power off;
# sets VERIFY_LINE to its verdict ("VERIFY OK files=N" or "VERIFY FAIL
# ...").  Fails the test if the guest gives no verdict.
guest_verify_boot ()
{
    local name="$1" data="$2" man="$3"
    guest_boot "$name" 120 "stm.mode=verify" "$data" "$man"
    wait_exit "$GUEST_PID" 120
    [ "$EXIT_STATUS" -eq 0 ] || fail "the verifying guest's QEMU ($name) exited with $EXIT_STATUS"
    VERIFY_LINE="$(grep -aEo 'STM-GUEST: VERIFY .*' "$tmp/$name.log" | head -n 1 |
                   sed 's/^STM-GUEST: //' | tr -d '\r' || true)"
    [ -n "$VERIFY_LINE" ] || fail "the verifying guest ($name) gave no verdict (see $name.log)"
}

# guest_verify DATA MANIFEST: the guest must find the two images
# consistent (VERIFY OK, no I/O error), and e2fsck -fn both clean after
# its mount replayed their journals.  Sets VERIFIED_FILES.
guest_verify ()
{
    local data="$1" man="$2" img
    guest_verify_boot verify "$data" "$man"
    case "$VERIFY_LINE" in
        "VERIFY OK files="*) VERIFIED_FILES="${VERIFY_LINE#VERIFY OK files=}" ;;
        *) fail "the destination images are not consistent: $VERIFY_LINE" ;;
    esac
    if guest_io_errors verify >&2; then
        fail "I/O errors while verifying the destination images"
    fi
    for img in "$data" "$man"; do
        e2fsck -fn "$img" >"$tmp/e2fsck.out" 2>&1 ||
            fail "e2fsck -fn finds $img damaged: $(tail -n 5 "$tmp/e2fsck.out")"
    done
    info "the destination verifies: $VERIFIED_FILES files, both file systems clean"
}

# ----------------------------------------------------------------------
# Sources, receivers, senders: one of each per disk NAME.

# guest_source NAME IMAGE: serve IMAGE through the migrate filter on
# $tmp/NAME.sock, control $tmp/NAME-ctl.sock; log nbdkit-NAME.log.
guest_source ()
{
    local name="$1" image="$2"
    spawn "$tmp/nbdkit-$name.log" "$tmp/nbdkit-$name.err" \
          nbdkit -f -U "$tmp/$name.sock" -P "$tmp/nbdkit-$name.pid" \
          --filter="$MIGRATE_FILTER" file file="$image" \
          migrate-control="$tmp/$name-ctl.sock"
    wait_for 30 "nbdkit serving $name" \
             test -S "$tmp/$name.sock" -a -S "$tmp/$name-ctl.sock" -a -s "$tmp/nbdkit-$name.pid"
}

guest_uri () { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

# _free_port: a TCP port on 127.0.0.1 that is free now (the kernel's
# choice, released at once).
_free_port ()
{
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# guest_recv NAME FLIP: stm-recv writing $tmp/NAME-dst.img with the key
# $tmp/keys.psk; for FLIP forward it serves the image (--export on a free
# port) until stopped, for fence it exits after the flip (--once).  Its
# port in RECV_PORT_<NAME>, its pid in RECV_PID_<NAME>; output in
# recv-NAME.out and .err.
guest_recv ()
{
    local name="$1" flip="$2" port i args=()
    case "$flip" in
        forward) args=(--export "127.0.0.1:$(_free_port)") ;;
        fence) args=(--once) ;;
        *) fail "guest_recv: unknown flip '$flip'" ;;
    esac
    spawn "$tmp/recv-$name.out" "$tmp/recv-$name.err" \
          "$STM_RECV" --listen 127.0.0.1:0 --output "$tmp/$name-dst.img" \
          --tls-psk "$tmp/keys.psk" --json "${args[@]}"
    printf -v "RECV_PID_$name" %s "$SPAWNED_PID"
    for (( i = 0; i < 300; i++ )); do
        port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
                "$tmp/recv-$name.err" 2>/dev/null | head -n 1)"
        [ -n "$port" ] && break
        alive "$SPAWNED_PID" || fail "stm-recv for $name exited at start (see recv-$name.err)"
        sleep 0.1
    done
    [ -n "$port" ] || fail "stm-recv for $name did not say its port within 30 s"
    printf -v "RECV_PORT_$name" %s "$port"
}

# guest_recv_done NAME FLIP: the end of disk NAME's stm-recv, which must
# exit 0: stopped (SIGTERM) after a forward flip, once the guest no longer
# writes through it; by itself (--once) after a fence flip.
guest_recv_done ()
{
    local pidvar="RECV_PID_$1"
    [ "$2" = forward ] && kill -TERM "${!pidvar}" 2>/dev/null
    wait_exit "${!pidvar}" 30
    [ "$EXIT_STATUS" -eq 0 ] || fail "stm-recv for $1 exited with $EXIT_STATUS at its end"
}

# guest_send NAME FLIP: start stm-send for disk NAME with --flip FLIP in
# the background (pid in SEND_PID_<NAME>, JSON in send-NAME.out), plus
# the options in the array GUEST_SEND_OPTIONS (such as a --rate that
# makes the passes last while the guest writes).
guest_send ()
{
    local name="$1" flip="$2" portvar="RECV_PORT_$1"
    spawn "$tmp/send-$name.out" "$tmp/send-$name.err" \
          "$STM_SEND" --source "$(guest_uri "$name")" \
          --control "$tmp/$name-ctl.sock" --dest "127.0.0.1:${!portvar}" \
          --tls-psk "$tmp/keys.psk" --flip "$flip" --json --no-progress \
          "${GUEST_SEND_OPTIONS[@]}"
    printf -v "SEND_PID_$name" %s "$SPAWNED_PID"
}

# guest_send_wait NAME SECONDS: wait for disk NAME's stm-send; fail unless
# it flipped (exit 0).
guest_send_wait ()
{
    local pidvar="SEND_PID_$1"
    wait_exit "${!pidvar}" "$2"
    [ "$EXIT_STATUS" -eq 0 ] ||
        fail "stm-send for $1 exited with $EXIT_STATUS: $(tail -n 3 "$tmp/send-$1.err")"
    info "$1 flipped; downtime $(json_field "$tmp/send-$1.out" downtime downtime_ms) ms," \
         "$(json_field "$tmp/send-$1.out" "done" passes) passes"
}

# guest_recv_group FLIP DISK...: one stm-recv for every DISK, writing
# $tmp/DISK-dst.img (--output DISK=...), as guest_recv does for one disk
# (forward: --export, fence: --once); its port and pid in RECV_PORT_group
# and RECV_PID_group, output in recv-group.out and .err.
guest_recv_group ()
{
    local flip="$1" disk port i args=()
    shift
    case "$flip" in
        forward) args=(--export "127.0.0.1:$(_free_port)") ;;
        fence) args=(--once) ;;
        *) fail "guest_recv_group: unknown flip '$flip'" ;;
    esac
    for disk in "$@"; do
        args+=(--output "$disk=$tmp/$disk-dst.img")
    done
    spawn "$tmp/recv-group.out" "$tmp/recv-group.err" \
          "$STM_RECV" --listen 127.0.0.1:0 --tls-psk "$tmp/keys.psk" --json "${args[@]}"
    RECV_PID_group=$SPAWNED_PID
    for (( i = 0; i < 300; i++ )); do
        port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
                "$tmp/recv-group.err" 2>/dev/null | head -n 1)"
        [ -n "$port" ] && break
        alive "$SPAWNED_PID" || fail "stm-recv for the group exited at start (see recv-group.err)"
        sleep 0.1
    done
    [ -n "$port" ] || fail "stm-recv for the group did not say its port within 30 s"
    RECV_PORT_group=$port
}

# guest_send_group FLIP DISK...: one stm-send for every DISK (--disk
# name=DISK,...), with --flip FLIP and GUEST_SEND_OPTIONS, in the
# background (pid in SEND_PID_group, JSON in send-group.out).
guest_send_group ()
{
    local flip="$1" disk args=()
    shift
    for disk in "$@"; do
        args+=(--disk "name=$disk,source=$(guest_uri "$disk"),control=$tmp/$disk-ctl.sock")
    done
    spawn "$tmp/send-group.out" "$tmp/send-group.err" \
          "$STM_SEND" "${args[@]}" --dest "127.0.0.1:$RECV_PORT_group" \
          --tls-psk "$tmp/keys.psk" --flip "$flip" --json --no-progress \
          "${GUEST_SEND_OPTIONS[@]}"
    SEND_PID_group=$SPAWNED_PID
}

# guest_migrate FLIP AFTER-FIRST DISK...: migrate the DISKs (served by
# guest_source) to $tmp/DISK-dst.img with --flip FLIP.  By default
# (STM_GUEST_GROUP=1) as one group: one stm-recv with --output DISK=...,
# one stm-send with --disk for each, one cutover that flips every disk at
# one instant; AFTER-FIRST (a command, or ":") runs once it has.  With
# STM_GUEST_GROUP=0, one after the other in this order, each by a
# stm-send/stm-recv pair of its own, AFTER-FIRST running once the first
# disk has flipped.  The receivers keep running (forward: serving) until
# guest_migrate_done.
guest_migrate ()
{
    local flip="$1" after="$2" disk first=1
    shift 2
    if [ "${STM_GUEST_GROUP:-1}" = 1 ]; then
        guest_recv_group "$flip" "$@"
        guest_send_group "$flip" "$@"
        guest_send_wait group 120
        [ "$(grep -c '"event":"freeze"' "$tmp/send-group.out")" -eq 1 ] ||
            fail "the group migration froze the disks more than once"
        $after
        return
    fi
    for disk in "$@"; do
        guest_recv "$disk" "$flip"
    done
    for disk in "$@"; do
        guest_send "$disk" "$flip"
        guest_send_wait "$disk" 90
        if [ "$first" = 1 ]; then
            $after
            first=0
        fi
    done
}

# guest_migrate_done FLIP DISK...: the end of the DISKs' receivers (see
# guest_recv_done), the group's one (STM_GUEST_GROUP=1) or each disk's;
# their images are final after it.
guest_migrate_done ()
{
    local flip="$1" disk
    shift
    if [ "${STM_GUEST_GROUP:-1}" = 1 ]; then
        guest_recv_done group "$flip"
        return
    fi
    for disk in "$@"; do
        guest_recv_done "$disk" "$flip"
    done
}
