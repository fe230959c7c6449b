#!/bin/sh
# Benchmarks, side by side with peer tools in the same run; writes docs/PERFORMANCE.md.
#   sudo tests/bench/run.sh [SECTION...]     (sections: lifecycle restart firewall snapshots api; default: all)
set -eu
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
. packaging/deps.sh test
cargo build --release --bins
sections=${*:-lifecycle restart firewall snapshots api}
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
} | tee "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out"
