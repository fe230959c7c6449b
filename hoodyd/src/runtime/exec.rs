//! Running a command in a running container (the daemon side of `exec`). Each exec is an
//! instance with an id ([`super::execs`]) and runs in a child cgroup of the container's,
//! `<id>/exec-<exec_id>` (no controllers enabled there: the container's limits still hold), so
//! that its whole process tree can be signalled and killed.

use hoody_api::events::{EventData, EventType};
use std::time::Duration;

use crate::exec_record::{self as rec, ExecEnd, ExecRecord, ShimPids, ShimSpec};
pub use hoody_api::exec::ExecRequest;

use super::execs::{ExecStatus, ExecView, StartedBy};
use super::{Result, Runtime, RuntimeError, io_err};
use crate::limits::FieldError;
use crate::model::{Status, validate_strings};
use crate::spec::ExecSpec;

/// How long an exec whose client went away gets between SIGHUP and `cgroup.kill`.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Output kept per stream in JSON mode and for detached execs, unless the request says.
pub const CAPTURE_LIMIT: u64 = 1 << 20;
/// … and at most this.
pub const CAPTURE_MAX: u64 = 64 << 20;

/// A started (or re-attached) exec: its instance, the connection to its shim, its helper's
/// pid, its cgroup (as a cgroup id).
pub struct Started {
    pub id: String,
    pub container_id: String,
    /// Attached to the exec's shim: exec frames both ways.
    pub link: tokio::net::UnixStream,
    pub helper_pid: i32,
    pub cgroup: String,
    pub dir: std::path::PathBuf,
    pub kill_grace: Duration,
    /// Bytes of output kept per stream (JSON mode).
    pub cap: u64,
}

fn seconds(field: &str, v: Option<f64>) -> Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 * 365.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(FieldError::new(field, "must be a number of seconds above 0").into()),
    }
}

fn parse_user(u: &str) -> Option<(u32, u32)> {
    let (a, b) = u.split_once(':').unwrap_or((u, u));
    let (uid, gid): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    (uid < 65536 && gid < 65536).then_some((uid, gid))
}

