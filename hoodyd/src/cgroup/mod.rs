//! cgroup v2: one cgroup per container under the configured root. The [`CgroupOps`] trait is
//! the seam; [`fs::CgroupFs`] is the kernel implementation and [`recording::RecordingCgroups`]
//! the double used by unit tests.

pub mod fs;
mod knob;
pub mod placement;
#[cfg(test)]
pub mod recording;
mod thaw;

use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::limits::Limits;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a cgroup v2 directory (mount cgroup2 there or pass --cgroup-root)", .0.display())]
    NotCgroup2(PathBuf),
    #[error("the {controller} controller is not available under {} (available: {available}); the {limit} limit cannot be applied", root.display())]
    MissingController { controller: &'static str, limit: &'static str, root: PathBuf, available: String },
    #[error("cgroup {} still has processes after kill", .0.display())]
    Busy(PathBuf),
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// Resource usage read from a container's cgroup; fields are absent when the controller is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_usage_usec: Option<u64>,
    /// Time the container was held back by its `cpus` limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_throttled_usec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<u64>,
}

/// The kernel surface of cgroups, one method per operation the daemon needs.
pub trait CgroupOps: Send + Sync + 'static {
    /// Directory of container `id`'s cgroup.
    fn path(&self, id: &str) -> PathBuf;
    /// Controllers usable for containers (enabled in the root's subtree_control).
    fn controllers(&self) -> BTreeSet<String>;
    /// Refuses limits whose controller is missing, naming it.
    fn check_limits(&self, limits: &Limits) -> Result<()> {
        let have = self.controllers();
        for (controller, limit, wanted) in
            [("memory", "memory", limits.memory.is_some()), ("cpu", "cpus", limits.cpus.is_some()), ("pids", "pids", limits.pids.is_some())]
        {
            if wanted && !have.contains(controller) {
                return Err(CgroupError::MissingController {
                    controller,
                    limit,
                    root: self.path(""),
                    available: if have.is_empty() { "none".into() } else { have.iter().cloned().collect::<Vec<_>>().join(" ") },
                });
            }
        }
        Ok(())
    }
    /// Creates the cgroup (a leftover one is emptied and reused) and applies `limits`.
    fn create(&self, id: &str, limits: &Limits) -> Result<PathBuf>;
    /// Writes `limits` to an existing cgroup.
    fn apply_limits(&self, id: &str, limits: &Limits) -> Result<()>;
    /// Kills every process in the cgroup (`cgroup.kill`).
    fn kill(&self, id: &str) -> Result<()>;
    /// Freezes or thaws the cgroup and waits until the kernel reports it done.
    fn freeze(&self, id: &str, frozen: bool) -> Result<()>;
    /// Thaws the cgroup and every cgroup below it that is frozen; returns how many were.
    fn thaw_tree(&self, id: &str) -> Result<usize>;
    /// True while processes remain (`populated` in cgroup.events).
    fn populated(&self, id: &str) -> Result<bool>;
    /// Kills what is left and removes the cgroup; a missing one is fine.
    fn remove(&self, id: &str) -> Result<()>;
    fn usage(&self, id: &str) -> Usage;
    /// Names of the cgroups under the root (for reconciliation).
    fn list(&self) -> Result<Vec<String>>;
    /// The cgroup containers' shims live in (made when missing), beside the containers' and
    /// out of their reach; never listed as a container.
    fn shim_cgroup(&self) -> Result<PathBuf>;
}
