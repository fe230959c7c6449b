//! Images in the storage pool.

use serde::{Deserialize, Serialize};

/// Body of `POST /images` (JSON): import a directory or tar file that is on the host
/// (administrators only). An upload is `POST /images?name=NAME` with the tar as the body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImportPath {
    pub name: String,
    /// An absolute path on the host (administrators); or give `from`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Publish a snapshot of a container as the image: its whole tree as the container saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<SnapshotRef>,
}

/// `{"container": ID or name, "snapshot": NAME}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SnapshotRef {
    pub container: String,
    pub snapshot: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Image {
    pub name: String,
    /// btrfs or overlay.
    pub driver: String,
    pub created_at: String,
    pub files: u64,
    pub bytes: u64,
    /// Where it came from (an upload, a path, the built-in busybox).
    pub source: String,
}

/// What an import wrote, and what it left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub bytes: u64,
    /// Entries that were not written (device nodes, sockets), with the reason.
    pub skipped: Vec<String>,
    /// Entries whose owner was outside 0..65535 and became 65534.
    pub clamped_owners: u64,
}

/// The answer of an import: the image and the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Imported {
    #[serde(flatten)]
    pub image: Image,
    pub report: ImportReport,
}
