#!/bin/sh
# The systemd boot test of the VM lane: a Debian 12 root file system (debootstrap, cached in
# $HOODY_VM_CACHE) with the hoody .deb installed, booted twice under QEMU by its own systemd.
# tests/vm/boot/hoody-boot-check runs at each boot: hoodyd.service is READY in its delegated
# cgroup, containers survive `systemctl restart hoodyd`, and after the reboot the autostart
# container runs again behind its firewall while the other stays stopped. Exit 0 only when the
# guest said PASS.
#   sudo tests/vm/boot.sh [path/to/hoody.deb]     (default: builds it with packaging/deb.sh)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
sh "$repo/packaging/deps.sh" test
. "$repo/packaging/toolchain.sh"
[ -z "${HOODY_SETUP_ONLY:-}" ] || exit 0
. "$here/kernel.sh"

deb=${1:-}
if [ -z "$deb" ]; then
    sh "$repo/packaging/deb.sh" >&2
    deb=$(ls -t "$repo"/target/debian/hoody_*.deb | head -1)
fi

# Debian's minimal base with systemd, once.
base=$cache/debian-bookworm
if [ ! -f "$base/.ready" ]; then
    echo "boot: debootstrap (cached in $base)" >&2
    rm -rf "$base.tmp"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,udev,kmod,iproute2,nftables,busybox-static,libnftnl11,libmnl0,procps,jq \
        bookworm "$base.tmp" http://deb.debian.org/debian >&2
    rm -rf "$base" && mv "$base.tmp" "$base" && touch "$base/.ready"
fi

# This run's disk: the base, the kernel's modules, the package, the check and a fake uplink
# (a dummy interface with a default route, so a container's packets reach the forward hook).
work=$(mktemp -d /tmp/hoody-boot.XXXXXX)
trap 'umount -l "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
root=$work/root
cp -a "$base" "$root"
mkdir -p "$root/lib/modules"
cp -a "$kdir/root/lib/modules/$kver" "$root/lib/modules/"
chroot "$root" depmod "$kver"   # kmod's binary indexes, so the guest loads modules on demand
echo hoody-boot > "$root/etc/hostname"
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
cp "$deb" "$root/tmp/hoody.deb"
mount -t proc proc "$root/proc"
chroot "$root" dpkg -i /tmp/hoody.deb >&2
umount "$root/proc"
rm -f "$root/tmp/hoody.deb"
# The "upgrade": the same package as version 0.1.0-2, installed by the check in the first boot.
mkdir -p "$root/var/lib/hoody-boot-check"
dpkg-deb -R "$deb" "$work/upgrade"
sed -i 's/^Version: .*/Version: 0.1.0-2/' "$work/upgrade/DEBIAN/control"
dpkg-deb -b "$work/upgrade" "$root/var/lib/hoody-boot-check/hoody-upgrade.deb" > /dev/null
install -m 755 "$here/boot/hoody-boot-check" "$root/usr/local/sbin/hoody-boot-check"
install -m 644 "$here/boot/hoody-boot-check.service" "$root/etc/systemd/system/"
cat > "$root/etc/systemd/system/hoody-boot-uplink.service" <<'UNIT'
[Unit]
Description=hoody boot test: a fake uplink
Before=hoodyd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link add up0 type dummy && ip addr add 198.51.100.1/24 dev up0 && ip link set up0 up && ip route add default via 198.51.100.2'
[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../hoody-boot-check.service "$root/etc/systemd/system/multi-user.target.wants/hoody-boot-check.service"
ln -sf ../hoody-boot-uplink.service "$root/etc/systemd/system/multi-user.target.wants/hoody-boot-uplink.service"
truncate -s 3G "$work/disk.img"
mkfs.ext4 -q -F -d "$root" "$work/disk.img"
rm -rf "$root"

start=$(date +%s)
set +e
timeout --foreground -k 10 "${HOODY_BOOT_TIMEOUT:-900}" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp 1 -m 2048 -machine pc \
    -nodefaults -no-user-config -display none -serial stdio \
    -kernel "$kdir/root/boot/vmlinuz-$kver" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 loglevel=3 cgroup_no_v1=all rdinit=/init hoody.root=/dev/vda systemd.show_status=0" \
    -drive "file=$work/disk.img,if=virtio,format=raw" </dev/null | tee "$work/console.log" | grep --line-buffered 'HOODY-BOOT'
set -e
elapsed=$(( $(date +%s) - start ))
if grep -q 'HOODY-BOOT: PASS' "$work/console.log"; then
    echo "== systemd boot test: PASS in ${elapsed}s (two boots)"
    exit 0
fi
if panic=$(grep -m1 -E 'Kernel panic|Initramfs unpacking failed' "$work/console.log"); then
    echo "== systemd boot test: FAIL: the guest kernel panicked: $panic" >&2
fi
echo "== systemd boot test: FAIL after ${elapsed}s; the console's end:" >&2
tail -60 "$work/console.log" >&2
exit 1
