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
sh "$here/../../packaging/deps.sh" test
[ -z "${HOODY_SETUP_ONLY:-}" ] || exit 0

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
# The console goes to stdout and to a file, so a failed boot can be told apart from a timeout;
# qemu's own status is kept in a file (a pipeline's status is its last command's under dash).
{
    qrc=0
    timeout --foreground -k 10 "$timeout" qemu-system-x86_64 \
        -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$memory" -machine pc \
        -nodefaults -no-user-config -display none -no-reboot -serial stdio \
        -kernel "$kdir/root/boot/vmlinuz-$kver" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 cgroup_no_v1=all rdinit=/init" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$share,mount_tag=vmshare,security_model=none" </dev/null || qrc=$?
    echo "$qrc" > "$share/qemu.rc"
} | tee "$share/console"
qemu=$(cat "$share/qemu.rc" 2>/dev/null || echo unknown)
elapsed=$(( $(date +%s) - start ))
if [ ! -f "$share/rc" ]; then
    if panic=$(grep -m1 -E 'Kernel panic|Initramfs unpacking failed' "$share/console"); then
        echo "vm: the guest kernel panicked after ${elapsed}s: $panic" >&2
        echo "vm: a cached kernel or initramfs may be broken; remove $cache to rebuild them" >&2
        exit 125
    fi
    if [ "$qemu" = 124 ] || [ "$qemu" = 137 ]; then
        echo "vm: timed out after ${elapsed}s (--timeout $timeout) with no exit status back" >&2
        exit 124
    fi
    echo "vm: no exit status came back after ${elapsed}s (qemu exited $qemu: the guest did not finish)" >&2
    exit 125
fi
rc=$(cat "$share/rc")
echo "vm: finished in ${elapsed}s with exit status $rc" >&2
exit "$rc"
