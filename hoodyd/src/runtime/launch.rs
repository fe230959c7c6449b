//! Spawning the single-threaded helper (a re-exec of this binary) for namespace work, so that no
//! clone/unshare/setns ever runs on a tokio worker thread.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{Result, Runtime, RuntimeError, io_err};
use crate::helper::exec_shim::ShimReady;
use crate::spec::{HelperReply, StartSpec};

impl Runtime {
    fn helper(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.cfg.helper);
        cmd.arg0("hoodyd").arg(sub).kill_on_drop(false);
        cmd
    }

    /// Runs `hoodyd __start` and returns the host pid and start time of the new init, and the
    /// pid of its shim.
    pub(crate) async fn launch(&self, spec: &StartSpec) -> Result<(i32, u64, i32)> {
        let input = serde_json::to_vec(spec).expect("spec serialises");
        let mut child = self
            .helper("__start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io_err("spawn the start helper"))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(&input).await.map_err(io_err("send the start spec"))?;
        drop(stdin);
        let mut out = Vec::new();
        child.stdout.take().expect("piped").read_to_end(&mut out).await.map_err(io_err("read the start helper's answer"))?;
        let status = child.wait().await.map_err(io_err("wait for the start helper"))?;
        match serde_json::from_slice::<HelperReply>(&out) {
            Ok(HelperReply::Started { pid, start_time, shim_pid }) if status.success() => Ok((pid, start_time, shim_pid)),
            Ok(HelperReply::Failed(f)) => Err(RuntimeError::Helper { kind: f.kind, message: f.message, causes: f.causes }),
            _ => Err(RuntimeError::Helper {
                kind: crate::spec::FailureKind::Setup,
                message: format!("the start helper ended with {status} without an answer"),
                causes: vec![String::from_utf8_lossy(&out).into_owned()],
            }),
        }
    }

    /// Starts `hoodyd __exec-shim DIR` (see [`crate::helper::exec_shim`]) and waits until it
    /// runs the exec helper; returns the helper's pid. The process spawned only starts the shim
    /// (in the shims' cgroup) and exits; the shim, re-parented to this subreaper, is reaped
    /// here when it exits while this daemon runs.
    pub(crate) async fn spawn_exec_shim(&self, dir: &std::path::Path) -> Result<i32> {
        let mut child = self
            .helper("__exec-shim")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("spawn the exec shim"))?;
        let mut out = Vec::new();
        let mut stdout = child.stdout.take().expect("piped");
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.read_to_end(&mut out)).await;
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        match (read, serde_json::from_slice::<ShimReady>(&out)) {
            (Ok(Ok(_)), Ok(ShimReady::Ready { shim_pid, helper_pid })) => {
                self.reap_shim(&format!("exec {}", dir.display()), shim_pid);
                Ok(helper_pid)
            }
            (_, Ok(ShimReady::Failed { message })) => {
                Err(RuntimeError::Helper { kind: crate::spec::FailureKind::Setup, message, causes: vec![] })
            }
            _ => Err(RuntimeError::Helper {
                kind: crate::spec::FailureKind::Setup,
                message: "the exec shim ended without an answer".into(),
                causes: vec![String::from_utf8_lossy(&out).into_owned()],
            }),
        }
    }
}
