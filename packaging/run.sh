#!/bin/sh
# The main job: build hoodyd and run it with its embedded defaults (state and storage under
# /var/lib/hoody, socket /run/hoody/hoodyd.sock, a busybox image it builds itself when absent).
# Extra arguments are passed to hoodyd, e.g. --storage-driver overlay.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (hoodyd creates namespaces, cgroups and mounts)" >&2; exit 1; }
sh packaging/deps.sh run
. packaging/toolchain.sh
[ -z "${HOODY_SETUP_ONLY:-}" ] || exit 0
cargo build --release -p hoodyd -p hoodyctl --bins
getent group hoody >/dev/null || groupadd --system hoody
install -m 0755 target/release/hoodyctl /usr/local/bin/hoodyctl
echo "hoodyd starting; in another terminal: hoodyctl containers create --name demo --image busybox --start"
exec target/release/hoodyd "$@"
