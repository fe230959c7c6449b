#!/bin/sh
# Benchmarks, side by side with peer tools in the same run; writes docs/PERFORMANCE.md.
#   sudo tests/bench/run.sh [SECTION...]
# Sections: peers (start vs podman, crun, runc, lxc-execute, systemd-nspawn), lifecycle (50 in a
# row vs crun, image size), density (200 running), restart (100 running), packets (conn/s with
# 10 vs 1,000 containers), firewall (rule changes 1 → 1,000 containers), dns (queries through the
# resolver vs dnsmasq straight, conn/s by name), exec (vs nsenter and crun exec), fork (from a snapshot vs from the image), snapshots, quotas (btrfs
# qgroups vs none), api, events (API latency with 100 subscribers vs none), api-baseline (with
# HOODY_BENCH_BASELINE=REV, below).
# Default: all. Installs the peers from Debian's packages first.
set -eu
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
sh packaging/deps.sh bench
. packaging/toolchain.sh
[ -z "${HOODY_SETUP_ONLY:-}" ] || exit 0
# The daemon measured is the release build with its test hooks (the api section switches the
# audit log off to measure its cost), in the tests' target directory of its own
# (tests/src/lib.rs); the benchmark finds it beside itself.
cargo build --release --bins --features hoodyd/test-hooks --target-dir target/hooked
sections=${*:-peers lifecycle density restart packets firewall dns exec fork snapshots quotas hostile-tree console api events}
# HOODY_BENCH_BASELINE=REV (a commit or tag) adds the api-baseline section: the API's latency
# against hoodyd as built from REV (exported with git archive, built in target/baseline).
if [ -n "${HOODY_BENCH_BASELINE:-}" ]; then
    base=target/baseline
    rm -rf "$base/src"
    mkdir -p "$base/src"
    git archive "$HOODY_BENCH_BASELINE" | tar -x -C "$base/src"
    cargo build --release -p hoodyd --manifest-path "$base/src/Cargo.toml" --target-dir "$base/target"
    HOODY_BENCH_BASELINE_BIN=$(pwd)/$base/target/release/hoodyd
    export HOODY_BENCH_BASELINE_BIN
    case " $sections " in
        *" api-baseline "*) ;;
        *) sections="$sections api-baseline" ;;
    esac
fi
# The daemons under test log at info, as in production (tests log at debug).
export HOODY_LOG=info
# Every section must succeed, or docs/PERFORMANCE.md stays as it was and the exit status is 1.
# shellcheck disable=SC2086
exec sh tests/bench/report.sh docs/PERFORMANCE.md target/hooked/release/hoody-bench $sections