impl Runtime {
    /// Starts the command as a new exec instance in container `c` (as the caller just read
    /// it: a container that stopped since is refused by the helper, which checks the init's
    /// pid and start time); the caller relays the child's stdio and calls
    /// [`Runtime::exec_finished`] when it ends.
    pub async fn exec(self: &std::sync::Arc<Self>, c: &crate::model::Container, req: ExecRequest, by: StartedBy) -> Result<Started> {
        let timeout = seconds("timeout", req.timeout)?;
        let kill_grace = seconds("kill_grace", req.kill_grace)?.unwrap_or(KILL_GRACE);
        if req.stdin.is_some() && req.stdin_base64.is_some() {
            return Err(FieldError::new("stdin_base64", "give stdin or stdin_base64, not both").into());
        }
        if req.command.is_empty() || req.command[0].is_empty() {
            return Err(FieldError::new("command", "must name a program").into());
        }
        validate_strings("command", &req.command, false)?;
        validate_strings("env", &req.env, true)?;
        let (uid, gid) = match &req.user {
            None => (0, 0),
            Some(u) => parse_user(u).ok_or_else(|| FieldError::new("user", "must be UID or UID:GID, each below 65536"))?,
        };
        let cwd = req.cwd.clone().unwrap_or_else(|| "/".into());
        if !cwd.starts_with('/') || cwd.contains('\0') {
            return Err(FieldError::new("cwd", "must be an absolute path").into());
        }
        let (Status::Running, Some(pid), Some(start)) = (c.status, c.pid, c.pid_start) else {
            return Err(RuntimeError::State(hoody_api::envelope::ErrorCode::NotRunning, "the container is not running".into()));
        };
        let mut env = c.env.clone();
        if req.tty {
            env.push("TERM=xterm".into());
        }
        for kv in &req.env {
            crate::spec::set_env(&mut env, kv.clone());
        }
        let exec_id = crate::ids::new_id();
        let cgroup = format!("{}/exec-{exec_id}", c.id);
        self.cgroups.create(&cgroup, &Default::default())?;
        let spec = ExecSpec {
            id: c.id.clone(),
            init_pid: pid,
            init_start: start,
            cgroup: self.cgroups.path(&cgroup),
            command: req.command,
            env,
            cwd,
            uid,
            gid,
            tty: req.tty,
            rows: req.rows.unwrap_or(24),
            cols: req.cols.unwrap_or(80),
            proc_root: self.cfg.proc_root.clone(),
        };
        tracing::debug!(container = %c.id, exec = %exec_id, command = %serde_json::to_string(&spec.command).unwrap_or_default(), tty = spec.tty, "exec");
        let cap = req.max_output_bytes.unwrap_or(CAPTURE_LIMIT).min(CAPTURE_MAX);
        let view = ExecView {
            id: exec_id.clone(),
            container_id: c.id.clone(),
            command: spec.command.clone(),
            status: ExecStatus::Running,
            exit_code: None,
            signal: None,
            started_at: super::now(),
            finished_at: None,
            started_by: by,
            detached: req.detach,
            tty: req.tty,
            timed_out: false,
        };
        let cg = self.cgroups.clone();
        let shim_cgroup = tokio::task::spawn_blocking(move || cg.shim_cgroup()).await??;
        let record = ExecRecord {
            view: view.clone(),
            kill_grace_ms: kill_grace.as_millis() as u64,
            shim: ShimSpec {
                exec: spec,
                shim_cgroup: shim_cgroup.clone(),
                detached: req.detach,
                cap,
                timeout_ms: timeout.map(|t| t.as_millis().max(1) as u64),
            },
        };
        let dir = self.execs.dir_of(&exec_id);
        // Step 1: the record (a restart finds the instance by it), made durable while step 2,
        // the shim, starts: it runs the helper and answers on the directory's socket. A detached
        // exec is answered only once its record is durable (the answer is the caller's only
        // handle on it); a session's record is left to the kernel's writeback (the session is the
        // handle; a power loss, which ends the exec too, may lose the newest such records). A
        // crash between the steps leaves a record without a shim: the next start finds it ended.
        let d = dir.clone();
        let written = tokio::task::spawn_blocking(move || rec::create(&d, &record)).await?;
        if let Err(e) = written {
            let _ = self.cgroups.remove(&cgroup);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(io_err("write the exec's record")(e));
        }
        let view_command = view.command.clone();
        self.execs.start(view, cap);
        let d = dir.clone();
        let detach = req.detach;
        let synced = detach.then(|| tokio::task::spawn_blocking(move || rec::sync_created(&d)));
        let started = async {
            let helper_pid = self.spawn_exec_shim(&dir, &shim_cgroup).await?;
            super::lifecycle::fault("exec-spawned")?;
            let link = tokio::net::UnixStream::connect(dir.join(rec::SOCKET)).await.map_err(io_err("attach to the exec's shim"))?;
            if let Some(synced) = synced {
                synced.await?.map_err(io_err("make the exec's record durable"))?;
            }
            Ok::<_, RuntimeError>((helper_pid, link))
        };
        let (helper_pid, link) = match started.await {
            Ok(x) => x,
            Err(e) => {
                // Whatever started is killed; the instance is recorded as ended.
                let _ = self.cgroups.kill(&cgroup);
                self.execs.finish(&exec_id, None);
                let _ = self.cgroups.remove(&cgroup);
                return Err(e);
            }
        };
        let data = EventData { exec_id: Some(exec_id.clone()), command: Some(view_command), ..Default::default() };
        self.emit(EventType::ExecStarted, c, data);
        Ok(Started { id: exec_id, container_id: c.id.clone(), link, helper_pid, cgroup, dir, kill_grace, cap })
    }

    /// Attaches again to a running exec (after a client lost its connection, or the daemon
    /// restarted), with the instance: no stream when it has ended (its end and kept output are
    /// in its directory).
    pub async fn exec_reattach(&self, container: &str, exec_id: &str) -> Result<(ExecView, Option<Started>)> {
        let (view, _) = self.execs.get(container, exec_id).ok_or_else(|| RuntimeError::Missing(format!("exec {exec_id:?}")))?;
        if view.detached {
            return Err(RuntimeError::Conflict("a detached exec has no stream to attach to: read its output with GET".into()));
        }
        if view.status == ExecStatus::Exited {
            return Ok((view, None));
        }
        let dir = self.execs.dir_of(exec_id);
        let record: ExecRecord =
            rec::read_json(&dir, rec::RECORD).ok_or_else(|| RuntimeError::Missing(format!("the record of exec {exec_id:?}")))?;
        let pids: ShimPids = rec::read_json(&dir, rec::PIDS)
            .ok_or_else(|| RuntimeError::State(hoody_api::envelope::ErrorCode::InProgress, "the exec is still starting".into()))?;
        let link = match tokio::net::UnixStream::connect(dir.join(rec::SOCKET)).await {
            Ok(l) => l,
            // It ended in the meantime.
            Err(_) => return Ok((view, None)),
        };
        self.execs.mark_attached(exec_id);
        let started = Started {
            id: exec_id.to_owned(),
            container_id: container.to_owned(),
            link,
            helper_pid: pids.helper_pid,
            cgroup: format!("{container}/exec-{exec_id}"),
            dir,
            kill_grace: Duration::from_millis(record.kill_grace_ms),
            cap: record.shim.cap,
        };
        Ok((view, Some(started)))
    }

