//! `GET /health` and `POST /system/shutdown`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// ok.
    pub status: String,
    pub uptime_seconds: u64,
    pub daemon: DaemonInfo,
    pub autostart: AutostartReport,
}

/// Facts about the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DaemonInfo {
    pub version: String,
    pub storage_driver: String,
    pub storage_dir: String,
    pub state_dir: String,
    pub cgroup_root: String,
    pub controllers: Vec<String>,
}

/// One container that could not be started or stopped, and why (the whole cause chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Failure {
    pub id: String,
    pub name: String,
    pub error: String,
}

/// What the autostart of this boot did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AutostartReport {
    /// Whether this daemon start was the first since the machine booted.
    pub boot: bool,
    /// Containers marked autostart that were not running.
    pub wanted: usize,
    pub started: Vec<String>,
    pub failed: Vec<Failure>,
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// What a host shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ShutdownReport {
    pub stopped: Vec<String>,
    pub failed: Vec<Failure>,
    pub elapsed_ms: u64,
}
