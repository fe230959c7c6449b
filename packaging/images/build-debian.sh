#!/bin/sh
# Builds a minimal Debian root file system tarball with debootstrap (--variant=minbase), with
# tini as /sbin/init (reaps orphans, forwards signals):
#   packaging/images/build-debian.sh debian.tar.zst [SUITE] [MIRROR]
#   hoodyctl images import debian debian.tar.zst
set -eu
out=${1:?usage: build-debian.sh OUT.tar.zst [SUITE] [MIRROR]}
suite=${2:-bookworm}
mirror=${3:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include=tini,procps,iproute2 "$suite" "$tmp/rootfs" "$mirror"
cat >"$tmp/rootfs/sbin/init" <<'INIT'
#!/bin/sh
# hoody's init for the minimal Debian image: tini as PID 1, idle until stopped.
exec /usr/bin/tini -s -- /bin/sleep infinity
INIT
chmod 755 "$tmp/rootfs/sbin/init"
rm -rf "$tmp/rootfs/var/cache/apt/archives/"*.deb "$tmp/rootfs/var/lib/apt/lists/"*
tar --numeric-owner -C "$tmp/rootfs" -cf - . | zstd -q -T0 -o "$out" -f
echo "$out"
