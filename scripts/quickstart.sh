#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm quick start: the two commands a new user runs on a fresh Debian 12
# machine (as root, or a user with sudo), from a clone of the repository.
#
#   scripts/quickstart.sh demo    build, then migrate a 1 GiB disk live
#                                 over TLS on loopback while a guest-like
#                                 writer keeps writing to it, and prove
#                                 the copy is byte-identical
#   scripts/quickstart.sh check   build, then run make check (unit and
#                                 integration tests), build and install the
#                                 Debian packages and migrate a disk with
#                                 them (scripts/package-check.sh), run the
#                                 unit tests again under ASan and UBSan
#                                 (_build-asan/), and the fuzzers briefly;
#                                 non-zero on failure
#
# Both first install whatever Debian packages the build and the demo need
# and are missing, then build out of tree in _build/.
#
# Environment: STM_DEMO_SIZE_MIB (default 1024), STM_DEMO_WRITE_RATE (the
# writer's rate in fio's syntax, default 2m: 2 MiB/s of 4k random writes),
# STM_DEMO_DIR (where the demo keeps its files, default a fresh temporary
# directory), STM_JOBS (make -j, default 2), STM_FUZZ_SECONDS (how long
# check runs each fuzzer, default 30; 0 replays the corpora only).

set -euo pipefail

# A python shim ahead of /usr/bin (pyenv) can break the system's tools.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"

prog=quickstart.sh
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$repo/_build"

say () { echo "$prog: $*"; }
die () { echo "$prog: error: $*" >&2; exit 1; }

usage ()
{
    cat <<USAGE
usage: scripts/quickstart.sh demo|check

  demo   install what is missing, build, and migrate a live 1 GiB disk
         over TLS on loopback under concurrent writes
  check  install what is missing, build, run make check, build, install
         and try the Debian packages (scripts/package-check.sh), then the
         unit tests under ASan and UBSan and the fuzzers (STM_FUZZ_SECONDS
         each)
USAGE
}

# ----------------------------------------------------------------------
# Packages.

packages=(
    build-essential autoconf automake libtool pkg-config
    libnbd-dev libnbd-bin nbdkit nbdkit-plugin-dev
    libgnutls28-dev nettle-dev gnutls-bin libev-dev libcmocka-dev libzstd-dev zstd
    fio socat perl qemu-utils ansible-core python3-apt
    clang libclang-rt-14-dev
    # Building and checking the Debian packages (dpkg-buildpackage is in
    # dpkg-dev; debuild and the rest of devscripts are not needed), and
    # systemd-analyze for the unit of stm-recv.
    dpkg-dev debhelper lintian systemd
    # The real guest of tests/guest (test-guest-*.sh): QEMU (TCG), a
    # kernel with its modules, busybox for its init, and what builds its
    # initramfs and file systems.
    qemu-system-x86 linux-image-cloud-amd64 busybox-static e2fsprogs cpio kmod
)
# Only for check: test-report.sh draws the migration report in headless
# Chromium and counts pixels of the screenshot with PIL (a font, so that
# the page's text is drawn as a reader sees it).
check_packages=(chromium python3-pil fonts-dejavu-core)

