//! How a container looks in API answers (`hoody_api::containers::Container`).

use hoody_api::containers::{Container as View, IdMap, Limits as LimitsView, SnapshotPolicy, Usage};

use crate::limits::format_size;
use crate::model::Container;

/// `usage` from the cgroup's numbers (while the container runs), the storage's (where the pool
/// counts them) and the console log's size.
pub fn usage(cgroup: Option<crate::cgroup::Usage>, disk: Option<crate::runtime::disk::DiskUsageView>, log_bytes: u64) -> Usage {
    let cg = cgroup.unwrap_or_default();
    Usage {
        memory_bytes: cg.memory_bytes,
        memory_peak_bytes: cg.memory_peak_bytes,
        cpu_usage_usec: cg.cpu_usage_usec,
        cpu_throttled_usec: cg.cpu_throttled_usec,
        pids: cg.pids,
        oom_kills: cg.oom_kills,
        disk_bytes: disk.map(|d| d.disk_bytes),
        snapshots_bytes: disk.map(|d| d.snapshots_bytes),
        inodes: disk.and_then(|d| d.inodes),
        log_bytes,
    }
}

pub fn container(c: &Container, usage: Option<Usage>) -> View {
    let disk = c.limits.disk_limits();
    View {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        realm_ids: c.realm_ids.clone(),
        project_id: c.project_id.clone(),
        status: c.status,
        pid: c.pid,
        exit_code: c.exit_code,
        ipv4: c.ipv4.map(|a| a.to_string()),
        limits: LimitsView {
            memory: c.limits.memory.map(format_size),
            memory_bytes: c.limits.memory,
            cpus: c.limits.cpus,
            pids: c.limits.pids,
            swap: c.limits.swap.map(format_size),
            disk: disk.disk.map(format_size),
            disk_bytes: disk.disk,
            snapshots_disk: disk.snapshots_disk.map(format_size),
            snapshots_disk_bytes: disk.snapshots_disk,
            inodes: disk.inodes,
        },
        usage,
        egress: c.egress,
        autostart: c.autostart,
        command: c.command.clone(),
        idmap: IdMap { host_uid_base: c.idmap.host_base, host_gid_base: c.idmap.host_base, size: c.idmap.size },
        created_at: c.created_at.clone(),
        started_at: c.started_at.clone(),
        finished_at: c.finished_at.clone(),
        snapshots: SnapshotPolicy { schedule: c.snapshot_schedule.clone(), expiry: c.snapshot_expiry.clone() },
        error: c.error.clone(),
    }
}