    /// Records how an exec ended (as its shim wrote it); its cgroup goes once nothing is left
    /// in it (background children of its command run on, as with `docker exec`, until the
    /// container stops). Returns the end as recorded.
    pub fn exec_finished(self: &std::sync::Arc<Self>, id: &str, cgroup: &str) -> Option<ExecEnd> {
        let end = self.execs.recorded_end(id);
        if self.execs.finish(id, end.as_ref())
            && let Some((container, _)) = cgroup.split_once('/')
        {
            let data = EventData {
                exec_id: Some(id.to_owned()),
                exit_code: end.as_ref().and_then(|e| e.exit_code),
                signal: end.as_ref().and_then(|e| e.signal),
                ..Default::default()
            };
            let (rt, container) = (self.clone(), container.to_owned());
            tokio::spawn(async move { rt.emit_for(EventType::ExecExited, &container, data).await });
        }
        // The helper was just reaped: the kernel may report the cgroup populated a moment more.
        let (rt, cg) = (self.clone(), cgroup.to_owned());
        tokio::spawn(async move {
            for _ in 0..40 {
                if !rt.cgroups.populated(&cg).unwrap_or(true) {
                    let _ = rt.cgroups.remove(&cg);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        end
    }

    /// For an exec nobody relays (detached, or found running at start): records its end once
    /// its shim wrote it, and removes its cgroup, as a session does when it ends.
    pub fn watch_exec_end(self: &std::sync::Arc<Self>, container: &str, id: &str) {
        let (rt, container, id) = (self.clone(), container.to_owned(), id.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match rt.execs.get(&container, &id) {
                    Some((v, _)) if v.status == ExecStatus::Running => continue,
                    Some(_) => {
                        rt.exec_finished(&id, &format!("{container}/exec-{id}"));
                        return;
                    }
                    None => return,
                }
            }
        });
    }

    /// Execs found running at the daemon's start: a non-detached one whose client lost its
    /// connection with the daemon gets `grace` to be re-attached, then it is hung up as if its
    /// client had gone (SIGHUP, `cgroup.kill` after its kill grace).
    pub fn recover_execs(self: &std::sync::Arc<Self>, containers: &std::collections::HashSet<String>, grace: Duration) -> usize {
        let running = self.execs.load(containers);
        for r in &running {
            self.watch_exec_end(&r.view.container_id, &r.view.id);
            if r.view.detached {
                continue;
            }
            let (rt, id, cgroup, kill_grace) =
                (self.clone(), r.view.id.clone(), format!("{}/exec-{}", r.view.container_id, r.view.id), r.kill_grace);
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if !rt.execs.attached(&id) && rt.execs.recorded_end(&id).is_none() {
                    tracing::info!(exec = %id, "nobody re-attached to the exec after the restart: hanging up");
                    rt.exec_hang_up(&cgroup, kill_grace).await;
                }
            });
        }
        running.len()
    }

    /// Sends `sig` to the exec's process group (its command leads one), or, once the command
    /// is gone, to what is left in its cgroup.
    pub fn exec_signal(&self, cgroup: &str, helper_pid: i32, sig: i32) {
        let Ok(signal) = nix::sys::signal::Signal::try_from(sig) else { return };
        let procs = self.exec_procs(cgroup);
        let helper = Some(helper_pid);
        let leader = procs.iter().copied().find(|p| crate::procfs::parent_of(&self.cfg.proc_root, *p) == helper);
        match leader {
            Some(l) => {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(l), signal);
            }
            None => {
                for p in procs.into_iter().filter(|p| Some(*p) != helper) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), signal);
                }
            }
        }
    }

    fn exec_procs(&self, cgroup: &str) -> Vec<i32> {
        std::fs::read_to_string(self.cgroups.path(cgroup).join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The client went away without detaching: SIGHUP to everything in the exec's cgroup, and
    /// after `grace` whatever is left is killed (`cgroup.kill`).
    pub async fn exec_hang_up(&self, cgroup: &str, grace: Duration) {
        for p in self.exec_procs(cgroup) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGHUP);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if !self.cgroups.populated(cgroup).unwrap_or(false) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.cgroups.kill(cgroup);
        for _ in 0..40 {
            if !self.cgroups.populated(cgroup).unwrap_or(true) {
                let _ = self.cgroups.remove(cgroup);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the exec's whole process tree at once (a timeout).
    pub fn exec_kill(&self, cgroup: &str) {
        let _ = self.cgroups.kill(cgroup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert_eq!(parse_user("0"), Some((0, 0)));
        assert_eq!(parse_user("1000:100"), Some((1000, 100)));
        assert_eq!(parse_user("70000"), None);
        assert_eq!(parse_user("root"), None);
    }
}
