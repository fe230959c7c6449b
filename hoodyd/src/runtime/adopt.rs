//! Startup reconciliation: re-adopt running containers, mark vanished ones stopped, and remove
//! kernel and storage objects that belong to no container (for example after a crash in the
//! middle of a create or delete).

use std::collections::HashSet;
use std::sync::Arc;

use tracing::{info, warn};

use super::{Result, Runtime, now};
use crate::helper::sys;
use crate::model::Status;
use crate::procfs;
use crate::store::{self, ContainerFilter};

#[derive(Debug, Default, serde::Serialize)]
pub struct AdoptReport {
    pub adopted: Vec<String>,
    pub vanished: Vec<String>,
    pub removed_orphans: Vec<String>,
}

impl Runtime {
    pub async fn adopt(self: &Arc<Self>) -> Result<AdoptReport> {
        let mut report = AdoptReport::default();
        let all = self.list(&ContainerFilter::default()).await?;
        for c in &all {
            if c.status != Status::Running {
                continue;
            }
            let alive = match (c.pid, c.pid_start) {
                (Some(pid), Some(start)) => {
                    sys::pidfd_open(pid).ok().filter(|_| procfs::is_same_process(&self.cfg.proc_root, pid, start)).map(|fd| (pid, fd))
                }
                _ => None,
            };
            match alive {
                Some((pid, fd)) => {
                    self.watch_init(&c.id, pid, fd).map_err(super::io_err("watch an adopted init"))?;
                    info!(container = %c.id, pid, "adopted running container");
                    report.adopted.push(c.id.clone());
                }
                None => {
                    let (id, at) = (c.id.clone(), now());
                    self.store.call(move |db| store::mark_stopped(db, &id, None, None, &at)).await?;
                    let cg = self.cgroups.clone();
                    let id = c.id.clone();
                    let _ = tokio::task::spawn_blocking(move || cg.remove(&id)).await;
                    warn!(container = %c.id, "container init vanished while the daemon was away; marked stopped");
                    report.vanished.push(c.id.clone());
                }
            }
        }
        let known: HashSet<String> = all.iter().map(|c| c.id.clone()).collect();
        // Disk limits as the state store has them (what was answered): a crash between a PATCH's
        // kernel change and its commit is rolled back to the record here.
        let disk: std::collections::HashMap<String, hoody_snapshot::DiskLimits> =
            all.iter().map(|c| (c.id.clone(), c.limits.disk_limits())).collect();
        let running: HashSet<String> = report.adopted.iter().cloned().collect();
        // Those being deleted are finished by the delete retry, not tidied here.
        let deleting: HashSet<String> = all.iter().filter(|c| c.status == Status::Deleting).map(|c| c.id.clone()).collect();
        let (storage, cg, state_root) = (self.storage.clone(), self.cgroups.clone(), self.cfg.state_dir.join("containers"));
        let orphans = tokio::task::spawn_blocking(move || {
            let mut removed = vec![];
            for id in storage.container_ids().unwrap_or_default() {
                if deleting.contains(&id) {
                    continue;
                }
                if known.contains(&id) {
                    if let Err(e) = storage.cleanup_temporaries(&id) {
                        warn!(container = %id, error = %e, "could not remove what an interrupted restore or diff left");
                    }
                    if storage.quota_support().is_ok()
                        && let Some(l) = disk.get(&id)
                        && let Err(e) = storage.set_disk_limits(&id, l)
                    {
                        if l.is_empty() {
                            tracing::debug!(container = %id, error = %e, "no disk limits to re-apply");
                        } else {
                            warn!(container = %id, error = %e, "could not re-apply the disk limits");
                        }
                    }
                } else {
                    match storage.delete_container(&id) {
                        Ok(()) => removed.push(format!("storage:{id}")),
                        Err(e) => {
                            warn!(container = %id, error = %e, "could not remove orphaned storage")
                        }
                    }
                }
            }
            for id in cg.list().unwrap_or_default() {
                if !running.contains(&id) {
                    match cg.remove(&id) {
                        Ok(()) => removed.push(format!("cgroup:{id}")),
                        Err(e) => {
                            warn!(container = %id, error = %e, "could not remove orphaned cgroup")
                        }
                    }
                }
            }
            if let Ok(rd) = std::fs::read_dir(&state_root) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !known.contains(&name) && std::fs::remove_dir_all(e.path()).is_ok() {
                        removed.push(format!("state:{name}"));
                    }
                }
            }
            removed
        })
        .await?;
        for o in &orphans {
            info!(object = %o, "removed orphaned object");
        }
        report.removed_orphans = orphans;
        Ok(report)
    }
}
