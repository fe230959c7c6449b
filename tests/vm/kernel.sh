# Sourced by the VM lane's runners: the kernel the Debian package linux-image-amd64 points at
# (extracted once into $cache) and an initramfs with busybox, tests/vm/init and the modules the
# tests need (rebuilt when any of those change). Sets $cache, $kver, $kdir and $initrd.
# Needs $here (tests/vm).
cache=${HOODY_VM_CACHE:-/var/cache/hoody-vm}
mkdir -p "$cache"

# The kernel: the image package linux-image-amd64 currently points at, extracted once.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
kver=${pkg#linux-image-}
kdir=$cache/$kver
if [ ! -f "$kdir/ready" ]; then
    # Built in a temporary directory, checked, and only then moved into place: a failed or cut
    # download never leaves something that a later run would take for the kernel.
    echo "vm: fetching $pkg" >&2
    rm -rf "$kdir" "$kdir.$$.tmp" && mkdir -p "$kdir.$$.tmp"
    (cd "$kdir.$$.tmp" && apt-get download "$pkg" >/dev/null 2>&1) || { apt-get update -qq; (cd "$kdir.$$.tmp" && apt-get download "$pkg" >/dev/null); }
    dpkg-deb -x "$kdir.$$.tmp"/*.deb "$kdir.$$.tmp/root"
    rm -f "$kdir.$$.tmp"/*.deb
    [ -s "$kdir.$$.tmp/root/boot/vmlinuz-$kver" ] || { echo "vm: $pkg has no /boot/vmlinuz-$kver" >&2; exit 1; }
    busybox depmod -b "$kdir.$$.tmp/root" "$kver"
    [ -s "$kdir.$$.tmp/root/lib/modules/$kver/modules.dep" ] || { echo "vm: depmod wrote no modules.dep" >&2; exit 1; }
    touch "$kdir.$$.tmp/ready"
    mv "$kdir.$$.tmp" "$kdir"
fi

# The initramfs: busybox, /init, and the modules the tests need with everything they depend on
# (all of netfilter, so nftables can load what it asks for on demand). Rebuilt when init or this
# list changes.
modules="virtio_pci 9pnet_virtio 9p overlay loop btrfs ext4 veth bridge nf_tables nft_ct nft_nat
nft_chain_nat nft_masq nft_reject_inet nft_fib_inet nft_limit nft_log nfnetlink_log nf_conntrack
nf_nat crc32c_generic virtio_blk quota_v2 quota_tree sch_ingress cls_bpf"
key=$( (cat "$here/init" "$here/pid1.sh"; echo "$modules"; busybox | head -1) | sha256sum | cut -c1-16)
initrd=$cache/initrd-$kver-$key.cpio.gz
if [ ! -f "$initrd" ]; then
    echo "vm: building the initramfs" >&2
    mdir=$kdir/root/lib/modules/$kver
    t=$(mktemp -d)
    mkdir -p "$t/bin" "$t/proc" "$t/sys" "$t/dev" "$t/lib/modules/$kver"
    cp /bin/busybox "$t/bin/busybox"
    cp "$here/init" "$t/init"
    cp "$here/pid1.sh" "$t/pid1.sh"
    chmod 755 "$t/init"
    # The dependency closure of the wanted modules, plus every netfilter module.
    want=$(for m in $modules; do
        find "$mdir/kernel" -name "$m.ko" | sed "s|^$mdir/||"
    done; (cd "$mdir" && find kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter -name '*.ko'))
    all=$(echo "$want" | awk -v dep="$mdir/modules.dep" '
        BEGIN { while ((getline l < dep) > 0) { split(l, p, ":"); deps[p[1]] = p[2] } }
        { queue[++n] = $1 }
        END {
            for (i = 1; i <= n; i++) {
                m = queue[i]; if (m == "" || seen[m]++) continue; print m
                k = split(deps[m], d, " "); for (j = 1; j <= k; j++) queue[++n] = d[j]
            }
        }')
    for f in $all; do
        mkdir -p "$t/lib/modules/$kver/$(dirname "$f")"
        cp "$mdir/$f" "$t/lib/modules/$kver/$f"
    done
    cp "$mdir/modules.builtin" "$mdir/modules.order" "$t/lib/modules/$kver/" 2>/dev/null || true
    busybox depmod -b "$t" "$kver"
    echo "$modules" | tr -s ' \n' '\n\n' | sed '/^$/d' > "$t/modules.load"
    # Each step's status is checked on its own (a pipeline's status is only its last command's
    # under dash), and the result is read back before it is moved into place: a broken
    # initramfs is never cached.
    (cd "$t" && find . > "$t.list")
    (cd "$t" && cpio -o -H newc --quiet < "$t.list") > "$initrd.$$.cpio" || { echo "vm: cpio failed" >&2; exit 1; }
    gzip -1 -c "$initrd.$$.cpio" > "$initrd.$$.tmp" || { echo "vm: gzip failed" >&2; exit 1; }
    gzip -dc "$initrd.$$.tmp" | cpio -t --quiet > "$t.check" 2>/dev/null || true
    for f in init pid1.sh bin/busybox modules.load "lib/modules/$kver/modules.dep"; do
        grep -qx "$f" "$t.check" || { echo "vm: the initramfs lacks $f" >&2; rm -f "$initrd.$$.tmp"; exit 1; }
    done
    mv "$initrd.$$.tmp" "$initrd"
    rm -rf "$t" "$t.list" "$t.check" "$initrd.$$.cpio"
fi

