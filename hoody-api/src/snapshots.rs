//! Snapshots of a container and their differences.

use serde::{Deserialize, Serialize};

/// Body of `POST /containers/{id}/snapshots`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// The snapshot's name (`clean-slate`); `name` is accepted too.
    #[serde(alias = "name")]
    pub alias: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Snapshot {
    pub name: String,
    pub created_at: String,
    /// Taken by the container's schedule (and expired by it).
    pub scheduled: bool,
    /// btrfs or overlay.
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// How long the container was frozen for this snapshot (running containers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_ms: Option<u64>,
}

/// `GET /containers/{id}/snapshots/{name}/diff[?to=OTHER]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Diff {
    pub from: String,
    /// Another snapshot, or `live` (the container's root now).
    pub to: String,
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    pub changes: Vec<Change>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// Absolute inside the container (`/etc/passwd`).
    pub path: String,
    pub kind: ChangeKind,
    /// What differs, for modified paths: content, mode, owner, link, type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
    /// file, directory, symlink, subvolume, other (of the newer state; of the older for
    /// deletions).
    #[serde(rename = "type")]
    pub file_type: String,
}
