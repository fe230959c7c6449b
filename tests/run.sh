#!/bin/sh
# Every test: formatting and lints, unit tests (no root needed), the privileged end-to-end suite
# (root; each test builds and removes its own namespaces, file systems and cgroups).
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the end-to-end tests create namespaces, mounts and cgroups" >&2; exit 1; }
. packaging/deps.sh test
start=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins --tests
echo "== unit tests"
cargo test --workspace --exclude hoody-e2e
echo "== privileged end-to-end tests"
cargo test -p hoody-e2e -- --test-threads "${HOODY_TEST_THREADS:-2}"
echo "== all tests passed in $(( $(date +%s) - start ))s"
