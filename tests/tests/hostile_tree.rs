//! A hostile tree cannot steer the daemon (issue 13, first part): the container cannot create
//! btrfs subvolumes or snapshots inside its root — a nested subvolume would defeat restore and
//! delete and escape the disk quota with a qgroup of its own — not even with high bits set in
//! the ioctl request, while reflink copies (FICLONE, same ioctl magic) keep working.

use hoody_e2e::{Driver, World, run};

#[test]
fn btrfs_subvolume_ioctls_are_refused_inside_and_reflinks_still_work() {
    let w = World::new(Driver::Btrfs);
    let c = w.running("tenant")["id"].as_str().unwrap().to_owned();
    w.install_probe(&c);
    for (what, request) in [
        ("SUBVOL_CREATE", "5000940e"),
        ("SUBVOL_CREATE_V2", "50009418"),
        ("SUBVOL_CREATE with high bits set", "ffffffff5000940e"),
        ("SUBVOL_CREATE_V2 with high bits set", "1234567850009418"),
    ] {
        let (code, out) = w.probe(&c, &["ioctl", "/", request, "nested"]);
        assert_eq!((code, out.split_whitespace().take(2).collect::<Vec<_>>().join(" ")), (1, "errno 1".to_owned()), "{what}: {out}");
    }
    let root = w.storage_dir.join("containers").join(&c).join("rootfs");
    assert!(!root.join("nested").exists(), "a subvolume was made inside the container's root");
    let list = run("btrfs", &["subvolume", "list", &w.mnt.to_string_lossy()]);
    assert!(!list.contains("nested"), "btrfs lists a nested subvolume: {list}");
    // Reflinks still work (what `cp --reflink=always` does).
    w.sh(&c, "dd if=/dev/urandom of=/orig bs=64k count=16 2>/dev/null");
    let (code, out) = w.probe(&c, &["ficlone", "/orig", "/clone"]);
    assert_eq!((code, out.as_str()), (0, "ok"), "FICLONE inside the container");
    assert_eq!(w.sh(&c, "cmp /orig /clone && echo same").trim(), "same");
}

#[test]
fn a_2gib_sparse_file_is_snapshotted_and_restored_on_overlay_as_what_it_holds() {
    // The pool is 1 GiB: a copy that wrote the holes out could not even fit.
    let w = World::new(Driver::Overlay);
    let c = w.running("sparse")["id"].as_str().unwrap().to_owned();
    w.sh(&c, "dd if=/dev/zero of=/sparse bs=1 count=1 seek=2147483647 2>/dev/null && echo middle | dd of=/sparse bs=1 seek=1073741824 conv=notrunc 2>/dev/null");
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "holes"]);
    let dir = w.storage_dir.join("containers").join(&c);
    let allocated = |p: &std::path::Path| {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        (m.len(), std::os::unix::fs::MetadataExt::blocks(&m) * 512)
    };
    let (len, used) = allocated(&dir.join("snapshots/holes/upper/sparse"));
    assert_eq!(len, 2 << 30);
    assert!(used <= 4 << 20, "the snapshot's copy allocated {} MiB", used >> 20);
    w.sh(&c, "rm /sparse");
    w.ok(&["snapshots", "restore", "-c", &c, "--name", "holes"]);
    let (len, used) = allocated(&dir.join("upper/sparse"));
    assert_eq!(len, 2 << 30);
    assert!(used <= 4 << 20, "the restored file allocated {} MiB", used >> 20);
    assert_eq!(w.sh(&c, "dd if=/sparse bs=1 skip=1073741824 count=6 2>/dev/null"), "middle", "its data came back");
}
