//! Orphans inside containers' PID namespaces. hoodyd is a child subreaper (inits and shims are
//! re-parented to it when their start helper exits), so a process of a container whose parent
//! outside it died can become hoodyd's child. (An exec's command whose helper was killed with it
//! — a timeout, a client gone, a stop — goes to its exec shim, itself a subreaper that reaps it;
//! hoodyd gets it only when that shim is gone too.) Nobody else waits for it, and while it is an
//! unreaped zombie it still counts in its PID namespace: the container's init, at its exit,
//! waits for every process of the namespace to be gone and never finishes exiting. So hoodyd
//! reaps such zombies: its children that are zombies in a nested PID namespace and are not a
//! container init it watches (those are reaped by [`super::monitor`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Runtime;

/// State and parent of `/proc/<pid>/stat`.
fn state_and_parent(stat: &str) -> Option<(char, i32)> {
    let mut f = stat[stat.rfind(')')? + 1..].split_whitespace();
    Some((f.next()?.chars().next()?, f.next()?.parse().ok()?))
}

/// How deep in nested PID namespaces a process is (`NSpid:` of its status: 1 = the host's).
fn pid_depth(status: &str) -> usize {
    status.lines().find_map(|l| l.strip_prefix("NSpid:")).map(|v| v.split_whitespace().count()).unwrap_or(1)
}

/// Reaps what is to be reaped now; returns how many.
pub fn reap_orphans(proc_root: &Path, me: i32, skip: &HashSet<i32>) -> usize {
    let Ok(rd) = std::fs::read_dir(proc_root) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if skip.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        if state_and_parent(&stat) != Some(('Z', me)) {
            continue;
        }
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        if pid_depth(&status) < 2 {
            continue; // one of hoodyd's own helpers: its spawner waits for it
        }
        let flags = nix::sys::wait::WaitPidFlag::WNOHANG;
        if let Ok(s) = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(flags)) {
            let status = match s {
                nix::sys::wait::WaitStatus::Exited(_, code) => format!("exited {code}"),
                nix::sys::wait::WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
                _ => "still running".to_owned(),
            };
            tracing::debug!(pid, status = %status, "reaped an orphan of a container");
            n += 1;
        }
    }
    n
}

impl Runtime {
    /// Reaps orphans whenever a child changes state (SIGCHLD), and every few seconds anyway.
    pub fn spawn_orphan_reaper(self: &Arc<Self>) {
        let rt = self.clone();
        tokio::spawn(async move {
            let mut chld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok();
            loop {
                let sweep = tokio::time::sleep(Duration::from_secs(5));
                match chld.as_mut() {
                    Some(s) => {
                        tokio::select! {
                            _ = s.recv() => {}
                            _ = sweep => {}
                        }
                    }
                    None => sweep.await,
                }
                // Several exits come together: one scan for them.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let skip: HashSet<i32> = rt.running.lock().expect("poisoned").values().map(|r| r.pid).collect();
                let proc_root = rt.cfg.proc_root.clone();
                let me = std::process::id() as i32;
                let _ = tokio::task::spawn_blocking(move || reap_orphans(&proc_root, me, &skip)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_parent_and_depth() {
        assert_eq!(state_and_parent("4242 (sleep (x)) Z 17 4242 4242 0 -1"), Some(('Z', 17)));
        assert_eq!(pid_depth("Name:\tsleep\nNSpid:\t4242\t7\n"), 2);
        assert_eq!(pid_depth("Name:\thoodyd\nNSpid:\t99\n"), 1);
    }
}
