#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
# stm guest tests: build the initramfs of the test guest.
#
#   tests/guest/mkinitramfs.sh CACHE-DIR
#
# The guest is Debian's kernel (STM_GUEST_KERNEL, default the newest
# /boot/vmlinuz-*; its modules are those of /lib/modules/VERSION, VERSION
# taken from the file name unless STM_GUEST_KERNEL_VERSION says it) with an initramfs holding a static busybox, the guest's
# init (tests/guest/init, next to this script) and the kernel modules the
# virtio disks need (virtio_pci, virtio_blk, and ext4 when it is modular),
# with their dependencies, loaded in dependency order.  The archive is
# cached in CACHE-DIR under a name derived from every input (the init
# script, busybox, the kernel version and the modules' contents), so it is
# rebuilt exactly when one of them changes.  On success the script prints
# two lines, "kernel PATH" and "initrd PATH"; it exits 77 when something
# the guest needs is not installed (the caller skips), 1 on other errors.

set -euo pipefail
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"
export LC_ALL=C

prog=mkinitramfs.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

missing () { echo "$prog: $*" >&2; exit 77; }
die () { echo "$prog: error: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: $prog CACHE-DIR"
cache="$1"

# ----------------------------------------------------------------------
# The inputs.

init="$here/init"
[ -r "$init" ] || die "the guest's init script $init is missing"

kernel="${STM_GUEST_KERNEL:-}"
if [ -z "$kernel" ]; then
    kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)"
fi
[ -n "$kernel" ] && [ -r "$kernel" ] ||
    missing "no readable kernel (/boot/vmlinuz-*, or STM_GUEST_KERNEL): install linux-image-cloud-amd64"
kver="${STM_GUEST_KERNEL_VERSION:-$(basename "$kernel" | sed 's/^vmlinuz-//')}"
[ -d "/lib/modules/$kver" ] ||
    missing "no modules for kernel $kver in /lib/modules/$kver"

command -v modinfo >/dev/null || missing "modinfo (kmod) is not installed"
command -v cpio >/dev/null || missing "cpio is not installed"
command -v gzip >/dev/null || missing "gzip is not installed"

# The guest has no libc: busybox (STM_GUEST_BUSYBOX, default the one on
# PATH) must be the static build (busybox-static), which ldd calls "not a
# dynamic executable".
busybox="${STM_GUEST_BUSYBOX:-$(command -v busybox || true)}"
[ -n "$busybox" ] || missing "busybox is not installed: install busybox-static"
if ldd "$busybox" >/dev/null 2>&1; then
    missing "$busybox is dynamically linked: install busybox-static"
fi

# modules_of NAME: append to the array modules NAME's dependencies (depth
# first) and then NAME, as module file paths; nothing for a built-in one.
declare -A seen=()
modules_of ()
{
    local name="$1" path deps dep
    [ -n "${seen[$name]:-}" ] && return 0
    seen[$name]=1
    path="$(modinfo -k "$kver" -n "$name" 2>/dev/null)" ||
        die "kernel $kver has no module $name (and it is not built in)"
    case "$path" in
        "(builtin)"|"") return 0 ;;
    esac
    deps="$(modinfo -k "$kver" -F depends "$name" 2>/dev/null || true)"
    for dep in ${deps//,/ }; do
        modules_of "$dep"
    done
    modules+=("$path")
}

modules=()
for m in virtio_pci virtio_blk ext4; do
    modules_of "$m"
done

# ----------------------------------------------------------------------
# The cache key: a hash over every input's content.

key="$( {
    echo "kernel $kver"
    sha256sum "$init" "$busybox" "$here/mkinitramfs.sh"
    for p in "${modules[@]}"; do sha256sum "$p"; done
} | sha256sum | cut -c1-16 )"

mkdir -p "$cache"
initrd="$cache/initramfs-$key.cpio.gz"
if [ ! -s "$initrd" ]; then
    stage="$(mktemp -d "$cache/stage.XXXXXX")"
    # Tests run in parallel (make -j check) may build the same archive at
    # once: each writes its own file and renames it into place.
    out="$stage.cpio.gz"
    trap 'rm -rf "$stage" "$out"' EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,mnt/data,mnt/man,lib/modules}
    cp "$busybox" "$stage/bin/busybox"
    cp "$init" "$stage/init"
    chmod 0755 "$stage/init" "$stage/bin/busybox"
    # Modules as plain .ko (busybox insmod cannot read compressed ones),
    # named in load order in /lib/modules/order.
    : > "$stage/lib/modules/order"
    for p in "${modules[@]}"; do
        base="$(basename "$p")"
        case "$p" in
            *.ko.xz)  xz -dc "$p" > "$stage/lib/modules/${base%.xz}"; base="${base%.xz}" ;;
            *.ko.zst) zstd -qdc "$p" > "$stage/lib/modules/${base%.zst}"; base="${base%.zst}" ;;
            *.ko.gz)  gzip -dc "$p" > "$stage/lib/modules/${base%.gz}"; base="${base%.gz}" ;;
            *.ko)     cp "$p" "$stage/lib/modules/$base" ;;
            *) die "module $p has an unknown compression" ;;
        esac
        echo "$base" >> "$stage/lib/modules/order"
    done
    (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) \
        > "$out" || die "could not write the initramfs $initrd"
    mv "$out" "$initrd"
    # Older archives of other inputs are of no further use.
    find "$cache" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -name "$(basename "$initrd")" -delete
fi

echo "kernel $kernel"
echo "initrd $initrd"
