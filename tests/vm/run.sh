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

. "$here/kernel.sh"

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
