#!/bin/sh
# Writes the benchmark report OUT from the sections that BENCH (the hoody-bench binary) prints:
#   tests/bench/report.sh OUT BENCH SECTION...
# Each section goes to a file of its own and its exit status is checked (a pipeline's status is
# only its last command's under dash). OUT is replaced, in one rename, only when every section
# succeeded; otherwise the failed sections are named, OUT is left as it was, and the exit status
# is 1. Called by tests/bench/run.sh; tests/tests/setup_scripts.rs checks it with a failing BENCH.
set -eu
[ $# -ge 3 ] || { echo "usage: report.sh OUT BENCH SECTION..." >&2; exit 2; }
out=$1
bench=$2
shift 2
dir=$(dirname "$out")
tmp=$(mktemp -d "$dir/.report.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=""
n=0
for s in "$@"; do
    n=$((n + 1))
    echo "== section $s" >&2
    rc=0
    "$bench" "$s" > "$tmp/$n.md" || rc=$?
    cat "$tmp/$n.md"
    if [ "$rc" != 0 ]; then
        echo "== section $s FAILED (exit $rc)" >&2
        failed="$failed $s"
    fi
done
if [ -n "$failed" ]; then
    echo "benchmarks failed:$failed; $out is left as it was" >&2
    exit 1
fi
{
    echo "# Performance"
    echo
    echo "Measured by \`tests/bench/run.sh\` on $(date -u +%Y-%m-%d): $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
        "$(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
    echo "Release build. Rounds alternate between hoody and its peer (A B A B …); ratios are medians of per-round ratios."
    echo "Nothing here is asserted by tests: timing belongs to benchmarks, not to the test suite."
    echo
    i=0
    for s in "$@"; do
        i=$((i + 1))
        cat "$tmp/$i.md"
        echo
    done
    [ ! -f "$dir/TEST-TIMES.md" ] || cat "$dir/TEST-TIMES.md"
} > "$tmp/report.md"
mv "$tmp/report.md" "$out"
echo "wrote $out" >&2
