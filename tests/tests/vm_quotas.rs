//! Disk and inode quotas on overlay over ext4 with project quotas (`-O quota,project`, mounted
//! `prjquota`). These hosts' kernel is built without CONFIG_QUOTA, so ext4 refuses such a
//! mount here: the tests are ignored on the host and run in the VM lane (Debian's kernel), like
//! vm_limits.rs. Forced on the host they fail at the mount, never pass.

mod quota_common;

use hoody_e2e::{Driver, World};
use quota_common::*;

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn a_tenant_fills_its_quota_while_a_neighbour_writes_on_overlay() {
    a_tenant_fills_its_quota_while_a_neighbour_writes(Driver::Overlay);
}

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn write_snapshot_delete_cycles_are_bounded_on_overlay() {
    snapshot_cycles_stay_bounded(Driver::Overlay, false);
}

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn write_snapshot_restore_cycles_are_bounded_on_overlay() {
    snapshot_cycles_stay_bounded(Driver::Overlay, true);
}

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn restore_at_the_quota_works_and_keeps_the_bound_on_overlay() {
    restore_at_the_quota_works_and_keeps_the_bound(Driver::Overlay);
}

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn a_patched_limit_takes_effect_live_on_overlay() {
    a_patched_limit_takes_effect_live(Driver::Overlay);
}

#[test]
#[ignore = "VM lane: ext4 project quotas need CONFIG_QUOTA, which these hosts' kernel lacks"]
fn an_inode_flood_on_overlay_stops_at_the_limit_and_the_neighbour_carries_on() {
    let w = World::with_quotas(Driver::Overlay, "1G", &["--default-inodes", "3000"]);
    let flood = boxed(&w, "flood", &["--inodes", "2000"]);
    let r = w.exec(&flood, &["sh", "-c", "mkdir /many && cd /many && seq 1 6000 | xargs touch 2>&1 | tail -1; ls | wc -l"]);
    let made: u64 = r.stdout.lines().last().unwrap_or("").trim().parse().unwrap_or_else(|_| panic!("{r:?}"));
    assert!(made < 2000, "the flood made {made} files with a limit of 2,000 inodes: {r:?}");
    assert!(r.stdout.contains("quota"), "touch failed for the quota: {r:?}");
    let u = usage(&w, &flood);
    assert!(u["inodes"].as_u64().unwrap() <= 2000, "{u}");
    // The neighbour (default inode limit) creates, starts, writes and snapshots.
    let n = boxed(&w, "neighbour", &[]);
    w.sh(&n, "mkdir /work && cd /work && seq 1 500 | xargs touch && echo ok > /note");
    w.ok(&["snapshots", "create", "--container", &n, "--alias", "fine"]);
    assert_eq!(w.ok(&["containers", "get", &n])["limits"]["inodes"], 3000);
}
