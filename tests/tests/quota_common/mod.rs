//! What the quota tests of both lanes share: the host's (btrfs, quotas.rs) and the VM lane's
//! (overlay over ext4 project quotas, vm_quotas.rs: these hosts' kernel has no CONFIG_QUOTA,
//! Debian's has).

#![allow(dead_code)]

use hoody_e2e::{Driver, World, run};
use serde_json::Value;

pub const MIB: u64 = 1 << 20;

pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Bytes used on the world's storage file system (after a sync).
pub fn pool_used(w: &World) -> u64 {
    run("sync", &[]);
    let st = nix::sys::statvfs::statvfs(&w.mnt).expect("statvfs");
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

pub fn boxed(w: &World, name: &str, limits: &[&str]) -> String {
    let mut args = vec!["containers", "create", "--name", name, "--image", "busybox", "--start"];
    args.extend_from_slice(limits);
    id(&w.ok(&args))
}

/// Writes `mib` MiB of zeros to `path` inside `c` and syncs; (exit code, output).
pub fn write(w: &World, c: &str, path: &str, mib: u64) -> (i32, String) {
    let r = w.exec(c, &["sh", "-c", &format!("dd if=/dev/zero of={path} bs=1M count={mib} 2>&1; rc=$?; sync; exit $rc")]);
    (r.code, format!("{}{}", r.stdout, r.stderr))
}

pub fn size_of(w: &World, c: &str, path: &str) -> u64 {
    w.sh(c, &format!("wc -c < {path}")).trim().parse().expect("a size")
}

pub fn usage(w: &World, c: &str) -> Value {
    w.ok(&["containers", "get", c])["usage"].clone()
}

pub fn a_tenant_fills_its_quota_while_a_neighbour_writes(driver: Driver) {
    let w = World::with_quotas(driver, "1G", &[]);
    let hog = boxed(&w, "hog", &["--disk", "100MiB"]);
    let neighbour = boxed(&w, "neighbour", &["--disk", "200MiB"]);
    let base = pool_used(&w);
    let (code, out) = write(&w, &hog, "/fill", 300);
    assert_ne!(code, 0, "the tenant wrote 300 MiB past its 100 MiB quota: {out}");
    assert!(out.contains("quota") || out.contains("space"), "the write failed for its quota: {out}");
    let filled = size_of(&w, &hog, "/fill");
    assert!(filled <= 108 * MIB, "the tenant got {} MiB with a 100 MiB quota", filled / MIB);
    // The neighbour is not affected.
    let (code, out) = write(&w, &neighbour, "/data", 50);
    assert_eq!(code, 0, "the neighbour could not write 50 MiB: {out}");
    assert_eq!(size_of(&w, &neighbour, "/data"), 50 * MIB);
    let grown = pool_used(&w).saturating_sub(base);
    assert!(grown <= (100 + 50 + 24) * MIB, "the pool grew by {} MiB", grown / MIB);
    // Usage as the kernel counts it, with the limit.
    let got = w.ok(&["containers", "get", "hog"]);
    let used = got["usage"]["disk_bytes"].as_u64().unwrap_or_else(|| panic!("usage.disk_bytes: {got}"));
    assert!((90 * MIB..=110 * MIB).contains(&used), "usage.disk_bytes {used} after filling 100 MiB: {got}");
    assert_eq!(got["limits"]["disk"], "100MiB", "{got}");
    assert_eq!(got["limits"]["snapshots_disk"], "100MiB", "snapshot space defaults to the disk limit: {got}");
    // The tenant can free its space and write again.
    w.sh(&hog, "rm /fill && sync");
    assert_eq!(write(&w, &hog, "/again", 60).0, 0);
}

/// Takes a snapshot with the raw API: (status, error code).
pub fn snapshot(w: &World, c: &str, alias: &str) -> (u16, String) {
    let r = w.http().post(&format!("/containers/{c}/snapshots"), &format!("{{\"alias\":\"{alias}\"}}"));
    let code = if r.status >= 400 { r.json()["error"]["code"].as_str().unwrap_or_default().to_owned() } else { String::new() };
    (r.status, code)
}

/// write → snapshot → (delete the file | restore), four times, with 60 MiB of disk and 60 MiB
/// of snapshot space: each round makes 40 MiB that only a snapshot could keep.
pub fn snapshot_cycles_stay_bounded(driver: Driver, restore: bool) {
    let w = World::with_quotas(driver, "1G", &[]);
    let c = boxed(&w, "cycler", &["--disk", "60MiB", "--snapshots-disk", "60MiB"]);
    let base = pool_used(&w);
    let (mut taken, mut refused) = (vec![], 0);
    for i in 0..4 {
        let (code, out) = write(&w, &c, &format!("/f{i}"), 40);
        assert_eq!(code, 0, "round {i}: the root itself is within its quota: {out}");
        let (status, code) = snapshot(&w, &c, &format!("s{i}"));
        match status {
            201 => taken.push(format!("s{i}")),
            507 => {
                assert_eq!(code, "quota_exceeded");
                refused += 1;
            }
            other => panic!("round {i}: snapshot answered {other} {code}"),
        }
        if restore {
            let last = taken.last().expect("the first snapshot fits").clone();
            w.ok(&["snapshots", "restore", "-c", &c, "--name", &last]);
        }
        // Everything it wrote goes (after a restore, the restored files too): only a snapshot
        // can keep those bytes now.
        w.sh(&c, "rm -f /f*; sync");
    }
    assert!(refused >= 1, "every snapshot was taken ({taken:?}): the snapshot space bounds nothing");
    let grown = pool_used(&w).saturating_sub(base);
    assert!(grown <= (60 + 60 + 24) * MIB, "the pool grew by {} MiB with 60 MiB + 60 MiB of quota (snapshots {taken:?})", grown / MIB);
    let u = usage(&w, &c);
    assert!(u["snapshots_bytes"].as_u64().unwrap() <= 60 * MIB, "usage.snapshots_bytes over the bound: {u}");
    // Deleting a snapshot frees room for a new one.
    for s in &taken {
        w.ok(&["snapshots", "delete", "-c", &c, s]);
    }
    assert_eq!(snapshot(&w, &c, "after").0, 201);
}

pub fn restore_at_the_quota_works_and_keeps_the_bound(driver: Driver) {
    let w = World::with_quotas(driver, "1G", &[]);
    let c = boxed(&w, "full", &["--disk", "50MiB", "--snapshots-disk", "10MiB"]);
    w.ok(&["snapshots", "create", "--container", &c, "--alias", "clean"]);
    let (code, _) = write(&w, &c, "/fill", 200);
    assert_ne!(code, 0, "the write past the quota must fail");
    // Restore is never refused for quota, and the container runs again on the clean root.
    let r = w.ok(&["snapshots", "restore", "-c", &c, "--name", "clean"]);
    assert_eq!(r["container"]["status"], "running", "{r}");
    assert_ne!(w.exec(&c, &["ls", "/fill"]).code, 0, "the filled file is gone");
    // The restored root keeps the container's limit.
    let (code, out) = write(&w, &c, "/again", 200);
    assert_ne!(code, 0, "after the restore the root is unbounded: {out}");
    assert!(size_of(&w, &c, "/again") <= 58 * MIB);
}

pub fn a_patched_limit_takes_effect_live(driver: Driver) {
    let w = World::with_quotas(driver, "1G", &[]);
    let c = boxed(&w, "grower", &[]);
    assert_eq!(write(&w, &c, "/a", 30).0, 0);
    w.ok(&["containers", "set", &c, "--disk", "40MiB"]);
    let (code, out) = write(&w, &c, "/b", 30);
    assert_ne!(code, 0, "30 MiB more fit under a 40 MiB limit set live: {out}");
    w.sh(&c, "rm -f /b; sync");
    let got = w.ok(&["containers", "set", &c, "--disk", "200MiB"]);
    assert_eq!(got["limits"]["disk"], "200MiB", "{got}");
    let (code, out) = write(&w, &c, "/c", 100);
    assert_eq!(code, 0, "the raised limit holds at once: {out}");
    let got = w.ok(&["containers", "get", &c]);
    assert_eq!(got["status"], "running", "the container was not restarted for it: {got}");
}
