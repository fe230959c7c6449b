//! Containers: the bodies of `POST /containers` and `PATCH /containers/{id}`, and a container
//! as answered.

use serde::{Deserialize, Serialize};

use crate::common::Size;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    Created,
    Running,
    Stopped,
    /// Being deleted: stopped, its firewall gone, its storage still (partly) there. The record
    /// keeps its name, address and id range until the storage is gone; the daemon retries.
    Deleting,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Created, Status::Running, Status::Stopped, Status::Deleting];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What leaves the container when no rule says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    Deny,
    Allow,
}

impl Egress {
    pub fn as_str(self) -> &'static str {
        match self {
            Egress::Deny => "deny",
            Egress::Allow => "allow",
        }
    }
}

impl std::str::FromStr for Egress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deny" => Ok(Egress::Deny),
            "allow" => Ok(Egress::Allow),
            o => Err(format!("{o:?} is not an egress policy (deny, allow)")),
        }
    }
}

/// Body of `POST /containers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub name: String,
    /// The image to make it from (a fork's is its source's: leave it out).
    #[serde(default)]
    pub image: String,
    /// Where its root comes from when not from `image`: a snapshot of another container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ContainerSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub realm_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Snapshot schedule and expiry (`{"schedule": "daily", "expiry": "90d"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotPolicy>,
}

/// `{"container": ID, "snapshot": NAME}`: fork that snapshot (its root, limits, egress policy
/// and rules, command and environment, unless the request gives its own); or `{"image": NAME}`,
/// the same as `image`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContainerSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// `{"schedule": "daily" | "hourly" | "weekly" | "@every 15m", "expiry": "90d"}`; in a request,
/// `null` or `""` clears a setting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SnapshotPolicy {
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub expiry: Option<String>,
}

/// Body of `PATCH /containers/{id}`: what to change.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateContainer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotPolicy>,
    /// Shorthand for `snapshots.schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Shorthand for `snapshots.expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

/// The `limits` object of a request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// Swap on top of `memory`; 0 (the default) is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<Size>,
    /// Bytes of the root beyond the image (`"10GiB"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Size>,
    /// Bytes of the snapshots (default: `disk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_disk: Option<Size>,
    /// Inodes of the root (overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
}

/// A container as answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub realm_ids: Vec<String>,
    pub project_id: Option<String>,
    pub status: Status,
    pub pid: Option<i32>,
    pub exit_code: Option<i32>,
    pub ipv4: Option<String>,
    pub limits: Limits,
    /// `GET /containers/{id}` and `PATCH` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    pub egress: Egress,
    pub autostart: bool,
    pub command: Vec<String>,
    pub idmap: IdMap,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub snapshots: SnapshotPolicy,
    /// Why the last attempt to delete it failed (status `deleting`; the daemon retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The limits in force: sizes as text (`"512MiB"`) and in bytes; absent when unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Snapshot space: set, or the same as `disk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_disk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_disk_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
}

/// The cgroup's numbers while the container runs (each absent when its controller is), the
/// storage's where the pool counts them, and the console log's size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_usage_usec: Option<u64>,
    /// Time the container was held back by its `cpus` limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_throttled_usec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<u64>,
    /// The root's own bytes (beyond what it shares with its image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// What counts against `limits.snapshots_disk` (btrfs: the snapshots' charges, the most
    /// they can pin; overlay: the bytes of the snapshots' project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots_bytes: Option<u64>,
    /// Inodes of the root (overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    /// Bytes of the console log on the state file system (the current part and the rotated
    /// one).
    pub log_bytes: u64,
}

/// The container's private id range on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdMap {
    pub host_uid_base: u32,
    pub host_gid_base: u32,
    pub size: u32,
}

/// The answer of `PATCH /containers/{id}/snapshots/{name}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Restored {
    /// The snapshot's name.
    pub restored: String,
    pub container: Container,
}
