//! Watching container inits through pidfds: an init's exit is noticed whether the daemon started
//! it or adopted it after a restart; the exit code is known when the init is our child (the
//! daemon is a child subreaper, so inits it started are re-parented to it).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tracing::{info, warn};

use hoody_api::events::{EventData, EventType};

use super::{Runtime, now};
use crate::helper::sys;

pub(crate) struct RunningInit {
    pub pid: i32,
    pub pidfd: Arc<AsyncFd<OwnedFd>>,
    pub exited: watch::Receiver<bool>,
}

impl Runtime {
    /// Starts watching the init `pid` of container `id` (its pidfd already open).
    pub(crate) fn watch_init(self: &Arc<Self>, id: &str, pid: i32, pidfd: OwnedFd) -> std::io::Result<()> {
        let afd = Arc::new(sys::async_pidfd(pidfd)?);
        let (tx, rx) = watch::channel(false);
        self.running.lock().expect("poisoned").insert(id.to_owned(), RunningInit { pid, pidfd: afd.clone(), exited: rx });
        let rt = self.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            loop {
                match afd.readable().await {
                    Ok(mut g) => {
                        g.retain_ready();
                        break;
                    }
                    Err(e) => {
                        warn!(container = %id, pid, error = %e, "pidfd wait failed; polling");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            // Adopted: not our child (its parent reaps it), so no status.
            let exit = sys::waitid_pidfd(afd.get_ref().as_fd(), true).unwrap_or_default();
            rt.on_exit(&id, pid, exit).await;
            {
                let mut running = rt.running.lock().expect("poisoned");
                if running.get(&id).is_some_and(|r| r.pid == pid) {
                    running.remove(&id);
                }
            }
            let _ = tx.send(true);
        });
        Ok(())
    }

    /// Reaps the shim `pid` (a child of the start helper, re-parented to this subreaper) when
    /// it exits. A shim of an earlier daemon is reaped by whoever inherited it.
    pub(crate) fn reap_shim(&self, id: &str, pid: i32) {
        let Ok(afd) = sys::pidfd_open(pid).and_then(sys::async_pidfd) else { return };
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Ok(mut g) = afd.readable().await {
                g.retain_ready();
            }
            let exit = sys::waitid_pidfd(afd.get_ref().as_fd(), true);
            let exit = match exit {
                Ok(Some(e)) => format!("status {}", e.as_code()),
                Ok(None) => "not yet".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(container = %id, pid, exit = %exit, "shim exited");
        });
    }

    async fn on_exit(self: &Arc<Self>, id: &str, pid: i32, how: Option<sys::Exit>) {
        let exit = how.map(sys::Exit::as_code);
        info!(container = %id, pid, exit_code = exit, "container init exited");
        // Cleaned up first, recorded second: a container the API calls stopped has no cgroup
        // left (and a crash in between is settled by adoption, which finds the init gone).
        // Whether the OOM killer struck is read from the cgroup before it goes.
        let cg = self.cgroups.clone();
        let key = id.to_owned();
        let oom_killed = match tokio::task::spawn_blocking(move || {
            let oom = cg.usage(&key).oom_kills;
            (oom, cg.remove(&key))
        })
        .await
        {
            Ok((oom, Ok(()))) => oom.map(|n| n > 0),
            Ok((oom, Err(e))) => {
                warn!(container = %id, error = %e, "could not remove the cgroup");
                oom.map(|n| n > 0)
            }
            Err(e) => {
                warn!(container = %id, error = %e, "cgroup removal task failed");
                None
            }
        };
        // Recorded as soon as the state store can take it (a full state file system refuses
        // writes for a while): until then the container reads as running and a stop says the
        // record could not be written.
        let mut wait = Duration::from_millis(200);
        loop {
            let (key, at) = (id.to_owned(), now());
            match self.store.call(move |c| crate::store::mark_stopped(c, &key, Some(pid), exit, &at)).await {
                Ok(_) => {
                    let (exit_code, signal) = match how {
                        Some(sys::Exit::Code(c)) => (Some(c), None),
                        Some(sys::Exit::Signal(s)) => (None, Some(s)),
                        None => (None, None),
                    };
                    let data = EventData { exit_code, signal, oom_killed: Some(oom_killed.unwrap_or(false)), ..Default::default() };
                    self.emit_for(EventType::ContainerExited, id, data).await;
                    break;
                }
                Err(e) => {
                    warn!(container = %id, error = %e, retry_ms = wait.as_millis() as u64, "could not record the exit; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The watched init of `id`, if any.
    pub(crate) fn running_init(&self, id: &str) -> Option<(i32, Arc<AsyncFd<OwnedFd>>, watch::Receiver<bool>)> {
        self.running.lock().expect("poisoned").get(id).map(|r| (r.pid, r.pidfd.clone(), r.exited.clone()))
    }

    /// Sends `sig` to the init of `id` and waits up to `timeout` for it to exit.
    pub(crate) async fn signal_and_wait(&self, id: &str, sig: libc::c_int, timeout: Duration) -> bool {
        let Some((pid, fd, mut exited)) = self.running_init(id) else {
            return true;
        };
        if let Err(e) = sys::pidfd_send_signal(fd.get_ref().as_fd(), sig) {
            warn!(container = %id, pid, sig, error = %e, "signal failed");
        }
        tokio::time::timeout(timeout, exited.wait_for(|e| *e)).await.is_ok()
    }

    /// Waits up to `timeout` for the init of `id` to be gone.
    pub(crate) async fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let Some((_, _, mut exited)) = self.running_init(id) else {
            return true;
        };
        tokio::time::timeout(timeout, exited.wait_for(|e| *e)).await.is_ok()
    }
}

impl Runtime {
    /// The pid of the watched init of `id`, if the container runs.
    pub fn running_init_pid(&self, id: &str) -> Option<i32> {
        self.running.lock().expect("poisoned").get(id).map(|r| r.pid)
    }
}
