//! Durability across a power cut (issue 15): right after an answer, the pool's device is
//! captured as the disk would be if the power went then — a copy of the loop file, which holds
//! every write the loop driver already performed, flushed or not — and the copy is mounted (a
//! btrfs copy with a changed fsid) and checked: the answered snapshot, restore and import are
//! whole there, on both drivers.
//!
//! A copy only shows a missing sync while the file system has not committed on its own, so the
//! world's file system is mounted with `commit=300` and every check here runs within seconds of
//! its operation, well inside that window (and inside the 30 s after which the kernel writes
//! dirty pages back by itself).

use std::path::{Path, PathBuf};

use hoody_e2e::tarball::{Kind, build};
use hoody_e2e::{Driver, World, run};
use serde_json::Value;

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// A mounted copy of the world's device as it is now; unmounted and removed when dropped.
struct Cut {
    img: PathBuf,
    mnt: PathBuf,
}

impl Cut {
    fn take(w: &World, n: usize) -> Cut {
        let (img, mnt) = (w.dir.join(format!("cut-{n}.img")), w.dir.join(format!("cut-{n}")));
        // The copy is not instant as a power cut is: the daemon (the only writer) is paused
        // for it, so no write of its is half on the device and half not while it is read.
        let pid = nix::unistd::Pid::from_raw(w.daemon_pid().expect("daemon") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let copied = std::process::Command::new("cp").args(["--sparse=always"]).arg(w.dir.join("fs.img")).arg(&img).status();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        assert!(copied.unwrap().success(), "copy of the device");
        // A btrfs copy shares the mounted original's fsid: the kernel (6.7 and later) mounts
        // such a single-device clone under a temporary fsid of its own ("temp-fsid").
        // `btrfstune -m` would change it on disk, but drops the log tree that an fsync (the
        // state database's) left, which the copy must replay as the real disk would.
        std::fs::create_dir_all(&mnt).unwrap();
        let cut = Cut { img, mnt };
        run("mount", &["-o", "loop", &cut.img.to_string_lossy(), &cut.mnt.to_string_lossy()]);
        cut
    }

    fn read(&self, rel: &str) -> String {
        let p = self.mnt.join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("after the power cut, {} is not whole: {e}", p.display()))
    }

    fn size(&self, rel: &str) -> u64 {
        std::fs::metadata(self.mnt.join(rel)).map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount").arg(&self.mnt).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Lazily, so the loop device still goes once nothing holds the mount.
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        let _ = std::fs::remove_dir(&self.mnt);
        let _ = std::fs::remove_file(&self.img);
    }
}

/// Where a container's files sit in the pool: (live root, snapshot `s`).
fn layout(driver: Driver, cid: &str, s: &str) -> (String, String) {
    let dir = format!("storage/containers/{cid}");
    match driver {
        Driver::Btrfs => (format!("{dir}/rootfs"), format!("{dir}/snapshots/{s}")),
        Driver::Overlay => (format!("{dir}/upper"), format!("{dir}/snapshots/{s}/upper")),
    }
}

fn answered_operations_survive_a_power_cut(driver: Driver) {
    let w = World::with_mount_options(driver, "commit=300");
    let cid = id(&w.running("app"));
    let (live, snap) = layout(driver, &cid, "s1");
    const MIB: u64 = 1 << 20;

    // A snapshot answered 201 is whole on the device: its files with their data.
    w.sh(&cid, "echo before > /data; yes payload | head -c 1048576 > /blob");
    w.ok(&["snapshots", "create", "-c", &cid, "--alias", "s1"]);
    {
        let cut = Cut::take(&w, 0);
        assert_eq!(cut.read(&format!("{snap}/data")), "before\n", "the answered snapshot");
        assert_eq!(cut.size(&format!("{snap}/blob")), MIB, "the answered snapshot's large file");
    }

    // A restore answered 200 is what the device holds as the live root.
    w.sh(&cid, "echo after > /data; rm /blob");
    w.ok(&["snapshots", "restore", "-c", &cid, "--name", "s1"]);
    {
        let cut = Cut::take(&w, 1);
        assert_eq!(cut.read(&format!("{live}/data")), "before\n", "the answered restore");
        assert_eq!(cut.size(&format!("{live}/blob")), MIB, "the answered restore's large file");
    }

    // An image answered 201 is whole.
    let tar = w.dir.join("img.tar");
    let big = vec![b'x'; MIB as usize];
    std::fs::write(&tar, build(&[("etc", Kind::Dir), ("etc/hello", Kind::File(b"hello\n")), ("big", Kind::File(&big))])).unwrap();
    w.ok(&["images", "import", "cut", &tar.to_string_lossy()]);
    {
        let cut = Cut::take(&w, 2);
        assert_eq!(cut.read("storage/images/cut/etc/hello"), "hello\n", "the answered import");
        assert_eq!(cut.size("storage/images/cut/big"), MIB, "the answered import's large file");
    }
    assert!(Path::new(&w.dir).exists());
}

#[test]
fn answered_snapshot_restore_and_import_survive_a_power_cut_on_btrfs() {
    answered_operations_survive_a_power_cut(Driver::Btrfs);
}

#[test]
fn answered_snapshot_restore_and_import_survive_a_power_cut_on_overlay() {
    answered_operations_survive_a_power_cut(Driver::Overlay);
}