installed () { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_packages ()
{
    local missing=() p sudo=()
    for p in "${packages[@]}"; do
        installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "all required Debian packages are installed"
        return 0
    fi
    command -v apt-get >/dev/null ||
        die "missing packages (${missing[*]}) and no apt-get: this script is for Debian 12"
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null ||
            die "missing packages (${missing[*]}): run as root or install sudo"
        sudo=(sudo)
    fi
    say "installing missing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -q ||
        die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
}

# ----------------------------------------------------------------------
# Build, out of tree.

build ()
{
    local jobs="${STM_JOBS:-2}"
    say "building in $build"
    mkdir -p "$build" "$repo/m4"
    (cd "$repo" && autoreconf -fi) >"$build/autoreconf.log" 2>&1 || {
        cat "$build/autoreconf.log" >&2
        die "autoreconf failed in $repo"
    }
    (cd "$build" && "$repo/configure" -q) || die "configure failed (see $build/config.log)"
    make -C "$build" -j"$jobs" >"$build/make.log" 2>&1 || {
        tail -n 40 "$build/make.log" >&2
        die "the build failed (full log: $build/make.log)"
    }
    say "built: $build/sender/stm-send, $build/receiver/stm-recv," \
        "$build/nbdkit-plugin/.libs/nbdkit-migrate-filter.so"
}

# ----------------------------------------------------------------------
# check

# The unit tests again, built with AddressSanitizer and
# UndefinedBehaviorSanitizer in a second out-of-tree build.  Only the unit
# tests and what they link (common, proto, report): the integration tests
# load the filter into nbdkit, which does not run under the sanitizers'
# runtime.
check_sanitizers ()
{
    local jobs="${STM_JOBS:-2}" asan="$repo/_build-asan" d
    local san='-fsanitize=address,undefined'
    say "building the unit tests with AddressSanitizer and UBSan in $asan"
    mkdir -p "$asan"
    : >"$asan/make.log"
    (cd "$asan" && "$repo/configure" -q \
        CFLAGS="$san -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1" \
        LDFLAGS="$san") >"$asan/configure.log" 2>&1 || {
        tail -n 20 "$asan/configure.log" >&2
        die "configure of the sanitizer build failed (see $asan/config.log)"
    }
    for d in common proto report mirror; do
        make -C "$asan/$d" -j"$jobs" >>"$asan/make.log" 2>&1 || {
            tail -n 40 "$asan/make.log" >&2
            die "the sanitizer build of $d/ failed (full log: $asan/make.log)"
        }
    done
    say "running the unit tests under ASan and UBSan"
    if ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
       UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       make -C "$asan/tests/unit" -j"$jobs" check VERBOSE=1; then
        say "the unit tests passed under ASan and UBSan"
    else
        die "the unit tests FAILED under ASan or UBSan (logs: $asan/tests/unit/*.log)"
    fi
}

# The libFuzzer harnesses of the wire decoder and the control parser, each
# for STM_FUZZ_SECONDS (default 30), if clang can build them.
check_fuzz ()
{
    local secs="${STM_FUZZ_SECONDS:-30}"
    if ! make -s -C "$build/tests/fuzz" fuzz-cc-probe >/dev/null 2>&1; then
        say "SKIPPED the fuzzers: clang cannot build libFuzzer programs" \
            "(install the Debian packages clang and libclang-rt-14-dev)"
        return 0
    fi
    say "fuzzing the wire decoder and the control parser for $secs s each"
    if make -s -C "$build" fuzz FUZZ_SECONDS="$secs"; then
        say "the fuzzers found nothing"
    else
        die "a fuzzer FAILED (inputs that crash: $build/tests/fuzz/fuzz-artifacts/)"
    fi
}

cmd_check ()
{
    packages+=("${check_packages[@]}")
    install_packages
    build
    say "running make check in $build"
    if make -C "$build" -j"${STM_JOBS:-2}" check VERBOSE=1; then
        say "make check passed"
    else
        die "make check FAILED (logs: $build/tests/*/*.log)"
    fi
    say "building, installing and trying the Debian packages (scripts/package-check.sh)"
    "$repo/scripts/package-check.sh" || die "the package check FAILED (its messages are above)"
    check_sanitizers
    check_fuzz
}

# ----------------------------------------------------------------------
# demo

demo_pids=()
demo_dir=
demo_ok=no

demo_cleanup ()
{
    local pid
    set +e
    for pid in "${demo_pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    done
    sleep 0.5
    for pid in "${demo_pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null
    done
    wait 2>/dev/null
    if [ -n "$demo_dir" ]; then
        if [ "$demo_ok" = yes ] && [ -z "${STM_DEMO_DIR:-}" ]; then
            rm -rf "$demo_dir"
        else
            echo "$prog: files and logs kept in $demo_dir" >&2
        fi
    fi
}

# demo_spawn OUT ERR CMD...: start CMD in its own session in the
# background; DEMO_PID is its pid (and process group).
demo_spawn ()
{
    local out="$1" err="$2"
    shift 2
    setsid "$@" </dev/null >"$out" 2>"$err" &
    DEMO_PID=$!
    demo_pids+=("$DEMO_PID")
}

# demo_wait SECONDS WHAT CMD...: poll CMD until it succeeds, at most SECONDS.
demo_wait ()
{
    local secs="$1" what="$2" i
    shift 2
    for (( i = 0; i < secs * 10; i++ )); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "timed out after $secs s waiting for $what"
}

cmd_demo ()
{
    install_packages
    build

    local size_mib="${STM_DEMO_SIZE_MIB:-1024}"
    local rate="${STM_DEMO_WRITE_RATE:-2m}"
    local filter="$build/nbdkit-plugin/.libs/nbdkit-migrate-filter.so"
    local send="$build/sender/stm-send" recv="$build/receiver/stm-recv"
    local d port status

    trap demo_cleanup EXIT
    trap 'exit 1' INT TERM
    if [ -n "${STM_DEMO_DIR:-}" ]; then
        mkdir -p "$STM_DEMO_DIR"
        demo_dir="$(cd "$STM_DEMO_DIR" && pwd)"
    else
        demo_dir="$(mktemp -d /tmp/stm-demo.XXXXXX)"
    fi
    d="$demo_dir"
    rm -f "$d/nbd.sock" "$d/ctl.sock" "$d/dst.img"

    say "making a ${size_mib} MiB random source image, $d/src.img"
    head -c "$(( size_mib * 1024 * 1024 ))" /dev/urandom > "$d/src.img"
    # A real disk has no gigabyte of unwritten page cache: write it out
    # now, or the flush at the freeze would count it as downtime.
    sync "$d/src.img"
    say "making a TLS pre-shared key, $d/keys.psk"
    psktool -u stm -p "$d/keys.psk" >/dev/null

    say "serving it: nbdkit --filter=migrate file (NBD on $d/nbd.sock, control on $d/ctl.sock)"
    demo_spawn "$d/nbdkit.out" "$d/nbdkit.err" \
        nbdkit -f -U "$d/nbd.sock" -P "$d/nbdkit.pid" --filter="$filter" \
        file file="$d/src.img" migrate-control="$d/ctl.sock"
    demo_wait 30 "nbdkit to start (log: $d/nbdkit.err)" \
        test -S "$d/nbd.sock" -a -S "$d/ctl.sock" -a -s "$d/nbdkit.pid"

    say "starting the guest stand-in: fio, 4k random writes at $rate/s"
    demo_spawn "$d/fio.out" "$d/fio.err" \
        fio --name=guest --ioengine=nbd --uri="nbd+unix:///?socket=$d/nbd.sock" \
        --rw=randwrite --bs=4k --iodepth=8 --size="${size_mib}m" \
        --time_based --runtime=600 --rate=,"$rate"

    say "starting the receiver: stm-recv --listen 127.0.0.1:0 --tls-psk ... --once"
    demo_spawn "$d/recv.out" "$d/recv.err" \
        "$recv" --listen 127.0.0.1:0 --output "$d/dst.img" \
        --tls-psk "$d/keys.psk" --once
    local recv_pid=$DEMO_PID
    demo_wait 30 "stm-recv to listen (log: $d/recv.err)" \
        grep -q 'listening on 127\.0\.0\.1:[0-9]' "$d/recv.err"
    port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$d/recv.err" | head -n 1)"
    sleep 1   # let the writer get going

    say "migrating: stm-send --dest 127.0.0.1:$port --tls-psk ... (live, fio still writing)"
    status=0
    "$send" --source "nbd+unix:///?socket=$d/nbd.sock" --control "$d/ctl.sock" \
        --dest "127.0.0.1:$port" --tls-psk "$d/keys.psk" --progress \
        --json > "$d/send.json" 2> >(tee "$d/send.err" >&2) || status=$?
    wait $! 2>/dev/null || true     # tee has copied everything
    # End the progress bar's line before saying more.
    [ -z "$(tail -c 1 "$d/send.err")" ] || echo >&2
    if [ "$status" -ne 0 ]; then
        demo_ok=no
        die "FAILED: stm-send exited with status $status (see $d/send.err); the source is still authoritative"
    fi

    # stm-recv --once exits after the commit.
    local i
    for (( i = 0; i < 300; i++ )); do
        kill -0 "$recv_pid" 2>/dev/null || break
        sleep 0.1
    done
    status=0
    wait "$recv_pid" || status=$?
    [ "$status" -eq 0 ] || die "FAILED: stm-recv exited with status $status (see $d/recv.err)"

    local state
    state="$(printf 'STATUS\n' | socat -t 2 - "UNIX-CONNECT:$d/ctl.sock" | head -n 1)"
    case "$state" in
        *state=fenced*) say "the source is fenced: the guest's I/O there now fails (fio stops)" ;;
        *) die "FAILED: the source is not fenced after the migration: $state" ;;
    esac

    say "comparing the destination with the fenced source ..."
    if ! cmp "$d/src.img" "$d/dst.img"; then
        die "FAILED: $d/dst.img differs from $d/src.img"
    fi

    local summary passes bytes secs downtime
    summary="$(grep '"event":"done"' "$d/send.json" | tail -n 1)"
    field () { sed -n "s/.*\"$1\":\\([0-9][0-9.]*\\).*/\\1/p" <<<"$summary"; }
    passes="$(field passes)"; bytes="$(field bytes_sent)"
    secs="$(field seconds)"; downtime="$(field downtime_ms)"
    [ -n "$passes" ] && [ -n "$bytes" ] && [ -n "$secs" ] && [ -n "$downtime" ] ||
        die "FAILED: stm-send's summary lacks a field: $summary"
    demo_ok=yes
    awk -v p="$passes" -v b="$bytes" -v s="$secs" -v dt="$downtime" 'BEGIN {
        printf "stm demo OK: destination identical to the source; %d passes, %.1f MiB sent in %.2f s (%.1f MiB/s), downtime %.0f ms\n",
               p, b / 1048576, s, (s > 0 ? b / 1048576 / s : 0), dt }'
}

case "${1:-}" in
    demo) cmd_demo ;;
    check) cmd_check ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
