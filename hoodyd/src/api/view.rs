//! How a container looks in API answers.

use serde::Serialize;

use crate::cgroup::Usage;
use crate::limits::format_size;
use crate::model::Container;

#[derive(Serialize)]
pub struct LimitsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Snapshot space: set, or the same as `disk`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots_disk: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots_disk_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
}

/// `usage`: the cgroup's numbers while the container runs, the storage's always (where the
/// pool has quotas).
#[derive(Serialize, Default)]
pub struct UsageView {
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<Usage>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::runtime::disk::DiskUsageView>,
    /// Bytes of the console log on the state file system (the current part and the rotated
    /// one).
    pub log_bytes: u64,
}

#[derive(Serialize)]
pub struct IdMapView {
    pub host_uid_base: u32,
    pub host_gid_base: u32,
    pub size: u32,
}

#[derive(Serialize)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub realm_ids: Vec<String>,
    pub project_id: Option<String>,
    pub status: &'static str,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub ipv4: Option<String>,
    pub limits: LimitsView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
    pub egress: &'static str,
    pub autostart: bool,
    pub command: Vec<String>,
    pub idmap: IdMapView,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub snapshots: SnapshotPolicyView,
    /// Why the last attempt to delete it failed (status `deleting`; the daemon retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize)]
pub struct SnapshotPolicyView {
    pub schedule: Option<String>,
    pub expiry: Option<String>,
}

pub fn container(c: &Container, usage: Option<UsageView>) -> ContainerView {
    let disk = c.limits.disk_limits();
    ContainerView {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        realm_ids: c.realm_ids.clone(),
        project_id: c.project_id.clone(),
        status: c.status.as_str(),
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
        egress: c.egress.as_str(),
        autostart: c.autostart,
        command: c.command.clone(),
        idmap: IdMapView { host_uid_base: c.idmap.host_base, host_gid_base: c.idmap.host_base, size: c.idmap.size },
        created_at: c.created_at.clone(),
        started_at: c.started_at.clone(),
        finished_at: c.finished_at.clone(),
        snapshots: SnapshotPolicyView { schedule: c.snapshot_schedule.clone(), expiry: c.snapshot_expiry.clone() },
        error: c.error.clone(),
    }
}
