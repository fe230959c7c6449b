#!/bin/sh
# Runs test binaries one after the other (in the VM lane, inside the guest), ignored tests
# included — the VM is where they belong — and prints how many tests passed in the VM.
#   tests/vm/suite.sh BINARY...
# Output streams as it comes; HOODY_TEST_THREADS (default 1) sets each binary's test threads.
set -u
# Daemons started by these tests build a 16-shard firewall table (tests/src/lib.rs): the
# default 1,024 shards cost a daemon start tens of seconds under TCG.
export HOODY_E2E_FIREWALL_SHARDS=16
passed=0
failed=0
rc=0
out=$(mktemp)
start=$(date +%s)
for bin in "$@"; do
    echo "== $(basename "$bin")"
    t0=$(date +%s)
    { "$bin" --include-ignored --test-threads "${HOODY_TEST_THREADS:-1}" 2>&1; echo "exit $?"; } | tee "$out"
    code=$(sed -n 's/^exit \([0-9]*\)$/\1/p' "$out" | tail -1)
    # Counts from the binary's result line (ANSI colours stripped); a binary that dies before
    # printing one counts as a failure.
    n=$(sed 's/\x1b\[[0-9;]*m//g' "$out" | sed -n 's/^test result: .* \([0-9][0-9]*\) passed; \([0-9][0-9]*\) failed.*/\1 \2/p' | tail -1)
    if [ -n "$n" ]; then
        passed=$((passed + ${n%% *}))
        failed=$((failed + ${n##* }))
    else
        failed=$((failed + 1))
    fi
    [ "$code" = 0 ] || rc=1
    echo "== $(basename "$bin"): exit $code in $(( $(date +%s) - t0 ))s"
done
rm -f "$out"
echo "== VM lane: $passed tests passed, $failed failed, in $# test binaries, $(( $(date +%s) - start ))s"
exit $rc
