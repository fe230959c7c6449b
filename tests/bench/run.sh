#!/bin/sh
# Benchmarks, side by side with peer tools in the same run; writes docs/PERFORMANCE.md.
#   sudo tests/bench/run.sh [SECTION...]
# Sections: peers (start vs podman, crun, runc, lxc-execute, systemd-nspawn), lifecycle (50 in a
# row vs crun, image size), density (200 running), restart (100 running), packets (conn/s with
# 10 vs 1,000 containers), firewall (rule changes 1 → 1,000 containers), snapshots, api.
# Default: all. Installs the peers from Debian's packages first.
set -eu
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
. packaging/deps.sh bench
cargo build --release --bins
sections=${*:-peers lifecycle density restart packets firewall snapshots api}
# The daemons under test log at info, as in production (tests log at debug).
export HOODY_LOG=info
out=docs/PERFORMANCE.md
{
    echo "# Performance"
    echo
    echo "Measured by \`tests/bench/run.sh\` on $(date -u +%Y-%m-%d): $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
        "$(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
    echo "Release build. Rounds alternate between hoody and its peer (A B A B …); ratios are medians of per-round ratios."
    echo "Nothing here is asserted by tests: timing belongs to benchmarks, not to the test suite."
    echo
    for s in $sections; do
        target/release/hoody-bench "$s"
        echo
    done
    cat docs/TEST-TIMES.md
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
