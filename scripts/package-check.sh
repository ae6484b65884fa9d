#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# stm package check: build the Debian packages from a clean copy of this
# tree, check them with lintian, install them (with apt-get, then again
# with the Ansible role stm.migration.install from the directory of .deb
# files), and migrate a disk using only what they installed:
# /usr/bin/stm-send, /usr/bin/stm-recv started through the ExecStart line
# of the installed stm-recv@.service (systemd-analyze verify checks that
# unit first), and nbdkit --filter=migrate found by name.  The last line
# says PASS, FAIL or SKIP.
#
# scripts/quickstart.sh check runs it after make check.  It needs root (or
# sudo) to install the packages.  Packages that were not installed before
# are purged at the end, unless STM_PACKAGE_KEEP=1; temporary files are
# removed unless STM_KEEP_TMP=1.  It skips (exit 0, SKIP) only when
# dpkg-buildpackage is missing; any other failure exits 1.

set -euo pipefail

# A python shim ahead of /usr/bin (pyenv) can break the system's tools.
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"

prog=package-check.sh
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The binary packages of debian/control that the hosts get; stm-ansible is
# the controller's, installed too so that its collection is checked.
host_packages=(stm-send stm-recv nbdkit-migrate-filter)
all_packages=("${host_packages[@]}" stm-ansible)

say () { echo "$prog: $*"; }
# fail MESSAGE: say what failed, then end with the FAIL line (the cleanup
# runs before it is printed, so that it is the last line).
fail ()
{
    echo "$prog: FAIL: $*" >&2
    trap 'declare -F cleanup >/dev/null && cleanup; echo "$prog: FAIL"' EXIT
    exit 1
}

if ! command -v dpkg-buildpackage >/dev/null 2>&1; then
    say "SKIP: dpkg-buildpackage is not installed (Debian package dpkg-dev), so the packages cannot be built"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null ||
        fail "installing the packages needs root: run as root or install sudo"
    sudo=(sudo)
fi

tmp="$(mktemp -d /tmp/stm-pkgcheck.XXXXXX)"
pids=()
preinstalled=()
for p in "${all_packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        preinstalled+=("$p")
    fi
done

