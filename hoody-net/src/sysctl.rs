//! Sysctls of the calling thread's network namespace (`/proc/sys/net/…` shows the namespace of
//! whoever opens it), behind a seam.

use crate::error::{NetError, Result};

pub trait SysctlOps {
    /// Writes `value` to `/proc/sys/<key>` (key with slashes, e.g. `net/ipv4/ip_forward`).
    fn set(&mut self, key: &str, value: &str) -> Result<()>;
}

/// The real /proc/sys (root passed in).
pub struct ProcSys {
    pub root: std::path::PathBuf,
}

impl Default for ProcSys {
    fn default() -> Self {
        ProcSys { root: "/proc/sys".into() }
    }
}

impl SysctlOps for ProcSys {
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let p = self.root.join(key);
        // Open without O_CREAT: a missing sysctl is an error, not a new file.
        let r = std::fs::OpenOptions::new().write(true).open(&p).and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
        r.map_err(|source| NetError::Io { op: "write sysctl", target: p.display().to_string(), source })?;
        tracing::debug!(key, value, "sysctl set");
        Ok(())
    }
}

#[derive(Default)]
pub struct RecordingSysctl {
    pub calls: Vec<String>,
}

impl SysctlOps for RecordingSysctl {
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.calls.push(format!("{key}={value}"));
        Ok(())
    }
}
