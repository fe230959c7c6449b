#!/bin/sh
# Installs the Debian packages hoody needs to build and run (and, with "test", to be tested).
# Idempotent and non-interactive; does nothing when everything is present.
set -eu
want="pkg-config libnftnl-dev libmnl-dev nftables busybox-static btrfs-progs iproute2 e2fsprogs zstd jq"
if [ "${1:-}" = test ] || [ "${1:-}" = bench ]; then
    want="$want crun qemu-system-x86 cpio gcc libc6-dev debootstrap dpkg-dev"
fi
# The peers the benchmarks run side by side with hoody (tests/bench/run.sh).
if [ "${1:-}" = bench ]; then
    want="$want podman netavark aardvark-dns iptables runc lxc systemd-container"
fi
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    for c in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
        [ -x "$c/cargo" ] && PATH="$c:$PATH" && export PATH
    done
fi
command -v cargo >/dev/null 2>&1 || {
    echo "a Rust toolchain (cargo, Rust >= 1.85) is needed: https://rustup.rs" >&2
    exit 1
}