# purge_new_packages: purge the packages this check installed that were
# not installed before it (unless STM_PACKAGE_KEEP=1), once.
purged=no
purge_new_packages ()
{
    local p purge=()
    [ "$purged" = no ] && [ -z "${STM_PACKAGE_KEEP:-}" ] || return 0
    purged=yes
    for p in "${all_packages[@]}"; do
        [[ " ${preinstalled[*]} " == *" $p "* ]] && continue
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' &&
            purge+=("$p")
    done
    if [ ${#purge[@]} -gt 0 ]; then
        say "purging the packages this check installed: ${purge[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --purge "${purge[@]}" >/dev/null ||
            echo "$prog: warning: dpkg --purge ${purge[*]} failed" >&2
    fi
}

cleanup ()
{
    local status=$? pid
    set +e
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    sleep 0.3
    for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
    wait 2>/dev/null
    purge_new_packages
    if [ -n "${STM_KEEP_TMP:-}" ]; then
        echo "$prog: files and logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    return "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# spawn LOG CMD...: start CMD in its own session, killed by cleanup.
spawn ()
{
    local log="$1"
    shift
    setsid "$@" </dev/null >"$log" 2>&1 &
    SPAWNED=$!
    pids+=("$SPAWNED")
}

# wait_until SECONDS WHAT CMD...: poll CMD until it succeeds.
wait_until ()
{
    local secs="$1" what="$2" i
    shift 2
    for (( i = 0; i < secs * 10; i++ )); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "timed out after $secs s waiting for $what"
}

# ----------------------------------------------------------------------
# 1. Build from a clean copy: the files git tracks, plus new ones it does
#    not ignore, as they are in the work tree (so uncommitted changes are
#    tested too), and nothing built.  Without git, the tree less its
#    build directories.

say "copying the source tree to $tmp/src"
mkdir "$tmp/src"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -x -C "$tmp/src" ||
        fail "cannot copy the files git lists in $repo to $tmp/src"
else
    (cd "$repo" && tar --exclude='./_build*' --exclude='./debian/tmp' -cf - .) |
        tar -x -C "$tmp/src" || fail "cannot copy $repo to $tmp/src"
fi

say "building the packages: dpkg-buildpackage -us -uc -b (log: build.log)"
start=$SECONDS
if ! (cd "$tmp/src" && dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    fail "dpkg-buildpackage failed in $tmp/src (the end of its log is above)"
fi
changes="$(ls "$tmp"/stm_*.changes 2>/dev/null | head -n 1)"
[ -n "$changes" ] || fail "dpkg-buildpackage made no .changes file in $tmp"
debs=()
for p in "${all_packages[@]}"; do
    f="$(ls "$tmp/${p}_"*.deb 2>/dev/null | head -n 1)"
    [ -n "$f" ] || fail "dpkg-buildpackage made no package $p"
    debs+=("$f")
done
say "built in $(( SECONDS - start )) s: $(cd "$tmp" && echo ./*.deb)"

# ----------------------------------------------------------------------
# 2. lintian: no errors.

if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error "$changes" >"$tmp/lintian.log" 2>&1 || {
        cat "$tmp/lintian.log" >&2
        fail "lintian reports errors on $(basename "$changes") (above)"
    }
    say "lintian: no errors, $(grep -c '^W: ' "$tmp/lintian.log" || true) warnings$(
        grep '^W: ' "$tmp/lintian.log" | sed 's/^W: /; /' | sort -u | tr -d '\n')"
else
    say "lintian is not installed (Debian package lintian): the packages are not linted"
fi

# ----------------------------------------------------------------------
# 3. Install with apt-get (which brings in their dependencies; --reinstall
#    so that an installed build of the same version is replaced), then
#    purge the hosts' packages and install them again with the Ansible
#    role, from the directory of .deb files, as an operator would.

say "installing: apt-get install --reinstall ${debs[*]##*/}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall \
    "${debs[@]}" >"$tmp/apt.log" 2>&1 || {
    tail -n 20 "$tmp/apt.log" >&2
    fail "apt-get install of the built packages failed"
}

version="$(dpkg-parsechangelog -l "$tmp/src/debian/changelog" -S Version)"
installed_version_is ()
{
    local p v
    for p in "$@"; do
        v="$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null)" || v=none
        [ "$v" = "install ok installed $version" ] ||
            fail "package $p: dpkg says '$v', not 'install ok installed $version'"
    done
}
installed_version_is "${all_packages[@]}"

if command -v ansible-playbook >/dev/null 2>&1; then
    say "purging ${host_packages[*]} and installing them with the role stm.migration.install"
    "${sudo[@]}" dpkg --purge "${host_packages[@]}" >"$tmp/purge.log" 2>&1 ||
        fail "dpkg --purge ${host_packages[*]} failed: $(tail -n 5 "$tmp/purge.log")"
    mkdir -p "$tmp/ansible-home" "$tmp/collections/ansible_collections/stm"
    # An empty configuration: no ansible.cfg of the user's or the directory's.
    : > "$tmp/ansible.cfg"
    ln -s "$tmp/src/ansible" "$tmp/collections/ansible_collections/stm/migration"
    cat > "$tmp/install.yml" <<EOF
# The role as an operator runs it, on this host.
- hosts: localhost
  connection: local
  gather_facts: false
  become: $([ ${#sudo[@]} -gt 0 ] && echo true || echo false)
  roles:
    - role: stm.migration.install
      vars:
        stm_deb_dir: $tmp
EOF
    run_role ()
    {
        ANSIBLE_COLLECTIONS_PATH="$tmp/collections" ANSIBLE_HOME="$tmp/ansible-home" \
        ANSIBLE_CONFIG="$tmp/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_LOCALHOST_WARNING=0 \
        ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
            timeout 300 ansible-playbook -i localhost, "$tmp/install.yml" >"$tmp/$1.log" 2>&1 || {
            tail -n 30 "$tmp/$1.log" >&2
            fail "the install role failed ($1; the end of its output is above)"
        }
    }
    run_role role-install
    grep -Eq 'localhost *: ok=[0-9]+ +changed=[1-9]' "$tmp/role-install.log" ||
        fail "the install role reported no change installing purged packages: $(tail -n 3 "$tmp/role-install.log")"
    run_role role-again
    grep -Eq 'localhost *: ok=[0-9]+ +changed=0 ' "$tmp/role-again.log" ||
        fail "the install role changed something the second time: $(tail -n 3 "$tmp/role-again.log")"
    installed_version_is "${host_packages[@]}"
    say "the install role installed ${host_packages[*]} $version, and changed nothing the second time"
else
    say "ansible-playbook is not installed (Debian package ansible-core): the install role is not tested"
fi

# What the packages installed, and nothing of the build tree, from here on.
send=/usr/bin/stm-send
unit=/lib/systemd/system/stm-recv@.service
for f in "$send" /usr/bin/stm-recv "$unit"; do
    [ -e "$f" ] || fail "$f is not installed"
done
[ -f "$(pkg-config --variable=filterdir nbdkit)/nbdkit-migrate-filter.so" ] ||
    fail "nbdkit-migrate-filter.so is not in nbdkit's filter directory $(pkg-config --variable=filterdir nbdkit)"
for m in stm-send:stm-send stm-recv:stm-recv nbdkit-migrate-filter:nbdkit-migrate-filter; do
    dpkg -L "${m%%:*}" | grep -q "/man1/${m#*:}\.1\.gz\$" ||
        fail "package ${m%%:*} does not install the man page ${m#*:}(1)"
done

# ----------------------------------------------------------------------
# 4. The installed unit: systemd-analyze verify of an instance, with the
#    man page check (it is installed now).

mkdir "$tmp/units"
cp "$unit" "$tmp/units/stm-recv@pkgcheck.service"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify runs man for Documentation=man:stm-recv(1); without man-db
    # that would fail for want of man, not of the page (checked above).
    man_opt=()
    command -v man >/dev/null 2>&1 || man_opt=(--man=no)
    if ! systemd-analyze verify "${man_opt[@]}" "$tmp/units/stm-recv@pkgcheck.service" >"$tmp/verify.log" 2>&1 ||
       [ -s "$tmp/verify.log" ]; then
        fail "systemd-analyze verify of the installed $unit: $(cat "$tmp/verify.log")"
    fi
    say "systemd-analyze verify of the installed stm-recv@.service (instance pkgcheck): nothing to report"
else
    say "systemd-analyze is not installed (Debian package systemd): the unit is not verified"
fi

# ----------------------------------------------------------------------
# 5. A migration.  systemd is not necessarily PID 1 here, so the unit's
#    ExecStart is expanded as systemd would with an options file in the
#    documented format and run under the unit's no-new-privileges and
#    capability bounding set (setpriv).  The source is nbdkit with the
#    filter by name.

source "$repo/systemd/unit-command.sh"
d="$tmp/run"
mkdir "$d"
head -c $(( 32 * 1024 * 1024 )) /dev/urandom > "$d/src.img"
psktool -u stm -p "$d/keys.psk" >/dev/null 2>&1 || fail "psktool could not make a key (Debian package gnutls-bin)"
# The options file is the example the package ships, with this check's
# address, output and key in place of the example's.
example=/usr/share/doc/stm-recv/examples/recv-example.conf
[ -f "$example" ] || fail "the package stm-recv does not install $example"
sed -e 's|0\.0\.0\.0:10810|127.0.0.1:0|' -e "s|/var/lib/stm/disk0\.img|$d/dst.img|" \
    -e "s|/etc/stm/keys\.psk|$d/keys.psk|" "$example" > "$d/recv-pkgcheck.conf"
grep -q "^STM_RECV_ARGS=--listen 127.0.0.1:0 --output $d/dst.img --tls-psk $d/keys.psk " \
    "$d/recv-pkgcheck.conf" ||
    fail "$example no longer has the STM_RECV_ARGS line this check adapts: $(grep STM_RECV_ARGS "$example")"
unit_command "$unit" pkgcheck "$d/recv-pkgcheck.conf" || fail "cannot expand the ExecStart of $unit"
[ "${UNIT_ARGV[0]}" = /usr/bin/stm-recv ] ||
    fail "the installed unit's ExecStart runs ${UNIT_ARGV[0]}, not /usr/bin/stm-recv"

caps="$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')"
wrap=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
    wrap=(setpriv --no-new-privs)
    [ -z "$caps" ] || wrap+=(--bounding-set "-all,$caps")
fi

spawn "$d/nbdkit.log" nbdkit -f -U "$d/src.sock" -P "$d/nbdkit.pid" --filter=migrate \
    file file="$d/src.img" migrate-control="$d/ctl.sock"
wait_until 30 "nbdkit --filter=migrate to start (log: nbdkit.log)" \
    test -S "$d/src.sock" -a -S "$d/ctl.sock" -a -s "$d/nbdkit.pid"

say "receiver: ${wrap[*]}${wrap[*]:+ }${UNIT_ARGV[*]}"
spawn "$d/recv.log" "${wrap[@]}" "${UNIT_ARGV[@]}"
recv_pid=$SPAWNED
wait_until 30 "stm-recv to listen (log: recv.log)" \
    grep -q 'listening on 127\.0\.0\.1:[0-9]' "$d/recv.log"
port="$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$d/recv.log" | head -n 1)"

status=0
timeout 120 "$send" --source "nbd+unix:///?socket=$d/src.sock" --control "$d/ctl.sock" \
    --dest "127.0.0.1:$port" --tls-psk "$d/keys.psk" --no-progress --json \
    >"$d/send.json" 2>"$d/send.log" </dev/null || status=$?
if [ "$status" -ne 0 ]; then
    cat "$d/send.log" "$d/recv.log" >&2
    fail "$send exited with status $status (its log and stm-recv's are above)"
fi
for (( i = 0; i < 300; i++ )); do
    kill -0 "$recv_pid" 2>/dev/null || break
    sleep 0.1
done
status=0
wait "$recv_pid" || status=$?
[ "$status" -eq 0 ] || { cat "$d/recv.log" >&2; fail "stm-recv --once exited with status $status after the migration"; }
if command -v socat >/dev/null 2>&1; then
    state="$(printf 'STATUS\n' | socat -t 2 - "UNIX-CONNECT:$d/ctl.sock" | head -n 1)"
    [[ "$state" == *state=fenced* ]] || fail "the source is not fenced after the migration: $state"
fi
cmp "$d/src.img" "$d/dst.img" || fail "the destination $d/dst.img differs from the source $d/src.img"
purge_new_packages
say "PASS: packages $version built, lintian-clean, installed; a 32 MiB migration with only the installed files gave an identical destination"
