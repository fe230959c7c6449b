//! Disk quotas on btrfs, proven on a real file system (a loop file; hoodyd turns its qgroups
//! on): a tenant filling its quota gets EDQUOT while its neighbour writes; write–snapshot–delete
//! and write–snapshot–restore cycles cannot grow the pool past limits.disk +
//! limits.snapshots_disk; restore works at the quota and keeps the bound; a PATCH changes the
//! bound live; a pool that cannot enforce a limit refuses it with 422. The same scenarios on
//! overlay with ext4 project quotas run in the VM lane (vm_quotas.rs).

mod quota_common;

use hoody_api::containers::{CreateContainer, LimitsRequest};
use hoody_api::envelope::ErrorCode;
use hoody_e2e::{Driver, World, eventually, run};
use quota_common::*;

/// `{"name": "box", "image": "busybox", "limits": {"inodes": 100}}`.
fn inode_limited() -> CreateContainer {
    let limits = LimitsRequest { inodes: Some(100), ..Default::default() };
    CreateContainer { name: "box".into(), image: "busybox".into(), limits: Some(limits), ..Default::default() }
}

#[test]
fn a_tenant_fills_its_quota_while_a_neighbour_writes_on_btrfs() {
    a_tenant_fills_its_quota_while_a_neighbour_writes(Driver::Btrfs);
}

#[test]
fn write_snapshot_delete_cycles_are_bounded_on_btrfs() {
    snapshot_cycles_stay_bounded(Driver::Btrfs, false);
}

#[test]
fn write_snapshot_restore_cycles_are_bounded_on_btrfs() {
    snapshot_cycles_stay_bounded(Driver::Btrfs, true);
}

#[test]
fn restore_at_the_quota_works_and_keeps_the_bound_on_btrfs() {
    restore_at_the_quota_works_and_keeps_the_bound(Driver::Btrfs);
}

#[test]
fn a_patched_limit_takes_effect_live_on_btrfs() {
    a_patched_limit_takes_effect_live(Driver::Btrfs);
}

#[test]
fn a_pool_that_cannot_enforce_a_limit_refuses_it() {
    // Overlay on ext4 without project quotas.
    let w = World::new(Driver::Overlay);
    let r = w.ctl(&["containers", "create", "--name", "box", "--image", "busybox", "--disk", "1GiB"]);
    assert_ne!(r.code, 0, "a disk limit on a pool without project quotas was accepted: {r:?}");
    assert!(r.stderr.contains("limits.disk") && r.stderr.contains("project quotas"), "the refusal says why: {r:?}");
    let e = w.api(async |c| c.create_container(&inode_limited(), false).await).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Invalid), "{e:?}");
    w.ok(&["containers", "create", "--name", "plain", "--image", "busybox"]);
    let r = w.ctl(&["containers", "set", "plain", "--disk", "1GiB"]);
    assert_ne!(r.code, 0, "{r:?}");
    // A default it cannot enforce stops the daemon from starting, with the reason (run in the
    // world's own network namespace, like every daemon of the tests).
    let mut w = w;
    w.stop_daemon();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &w.host_ns])
        .arg(World::hoodyd_path())
        .args(["--socket", &w.dir.join("other.sock").to_string_lossy()])
        .args(["--state-dir", &w.state_dir.to_string_lossy(), "--storage-dir", &w.storage_dir.to_string_lossy()])
        .args(["--storage-driver", "overlay", "--cgroup-root", &w.cgroup.to_string_lossy(), "--socket-group", "root"])
        .args(["--default-disk", "10GiB"])
        .output()
        .expect("hoodyd");
    assert!(!out.status.success(), "hoodyd started with a --default-disk it cannot enforce");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot enforce"), "{}", String::from_utf8_lossy(&out.stderr));
    // On btrfs, inodes are bytes of metadata: an inode limit is refused, naming the field.
    let b = World::with_quotas(Driver::Btrfs, "1G", &[]);
    let e = b.api(async |c| c.create_container(&inode_limited(), false).await).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Invalid), "{e:?}");
    assert!(e.to_string().contains("limits.inodes"), "{e:?}");
    eventually("the btrfs world answers", || b.ctl(&["health"]).code == 0);
}

#[test]
fn disk_limits_are_put_back_from_the_record_when_the_daemon_starts() {
    // What the kernel holds can differ from what was answered (a crash between a PATCH's
    // kernel change and its commit, or a hand-edited qgroup): the start-up reconcile puts the
    // record's limits back.
    let mut w = World::with_quotas(Driver::Btrfs, "1G", &[]);
    let c = boxed(&w, "bounded", &["--disk", "40MiB"]);
    let root = w.storage_dir.join("containers").join(&c).join("rootfs");
    hoody_e2e::run("btrfs", &["qgroup", "limit", "-e", "none", &root.to_string_lossy()]);
    w.kill_daemon();
    w.start_daemon();
    let (code, out) = write(&w, &c, "/fill", 100);
    assert_ne!(code, 0, "the limit was not put back at start: {out}");
    assert!(size_of(&w, &c, "/fill") <= 48 * MIB);
}

#[test]
fn a_deleted_containers_qgroups_do_not_stay_behind() {
    let w = World::with_quotas(Driver::Btrfs, "1G", &[]);
    let c = boxed(&w, "short-lived", &["--disk", "40MiB"]);
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "one"]);
    let dir = w.storage_dir.join("containers").join(&c);
    let ids: Vec<String> = ["rootfs", "snapshots/one"]
        .iter()
        .map(|p| {
            let out = run("btrfs", &["inspect-internal", "rootid", &dir.join(p).to_string_lossy()]);
            format!("0/{}", out.trim())
        })
        .collect();
    let listed = || run("btrfs", &["qgroup", "show", "--raw", &w.mnt.to_string_lossy()]);
    for q in &ids {
        assert!(listed().lines().any(|l| l.split_whitespace().next() == Some(q)), "{q} exists while the container does");
    }
    w.ok(&["containers", "delete", "--force", &c]);
    run("btrfs", &["subvolume", "sync", &w.mnt.to_string_lossy()]);
    eventually("the qgroups of its subvolumes are gone", || {
        let l = listed();
        ids.iter().all(|q| !l.lines().any(|line| line.split_whitespace().next() == Some(q)))
    });
}
