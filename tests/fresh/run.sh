#!/bin/sh
# The fresh-machine test: the README's set-up, run in a fresh minimal Debian 12 root.
#
# A debootstrap --variant=minbase root of bookworm (cached in $HOODY_VM_CACHE, like the VM
# lane's kernel) is entered afresh each run through an overlay, with a policy-rc.d that starts
# no service, the downloaded .debs cached between runs, the host's Rust toolchain lent to a user
# `dev` of that root, and each entry point run exactly as the README and the suite run it —
# `sudo packaging/run.sh` (run), `sudo tests/run.sh`, `tests/vm/run.sh`, `tests/vm/boot.sh`
# (test), `sudo tests/bench/run.sh` (bench) — as root with the environment sudo gives
# (SUDO_USER=dev, secure_path) and HOODY_SETUP_ONLY=1, which stops each after its set-up. After
# each, tests/fresh/check.sh asserts that everything packaging/deps.list names for that mode is
# there (the same list deps.sh installs from, so the two cannot drift), and a C program is built
# against libnftnl and libmnl, as the build does.
#
# It runs in namespaces of its own (mount, PID, UTS, IPC): every mount and every process it made
# is gone when it ends; the root's package scripts run without CAP_NET_ADMIN, CAP_NET_RAW,
# CAP_SYS_MODULE, CAP_SYS_TIME and CAP_SYS_BOOT and see /proc/sys read-only, so they cannot
# change this machine's network, sysctls, modules or clock. It shares the host's network only to
# reach Debian's package registry.
#   sudo tests/fresh/run.sh        last line: "fresh machine: N passed, N failed"
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }

if [ "${1:-}" != __inside ]; then
    # The host's side: debootstrap itself (test mode), the toolchain to lend, the cached base.
    sh "$repo/packaging/deps.sh" test
    . "$repo/packaging/toolchain.sh"
    cache=${HOODY_VM_CACHE:-/var/cache/hoody-vm}
    base=$cache/debian-bookworm-minbase
    mkdir -p "$cache/fresh-debs/partial" "$cache/fresh-lists/partial"
    if [ ! -f "$base/.ready" ]; then
        echo "fresh: debootstrap --variant=minbase bookworm (cached in $base)" >&2
        rm -rf "$base.tmp"
        debootstrap --variant=minbase bookworm "$base.tmp" http://deb.debian.org/debian >&2
        [ -x "$base.tmp/usr/bin/apt-get" ] || { echo "fresh: debootstrap made no usable root" >&2; exit 1; }
        touch "$base.tmp/.ready"
        rm -rf "$base"
        mv "$base.tmp" "$base"
    fi
    cargo_bin=$(dirname "$(command -v cargo)")
    case "$cargo_bin" in
        */.cargo/bin) ;;
        *) echo "fresh: the host's cargo ($cargo_bin) is not a rustup toolchain in ~/.cargo; cannot lend it" >&2; exit 1 ;;
    esac
    cargo_home=$(dirname "$cargo_bin")
    rustup_home=${RUSTUP_HOME:-$(dirname "$cargo_home")/.rustup}
    [ -d "$rustup_home" ] || { echo "fresh: no rustup home at $rustup_home" >&2; exit 1; }
    work=$(mktemp -d /tmp/hoody-fresh.XXXXXX)
    trap 'rm -rf "$work"' EXIT INT TERM
    rc=0
    unshare --mount --pid --fork --uts --ipc --propagation private \
        env HOODY_FRESH_BASE="$base" HOODY_FRESH_CACHE="$cache" HOODY_FRESH_WORK="$work" \
        HOODY_FRESH_CARGO="$cargo_home" HOODY_FRESH_RUSTUP="$rustup_home" \
        sh "$here/run.sh" __inside > "$work/out" 2>&1 || rc=$?
    cat "$work/out"
    passed=$(grep -c '^ok ' "$work/out" || true)
    failed=$(grep -c '^MISSING \|^FAIL ' "$work/out" || true)
    if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
        failed=1
        echo "FAIL the fresh-machine run itself ended with exit $rc"
    fi
    echo "fresh machine: $passed passed, $failed failed"
    [ "$failed" = 0 ] && [ "$rc" = 0 ]
    exit
