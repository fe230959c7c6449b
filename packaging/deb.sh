#!/bin/sh
# Builds the Debian package target/debian/hoody_<version>-1_amd64.deb: release binaries, the
# hoodyctl man pages (one per subcommand) and shell completions (generated from its clap definition), the systemd
# units, sysusers/tmpfiles snippets, the default configuration and the maintainer scripts.
# Installs cargo-deb (crates.io) when missing; the Debian packages come from `packaging/deps.sh test`.
#   sudo packaging/deb.sh            then: sudo dpkg -i target/debian/hoody_*.deb
set -eu
cd "$(dirname "$0")/.."
sh packaging/deps.sh test
. packaging/toolchain.sh
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
cargo build --release -p hoodyd -p hoodyctl --bins
# The release binary carries no test hooks (hoodyd/src/test_hooks.rs): refused if it names one.
if grep -q HOODY_FAULTS target/release/hoodyd; then
    echo "deb: target/release/hoodyd carries the test hooks (built with the test-hooks feature); not packaged" >&2
    exit 1
fi
a=target/release/deb-assets
mkdir -p "$a"
# A man page for hoodyctl and one for each of its subcommands (the top page names them).
rm -rf "$a/man" && target/release/hoodyctl man --dir "$a/man" && gzip -9n "$a"/man/*.1
# Dynamic completions: the shell calls hoodyctl back, which completes container, image and
# snapshot names from the daemon.
COMPLETE=bash target/release/hoodyctl > "$a/hoodyctl.bash"
COMPLETE=zsh target/release/hoodyctl > "$a/_hoodyctl"
COMPLETE=fish target/release/hoodyctl > "$a/hoodyctl.fish"
cargo deb -p hoodyd --no-build --strip "$@"
ls -1 target/debian/*.deb
