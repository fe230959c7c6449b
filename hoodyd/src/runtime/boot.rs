//! Boot and host shutdown: starting the containers marked `autostart` when the machine booted,
//! and stopping every container gracefully before it goes down. Both run in parallel, bounded,
//! and a container that fails is reported without holding up the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::{Result, Runtime};
use crate::model::Status;
use crate::store::ContainerFilter;

pub use hoody_api::system::{AutostartReport, Failure, ShutdownReport};

fn failure(c: &crate::model::Container, e: &super::RuntimeError) -> Failure {
    Failure { id: c.id.clone(), name: c.name.clone(), error: crate::errors::chain(e).join(": ") }
}

impl Runtime {
    /// Starts, in the background, every container marked autostart that is not running, at
    /// most `parallel` at a time. Returns once the list is taken (autostart has begun).
    pub async fn begin_autostart(self: &Arc<Self>, boot: bool, parallel: usize) -> Result<()> {
        let wanted: Vec<_> = self
            .list(&ContainerFilter::default())
            .await?
            .into_iter()
            .filter(|c| c.autostart && !matches!(c.status, Status::Running | Status::Deleting))
            .collect();
        {
            let mut r = self.autostart.lock().expect("poisoned");
            *r = AutostartReport { boot, wanted: wanted.len(), done: wanted.is_empty(), ..Default::default() };
        }
        if wanted.is_empty() {
            return Ok(());
        }
        info!(containers = wanted.len(), parallel, "autostart begins");
        let rt = self.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let gate = Arc::new(Semaphore::new(parallel.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            for c in wanted {
                let (rt, gate) = (rt.clone(), gate.clone());
                tasks.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let r = rt.start(&c.id).await;
                    let mut rep = rt.autostart.lock().expect("poisoned");
                    match r {
                        Ok(_) => rep.started.push(c.id.clone()),
                        Err(e) => {
                            let f = failure(&c, &e);
                            warn!(container = %c.id, name = %c.name, error = %f.error, "autostart failed");
                            rep.failed.push(f);
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            let mut rep = rt.autostart.lock().expect("poisoned");
            rep.done = true;
            rep.elapsed_ms = Some(t.elapsed().as_millis() as u64);
            info!(started = rep.started.len(), failed = rep.failed.len(), elapsed_ms = rep.elapsed_ms, "autostart done");
        });
        Ok(())
    }

    pub fn autostart_report(&self) -> AutostartReport {
        self.autostart.lock().expect("poisoned").clone()
    }

    /// Stops every running container (SIGTERM, then `cgroup.kill` after `timeout`), at most
    /// `parallel` at a time. Their `autostart` marks stay: they come back at the next boot.
    pub async fn shutdown_all(self: &Arc<Self>, timeout: Duration, parallel: usize) -> Result<ShutdownReport> {
        let t = Instant::now();
        let running: Vec<_> = self.list(&ContainerFilter::default()).await?.into_iter().filter(|c| c.status == Status::Running).collect();
        info!(containers = running.len(), timeout_s = timeout.as_secs(), parallel, "stopping every container");
        let gate = Arc::new(Semaphore::new(parallel.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for c in running {
            let (rt, gate) = (self.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let r = rt.stop_because(&c.id, Some(timeout), "shutdown").await;
                (c, r)
            });
        }
        let mut report = ShutdownReport::default();
        while let Some(done) = tasks.join_next().await {
            let (c, r) = done?;
            match r {
                Ok(_) => report.stopped.push(c.id),
                // Stopped meanwhile by someone else: that is what was wanted.
                Err(super::RuntimeError::State(..) | super::RuntimeError::Conflict(_))
                    if self.get(&c.id).await.is_ok_and(|c| c.status != Status::Running) =>
                {
                    report.stopped.push(c.id)
                }
                Err(e) => {
                    let f = failure(&c, &e);
                    warn!(container = %c.id, error = %f.error, "could not stop at shutdown");
                    report.failed.push(f);
                }
            }
        }
        report.elapsed_ms = t.elapsed().as_millis() as u64;
        info!(
            stopped = report.stopped.len(),
            failed = report.failed.len(),
            elapsed_ms = report.elapsed_ms,
            "containers stopped for shutdown"
        );
        Ok(report)
    }
}

/// The machine's boot id (`/proc/sys/kernel/random/boot_id`), or the contents of `override_file`.
pub fn boot_id(proc_root: &std::path::Path, override_file: Option<&std::path::Path>) -> Option<String> {
    let p = override_file.map(Into::into).unwrap_or_else(|| proc_root.join("sys/kernel/random/boot_id"));
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// True when `current` differs from the boot id recorded in `state_dir/boot_id` (or none is
/// recorded yet): this is the first daemon start since the machine booted. Records `current`.
pub fn first_start_since_boot(state_dir: &std::path::Path, current: &str) -> std::io::Result<bool> {
    let file = state_dir.join("boot_id");
    let last = std::fs::read_to_string(&file).ok();
    if last.as_deref().map(str::trim) == Some(current) {
        return Ok(false);
    }
    let tmp = state_dir.join("boot_id.tmp");
    std::fs::write(&tmp, current)?;
    std::fs::rename(&tmp, &file)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_is_noticed_once() {
        let d = tempfile::tempdir().unwrap();
        assert!(first_start_since_boot(d.path(), "a").unwrap());
        assert!(!first_start_since_boot(d.path(), "a").unwrap(), "a restart in the same boot");
        assert!(first_start_since_boot(d.path(), "b").unwrap(), "a reboot");
        let f = d.path().join("id");
        std::fs::write(&f, "x\n").unwrap();
        assert_eq!(boot_id(Path::new("/nonexistent"), Some(&f)).as_deref(), Some("x"));
        assert!(boot_id(Path::new("/proc"), None).is_some());
    }

    use std::path::Path;
}
