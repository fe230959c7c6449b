//! Spawning the single-threaded helper (a re-exec of this binary) for namespace work, so that no
//! clone/unshare/setns ever runs on a tokio worker thread.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::spec::{ExecSpec, HelperReply, StartSpec};
use super::{Result, Runtime, RuntimeError, io_err};
use crate::helper::exec::SPEC_ENV;

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
                kind: super::spec::FailureKind::Setup,
                message: format!("the start helper ended with {status} without an answer"),
                causes: vec![String::from_utf8_lossy(&out).into_owned()],
            }),
        }
    }

    /// Spawns `hoodyd __exec` with piped stdio.
    pub(crate) fn spawn_exec(&self, spec: &ExecSpec) -> Result<Child> {
        self.helper("__exec")
            .env(SPEC_ENV, serde_json::to_string(spec).expect("spec serialises"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err("spawn the exec helper"))
    }
}
