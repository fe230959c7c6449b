#!/bin/sh
# The VM lane: runs a command as root inside a VM that boots Debian's kernel under QEMU (software
# emulation: these machines have no KVM) with a pure cgroup v2 hierarchy (cgroup_no_v1=all) and
# the host's root file system shared read-only, so host-built binaries run unchanged. The
# command's output comes back on stdout and its exit status is this script's; a VM that fails to
# boot, or does not finish in time, is a failure.
#
#   sudo tests/vm/run.sh [--timeout SECONDS] [--memory MiB] [--cpus N] -- COMMAND [ARGS...]
#
# e.g. one test in the VM:
#   cargo test -p hoody-e2e --no-run            # prints the test binaries
#   sudo tests/vm/run.sh -- target/debug/deps/vm_limits-HASH --include-ignored oom
#
# Fetches what it needs (qemu-system-x86, busybox-static, cpio, the kernel package of Debian's
# linux-image-amd64) and caches the kernel and the initramfs in $HOODY_VM_CACHE
# (/var/cache/hoody-vm).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
timeout=1800
memory=3072
cpus=${HOODY_VM_CPUS:-1}
while [ $# -gt 0 ]; do
    case "$1" in
        --timeout) timeout=$2; shift 2 ;;
        --memory) memory=$2; shift 2 ;;
        --cpus) cpus=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--timeout S] [--memory MiB] [--cpus N] -- COMMAND [ARGS...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
. "$here/../../packaging/deps.sh" test

cache=${HOODY_VM_CACHE:-/var/cache/hoody-vm}
mkdir -p "$cache"

# The kernel: the image package linux-image-amd64 currently points at, extracted once.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
kver=${pkg#linux-image-}
kdir=$cache/$kver
if [ ! -f "$kdir/ready" ]; then
    echo "vm: fetching $pkg" >&2
    rm -rf "$kdir" && mkdir -p "$kdir"
    (cd "$kdir" && apt-get download "$pkg" >/dev/null 2>&1) || { apt-get update -qq; (cd "$kdir" && apt-get download "$pkg" >/dev/null); }
    dpkg-deb -x "$kdir"/*.deb "$kdir/root"
    rm -f "$kdir"/*.deb
    busybox depmod -b "$kdir/root" "$kver"
    touch "$kdir/ready"
fi

# The initramfs: busybox, /init, and the modules the tests need with everything they depend on
# (all of netfilter, so nftables can load what it asks for on demand). Rebuilt when init or this
# list changes.
modules="virtio_pci 9pnet_virtio 9p overlay loop btrfs ext4 veth bridge nf_tables nft_ct nft_nat
nft_chain_nat nft_masq nft_reject_inet nft_fib_inet nft_limit nft_log nfnetlink_log nf_conntrack
nf_nat crc32c_generic"
key=$( (cat "$here/init" "$here/pid1.sh"; echo "$modules"; busybox | head -1) | sha256sum | cut -c1-16)
initrd=$cache/initrd-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
    echo "vm: building the initramfs" >&2
    mdir=$kdir/root/lib/modules/$kver
    t=$(mktemp -d)
    mkdir -p "$t/bin" "$t/proc" "$t/sys" "$t/dev" "$t/lib/modules/$kver"
    cp /bin/busybox "$t/bin/busybox"
    cp "$here/init" "$t/init"
    cp "$here/pid1.sh" "$t/pid1.sh"
    chmod 755 "$t/init"
    # The dependency closure of the wanted modules, plus every netfilter module.
    want=$(for m in $modules; do
        find "$mdir/kernel" -name "$m.ko" | sed "s|^$mdir/||"
    done; (cd "$mdir" && find kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter -name '*.ko'))
    all=$(echo "$want" | awk -v dep="$mdir/modules.dep" '
        BEGIN { while ((getline l < dep) > 0) { split(l, p, ":"); deps[p[1]] = p[2] } }
        { queue[++n] = $1 }
        END {
            for (i = 1; i <= n; i++) {
                m = queue[i]; if (m == "" || seen[m]++) continue; print m
                k = split(deps[m], d, " "); for (j = 1; j <= k; j++) queue[++n] = d[j]
            }
        }')
    for f in $all; do
        mkdir -p "$t/lib/modules/$kver/$(dirname "$f")"
        cp "$mdir/$f" "$t/lib/modules/$kver/$f"
    done
    cp "$mdir/modules.builtin" "$mdir/modules.order" "$t/lib/modules/$kver/" 2>/dev/null || true
    busybox depmod -b "$t" "$kver"
    echo "$modules" | tr -s ' \n' '\n\n' | sed '/^$/d' > "$t/modules.load"
    (cd "$t" && find . | cpio -o -H newc --quiet | gzip -1) > "$initrd.tmp"
    mv "$initrd.tmp" "$initrd"
    rm -rf "$t"
fi

# What the guest runs: the command, from the same directory, with the same test-relevant
# environment.
share=$(mktemp -d /tmp/hoody-vm.XXXXXX)
trap 'rm -rf "$share"' EXIT INT TERM
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root'
    for v in RUST_BACKTRACE RUST_LOG HOODY_LOG HOODY_TEST_THREADS HOODY_BIN_DIR; do
        eval "val=\${$v:-}"
        [ -n "$val" ] && echo "export $v=$(q "$val")"
    done
    echo "cd $(q "$(pwd)") || exit 126"
    for a in "$@"; do printf '%s ' "$(q "$a")"; done
    echo '< /dev/null 2>&1'
    echo 'echo $? > /run/vm/rc'
} > "$share/guest.sh"

start=$(date +%s)
set +e
timeout --foreground -k 10 "$timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$memory" -machine pc \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio \
    -kernel "$kdir/root/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3 cgroup_no_v1=all rdinit=/init" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$share,mount_tag=vmshare,security_model=none" </dev/null
qemu=$?
set -e
elapsed=$(( $(date +%s) - start ))
if [ ! -f "$share/rc" ]; then
    echo "vm: no exit status came back after ${elapsed}s (qemu exited $qemu: boot failure or timeout)" >&2
    exit 124
fi
rc=$(cat "$share/rc")
echo "vm: finished in ${elapsed}s with exit status $rc" >&2
exit "$rc"
