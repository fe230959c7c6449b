//! Running a command in a running container (the daemon side of `exec`).

use serde::Deserialize;
use tokio::process::Child;

use super::spec::ExecSpec;
use super::{Result, Runtime, RuntimeError};
use crate::limits::FieldError;
use crate::model::{Status, validate_strings};

/// Body of `POST /containers/{id}/exec`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `uid` or `uid:gid` inside the container (default 0:0).
    pub user: Option<String>,
    pub rows: Option<u16>,
    pub cols: Option<u16>,
}

fn parse_user(u: &str) -> Option<(u32, u32)> {
    let (a, b) = u.split_once(':').unwrap_or((u, u));
    let (uid, gid): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    (uid < 65536 && gid < 65536).then_some((uid, gid))
}

impl Runtime {
    /// Starts the command; the caller relays the child's stdio.
    pub async fn exec(&self, id: &str, req: ExecRequest) -> Result<Child> {
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
        let c = self.get(id).await?;
        let (Status::Running, Some(pid), Some(start)) = (c.status, c.pid, c.pid_start) else {
            return Err(RuntimeError::Conflict("the container is not running".into()));
        };
        let mut env = c.env.clone();
        if req.tty {
            env.push("TERM=xterm".into());
        }
        for kv in &req.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| !e.starts_with(&format!("{key}=")));
            env.push(kv.clone());
        }
        let spec = ExecSpec {
            id: c.id.clone(),
            init_pid: pid,
            init_start: start,
            cgroup: self.cgroups.path(&c.id),
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
        tracing::debug!(container = %c.id, command = ?spec.command, tty = spec.tty, "exec");
        let child = self.spawn_exec(&spec)?;
        super::lifecycle::fault("exec-spawned")?;
        Ok(child)
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
