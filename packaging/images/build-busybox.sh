#!/bin/sh
# Builds a busybox root file system tarball from Debian's busybox-static, in seconds:
#   packaging/images/build-busybox.sh busybox.tar.zst   (or .tar, .tar.gz)
#   hoodyctl images import busybox busybox.tar.zst
set -eu
out=${1:?usage: build-busybox.sh OUT.tar|OUT.tar.gz|OUT.tar.zst}
bb=${BUSYBOX:-/bin/busybox}
if [ ! -x "$bb" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
r="$tmp/rootfs"
mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc" "$r/dev" "$r/proc" "$r/sys" \
    "$r/tmp" "$r/root" "$r/run" "$r/var/log" "$r/home"
chmod 1777 "$r/tmp"
chmod 700 "$r/root"
cp "$bb" "$r/bin/busybox"
for applet in $("$bb" --list-full); do
    [ "$applet" = bin/busybox ] || ln -sf /bin/busybox "$r/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
printf '::sysinit:/bin/true\n::shutdown:/bin/sync\n' >"$r/etc/inittab"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$r/etc/hosts"
printf 'NAME="hoody busybox"\nID=busybox\n' >"$r/etc/os-release"
case "$out" in
    *.tar.zst) tar --numeric-owner --owner=0 --group=0 -C "$r" -cf - . | zstd -q -19 -o "$out" -f ;;
    *.tar.gz) tar --numeric-owner --owner=0 --group=0 -C "$r" -czf "$out" . ;;
    *) tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$out" . ;;
esac
echo "$out"