fi

# Inside the private namespaces: build the root, run each entry point, check after each.
root=$HOODY_FRESH_WORK/root
mkdir -p "$root" "$HOODY_FRESH_WORK/upper" "$HOODY_FRESH_WORK/ovl"
mount -t overlay overlay -o "lowerdir=$HOODY_FRESH_BASE,upperdir=$HOODY_FRESH_WORK/upper,workdir=$HOODY_FRESH_WORK/ovl" "$root"
mount -t proc proc "$root/proc"
mount --bind -o ro "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
for d in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
    n=${d%%:*} mm=${d#*:}
    mknod -m 666 "$root/dev/$n" c "${mm%%:*}" "${mm#*:}"
done
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs tmpfs "$root/tmp"
mount --bind "$HOODY_FRESH_CACHE/fresh-debs" "$root/var/cache/apt/archives"
mount --bind "$HOODY_FRESH_CACHE/fresh-lists" "$root/var/lib/apt/lists"
mkdir -p "$root/hoody"
mount --bind -o ro "$repo" "$root/hoody"
mount -o remount,bind,ro "$root/hoody"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's way to Debian's packages (its sources and apt settings), as a fresh machine of
# its kind has them; not its docker-clean hook, so the .debs stay cached.
rm -rf "$root/etc/apt/sources.list.d" && mkdir -p "$root/etc/apt/sources.list.d"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$root$f"
done
for f in /etc/apt/apt.conf.d/*; do
    case "$(basename "$f")" in docker-clean) ;; *) [ -f "$f" ] && cp "$f" "$root/etc/apt/apt.conf.d/" ;; esac
done
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
# The user who ran sudo, with a rustup toolchain of their own.
chroot "$root" useradd -m -s /bin/sh dev
mkdir -p "$root/home/dev/.cargo" "$root/home/dev/.rustup"
mount --bind -o ro "$HOODY_FRESH_CARGO" "$root/home/dev/.cargo"
mount --bind -o ro "$HOODY_FRESH_RUSTUP" "$root/home/dev/.rustup"

# As `sudo CMD` by dev would run it: root, sudo's environment, /bin/sh (dash) for the scripts.
as_sudo() {
    chroot "$root" setpriv --bounding-set=-net_admin,-net_raw,-sys_module,-sys_time,-sys_boot \
        env -i SUDO_USER=dev SUDO_UID=1000 HOME=/root LOGNAME=root USER=root TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOODY_SETUP_ONLY=1 \
        /bin/sh -c "cd /hoody && $*" </dev/null
}
step() {
    what=$1
    shift
    echo "== fresh root: $what"
    if as_sudo "$what" > "$HOODY_FRESH_WORK/step.log" 2>&1; then
        echo "ok step $what"
    else
        echo "FAIL step $what (exit $?):"
        sed 's/^/    /' "$HOODY_FRESH_WORK/step.log" | tail -30
    fi
    chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/sh /hoody/tests/fresh/check.sh /hoody/packaging/deps.list "$@" || true
}

[ "$(chroot "$root" readlink -f /bin/sh)" = /usr/bin/dash ] || echo "FAIL /bin/sh of the fresh root is not dash"
step "packaging/run.sh" base run
# The build's C side: a program against libnftnl and libmnl, as nftnl-sys links them.
cat > "$root/tmp/nft.c" <<'C'
#include <libnftnl/table.h>
#include <libmnl/libmnl.h>
int main(void) { struct nftnl_table *t = nftnl_table_alloc(); nftnl_table_free(t); return mnl_socket_open(0) == NULL; }
C
if chroot "$root" sh -c 'cc -o /tmp/nft /tmp/nft.c $(pkg-config --cflags --libs libnftnl libmnl)' > "$HOODY_FRESH_WORK/cc.log" 2>&1; then
    echo "ok build a C program against libnftnl and libmnl"
else
    echo "FAIL build a C program against libnftnl and libmnl:"
    sed 's/^/    /' "$HOODY_FRESH_WORK/cc.log"
fi
step "tests/run.sh" test
step "tests/vm/run.sh -- true" test
step "tests/vm/boot.sh" test
step "tests/bench/run.sh" bench
