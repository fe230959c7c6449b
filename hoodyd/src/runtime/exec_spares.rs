//! Warm exec shims. Starting an exec's shim cold costs an exec of the daemon's own (large)
//! binary, its dynamic loading and a birth in the shims' cgroup, all before the command can
//! run. A spare is a shim started ahead of time (`hoodyd __exec-shim --spare SHIMS_CGROUP`):
//! already in the shims' cgroup, it waits on its stdin for the directory of the exec it is to
//! keep, then goes on exactly as a cold shim does with that directory. An exec takes a spare
//! when one is ready (and a new one is started behind it), else starts a shim cold.
//!
//! A spare holds nothing of any container until it is handed a directory; it ends when its
//! stdin closes (the daemon is gone), so spares never outlive the daemon that started them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};

use crate::helper::exec_shim::ShimReady;

/// Spares kept ready.
pub(super) const SPARES: usize = 2;

/// A shim waiting for its exec.
struct Spare {
    pid: i32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What handing a directory to a spare gave.
pub(super) enum Handed {
    /// The spare took it: its answer line (read to the end of its stdout).
    Answer(Vec<u8>),
    /// The spare had ended before it could take the directory: start a shim cold.
    Gone,
}

/// The spares ready and being started.
#[derive(Default)]
struct Pool {
    idle: Vec<Spare>,
    starting: usize,
}

/// The daemon's spares.
pub struct Spares {
    helper: PathBuf,
    /// How many to keep ready.
    kept: usize,
    pool: Mutex<Pool>,
}

impl Spares {
    pub(super) fn new(helper: PathBuf, kept: usize) -> Arc<Spares> {
        Arc::new(Spares { helper, kept, pool: Mutex::default() })
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `dir` to a ready spare, if there is one; `None`: none was ready.
    pub(super) async fn hand(&self, dir: &Path) -> Option<Handed> {
        let mut spare = self.pool().idle.pop()?;
        let mut line = dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        if spare.stdin.write_all(&line).await.is_err() || spare.stdin.flush().await.is_err() {
            return Some(Handed::Gone);
        }
        drop(spare.stdin);
        let mut out = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), spare.stdout.read_to_end(&mut out)).await;
        if !matches!(read, Ok(Ok(_))) {
            out.clear();
        }
        Some(Handed::Answer(out))
    }

    /// Starts spares in the background until `kept` are ready or starting. `reap` is given
    /// each spare's pid as it becomes ready, so that its end is collected (by this daemon, the
    /// subreaper it is re-parented to) whatever it served.
    pub(super) fn refill(self: &Arc<Self>, shim_cgroup: &Path, reap: impl Fn(i32) + Send + Sync + Clone + 'static) {
        let missing = {
            let mut pool = self.pool();
            let n = self.kept.saturating_sub(pool.idle.len() + pool.starting);
            pool.starting += n;
            n
        };
        for _ in 0..missing {
            let (me, cgroup, reap) = (self.clone(), shim_cgroup.to_owned(), reap.clone());
            tokio::spawn(async move {
                let spare = me.start(&cgroup).await;
                if let Ok(s) = &spare {
                    reap(s.pid);
                }
                let mut pool = me.pool();
                pool.starting -= 1;
                match spare {
                    Ok(s) => pool.idle.push(s),
                    Err(e) => tracing::debug!(error = %e, "an exec spare did not start"),
                }
            });
        }
    }

    async fn start(&self, shim_cgroup: &Path) -> std::io::Result<Spare> {
        let mut child = Command::new(&self.helper)
            .arg0("hoodyd")
            .arg("__exec-shim")
            .arg("--spare")
            .arg(shim_cgroup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(false)
            .spawn()?;
        let (stdin, stdout) = (child.stdin.take().expect("piped"), child.stdout.take().expect("piped"));
        // The process spawned only starts the spare in the shims' cgroup and exits.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        tokio::time::timeout(std::time::Duration::from_secs(30), stdout.read_line(&mut first))
            .await
            .map_err(|_| std::io::Error::other("no answer in 30 s"))??;
        match serde_json::from_str::<ShimReady>(&first) {
            Ok(ShimReady::Spare { shim_pid }) => Ok(Spare { pid: shim_pid, stdin, stdout }),
            Ok(ShimReady::Failed { message }) => Err(std::io::Error::other(message)),
            _ => Err(std::io::Error::other(format!("unexpected first line {first:?}"))),
        }
    }
}
