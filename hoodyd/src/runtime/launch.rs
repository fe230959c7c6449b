//! Spawning the single-threaded helper (a re-exec of this binary) for namespace work, so that no
//! clone/unshare/setns ever runs on a tokio worker thread.

use std::process::Stdio;
use std::sync::Arc;

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

    /// Starts the shim of the exec whose directory is `dir` (see [`crate::helper::exec_shim`])
    /// and waits until it runs the exec helper; returns the helper's pid. A spare shim takes it
    /// when one is ready (another is started behind it); else `hoodyd __exec-shim DIR` starts
    /// one cold: the process spawned only starts the shim (in the shims' cgroup) and exits. The
    /// shim, re-parented to this subreaper, is reaped here when it exits while this daemon runs.
    pub(crate) async fn spawn_exec_shim(self: &Arc<Self>, dir: &std::path::Path, shim_cgroup: &std::path::Path) -> Result<i32> {
        let handed = self.spares.hand(dir).await;
        self.refill_exec_spares(shim_cgroup);
        // A spare's end is collected by the waiter started when it became ready.
        let (out, cold) = match handed {
            Some(super::exec_spares::Handed::Answer(out)) => (out, false),
            Some(super::exec_spares::Handed::Gone) | None => (self.cold_exec_shim(dir).await?, true),
        };
        match serde_json::from_slice::<ShimReady>(&out) {
            Ok(ShimReady::Ready { shim_pid, helper_pid }) => {
                if cold {
                    self.reap_shim(&format!("exec {}", dir.display()), shim_pid);
                }
                Ok(helper_pid)
            }
            Ok(ShimReady::Failed { message }) => {
                Err(RuntimeError::Helper { kind: crate::spec::FailureKind::Setup, message, causes: vec![] })
            }
            _ => Err(RuntimeError::Helper {
                kind: crate::spec::FailureKind::Setup,
                message: "the exec shim ended without an answer".into(),
                causes: vec![String::from_utf8_lossy(&out).into_owned()],
            }),
        }
    }

    /// Starts the spare exec shims, so that the first exec finds one ready.
    pub async fn start_exec_spares(self: &Arc<Self>) -> Result<()> {
        let cg = self.cgroups.clone();
        let shim_cgroup = tokio::task::spawn_blocking(move || cg.shim_cgroup()).await??;
        self.refill_exec_spares(&shim_cgroup);
        Ok(())
    }

    fn refill_exec_spares(self: &Arc<Self>, shim_cgroup: &std::path::Path) {
        let rt = Arc::downgrade(self);
        self.spares.refill(shim_cgroup, move |pid| {
            if let Some(rt) = rt.upgrade() {
                rt.reap_shim("spare", pid);
            }
        });
    }

    /// `hoodyd __exec-shim DIR`: what it wrote on stdout (empty if nothing within 30 s).
    async fn cold_exec_shim(&self, dir: &std::path::Path) -> Result<Vec<u8>> {
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
        if !matches!(read, Ok(Ok(_))) {
            out.clear();
        }
        Ok(out)
    }
}
