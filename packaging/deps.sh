#!/bin/sh
# Installs the Debian packages hoody needs, as listed in packaging/deps.list, and checks the
# Rust toolchain. Run it (never source it: dash ignores arguments to `.`):
#
#   packaging/deps.sh run|test|bench [--check]
#
# run: build and run hoodyd; test: every test (run's plus the VM lane's and the test tools);
# bench: the benchmarks (test's plus the peer tools). Idempotent and non-interactive: packages
# already installed (by dpkg-query, not by what happens to be on PATH) are not touched.
# --check installs nothing and exits 1 when something is missing. The caller still needs cargo on
# its own PATH: it sources packaging/toolchain.sh for that.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
case "$mode" in
    run | test | bench) ;;
    *)
        echo "usage: packaging/deps.sh run|test|bench [--check]  (run it; do not source it)" >&2
        exit 2
        ;;
esac
check_only=
[ "${2:-}" = --check ] && check_only=1

# The modes whose packages this one needs: each includes the ones before it.
case "$mode" in
    run) modes="run" ;;
    test) modes="run test" ;;
    bench) modes="run test bench" ;;
esac
want=$(awk -v modes=" $modes " '!/^#/ && NF >= 2 && index(modes, " " $1 " ") && $2 != "-" && $2 !~ /!$/ { print $2 }' "$here/deps.list")
# "PACKAGE PATH" pairs of the programs taken out of a package without installing it.
extract=$(awk -v modes=" $modes " '!/^#/ && NF >= 3 && index(modes, " " $1 " ") && $2 ~ /!$/ { sub(/!$/, "", $2); for (i = 3; i <= NF; i++) print $2, $i }' "$here/deps.list")

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ -n "$check_only" ]; then
        echo "deps: missing Debian packages:$missing (packaging/deps.sh $mode installs them)" >&2
        exit 1
    fi
    [ "$(id -u)" = 0 ] || { echo "deps: missing Debian packages:$missing; run as root to install them" >&2; exit 1; }
    echo "deps ($mode): installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    for p in $missing; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            { echo "deps: $p is still not installed" >&2; exit 1; }
    done
fi

# Programs out of packages that are downloaded, never installed: usr/bin/NAME of PACKAGE's .deb.
echo "$extract" | while read -r pkg dest; do
    [ -n "$pkg" ] || continue
    [ -x "$dest" ] && continue
    if [ -n "$check_only" ]; then
        echo "deps: missing $dest (from the package $pkg; packaging/deps.sh $mode extracts it)" >&2
        exit 1
    fi
    [ "$(id -u)" = 0 ] || { echo "deps: missing $dest; run as root to extract it from $pkg" >&2; exit 1; }
    echo "deps ($mode): extracting $dest from $pkg (not installed)" >&2
    tmp=$(mktemp -d)
    chmod 0755 "$tmp"
    # apt's download user must be able to write there; a first run may need the lists.
    chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) ||
        { apt-get update -qq && (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null); }
    dpkg-deb -x "$tmp"/*.deb "$tmp/root"
    install -D -m 0755 "$tmp/root/usr/bin/$(basename "$dest")" "$dest"
    rm -rf "$tmp"
    [ -x "$dest" ] || { echo "deps: $dest is still missing" >&2; exit 1; }
done

# The Rust toolchain: the one the caller will find (packaging/toolchain.sh), at least the
# workspace's rust-version.
. "$here/toolchain.sh"
need=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$here/../Cargo.toml" | head -1)
if ! command -v rustc >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    echo "deps: no Rust toolchain (cargo and rustc >= $need) on PATH, in ~/.cargo/bin or in \$SUDO_USER's." >&2
    echo "      Install one with rustup (https://rustup.rs): curl https://sh.rustup.rs -sSf | sh" >&2
    exit 1
fi
have=$(rustc --version | awk '{print $2}')
# Compares the numeric parts of two versions: is $1 >= $2?
version_ge() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        n = split(a, x, /[.-]/); m = split(b, y, /[.-]/)
        for (i = 1; i <= 3; i++) {
            p = (i <= n) ? x[i] + 0 : 0; q = (i <= m) ? y[i] + 0 : 0
            if (p > q) exit 0
            if (p < q) exit 1
        }
        exit 0
    }'
}
if ! version_ge "$have" "$need"; then
    echo "deps: $(command -v rustc) is Rust $have; hoody needs Rust >= $need (edition 2024)." >&2
    echo "      Debian's own rustc is too old: install a current toolchain with rustup" >&2
    echo "      (https://rustup.rs: curl https://sh.rustup.rs -sSf | sh), then run this again." >&2
    exit 1
fi
