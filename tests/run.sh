#!/bin/sh
# Every test: formatting and lints, unit tests (no root needed), the privileged end-to-end suite
# on this host (root; each test builds and removes its own namespaces, file systems and
# cgroups); beside it the VM lane (the tests of limits that need a pure cgroup v2 hierarchy, in
# a QEMU guest, tests/vm/) and the fresh-machine test (the set-up of every mode in a fresh
# minimal Debian root, tests/fresh/); then the systemd boot test (tests/vm/boot.sh): the Debian
# package installed in a Debian guest that systemd boots twice.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the end-to-end tests create namespaces, mounts and cgroups" >&2; exit 1; }
sh packaging/deps.sh test
. packaging/toolchain.sh
[ -z "${HOODY_SETUP_ONLY:-}" ] || exit 0
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins --tests
# The tests' daemon: with its test hooks, in a target directory of its own (features unify
# within one build, so the workspace's own binaries stay as released; tests/src/lib.rs).
cargo build -p hoodyd -p hoodyctl --features hoodyd/test-hooks --target-dir target/hooked
echo "== unit tests"
cargo test --workspace --exclude hoody-e2e

# The VM lane runs only what needs the VM: the tests of limits that need a pure cgroup v2
# hierarchy (vm_limits) and of ext4 project quotas (vm_quotas: this kernel lacks CONFIG_QUOTA);
# everything else runs on the host.
vm_bins=$(cargo test -p hoody-e2e --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.profile.test == true and (.target.name == "vm_limits" or .target.name == "vm_quotas")) | .executable')
[ -n "$vm_bins" ] || { echo "no vm_limits test binary was built" >&2; exit 1; }
vmlog=target/vm-lane.log
echo "== VM lane started (log: $vmlog)"
sh tests/vm/run.sh --timeout "${HOODY_VM_TIMEOUT:-1800}" -- sh tests/vm/suite.sh $vm_bins > "$vmlog" 2>&1 &
vm=$!
freshlog=target/fresh-machine.log
echo "== fresh-machine test started (log: $freshlog)"
sh tests/fresh/run.sh > "$freshlog" 2>&1 &
fresh=$!
trap 'kill $vm $fresh 2>/dev/null || true' INT TERM

echo "== privileged end-to-end tests (host)"
host=0
# --no-fail-fast: a failing test binary does not hide the ones after it.
cargo test -p hoody-e2e --no-fail-fast -- --test-threads "${HOODY_TEST_THREADS:-2}" || host=$?

echo "== systemd boot test (the .deb in a Debian guest booted twice by systemd; beside the VM lane)"
boot=0
sh tests/vm/boot.sh > target/vm-boot.log 2>&1 || boot=$?
grep -E 'HOODY-BOOT|== systemd boot test' target/vm-boot.log || true
[ "$boot" = 0 ] || tail -80 target/vm-boot.log

echo "== fresh-machine test (waiting for it)"
freshrc=0
wait $fresh || freshrc=$?
cat "$freshlog"

echo "== VM lane (waiting for it)"
lane=0
wait $vm || lane=$?
# The guest's output without the kernel's own console lines.
grep -v '^\[ *[0-9]*\.[0-9]*\]' "$vmlog" || true
echo "== host end-to-end: exit $host; systemd boot test: exit $boot; fresh machine: exit $freshrc; VM lane: exit $lane; all in $(( $(date +%s) - start ))s"
[ "$host" = 0 ] && [ "$boot" = 0 ] && [ "$freshrc" = 0 ] && [ "$lane" = 0 ]
