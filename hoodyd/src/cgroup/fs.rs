//! The kernel implementation of [`CgroupOps`] over a cgroup2 directory. Files are always
//! opened without O_CREAT: writing a name that does not exist must fail, never create a file
//! (on a host where the path is a tmpfs that would silently "succeed").

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
use tracing::{debug, warn};

use super::knob::write;
use super::{CgroupError, CgroupOps, Result, Usage};
use crate::limits::Limits;

pub struct CgroupFs {
    root: PathBuf,
    controllers: BTreeSet<String>,
}

const WANTED: &[&str] = &["cpu", "memory", "pids"];

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Io { op: "read", path: path.into(), source })
}

/// `key value` lines (cgroup.events, memory.events, cpu.stat) → value of `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

impl CgroupFs {
    /// Opens (creating if needed) `root`, which must be on cgroup2, and enables the cpu, memory
    /// and pids controllers for its children wherever the hierarchy offers them.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.exists() {
            let parent = root.parent().unwrap_or(Path::new("/"));
            if !is_cgroup2(parent) {
                return Err(CgroupError::NotCgroup2(parent.into()));
            }
            fs::create_dir(root).map_err(|source| CgroupError::Io { op: "create cgroup", path: root.into(), source })?;
        }
        if !is_cgroup2(root) {
            return Err(CgroupError::NotCgroup2(root.into()));
        }
        enable_along(root);
        let controllers: BTreeSet<String> = read(&root.join("cgroup.subtree_control"))?.split_whitespace().map(str::to_owned).collect();
        debug!(root = %root.display(), controllers = %controllers.iter().cloned().collect::<Vec<String>>().join(","), "cgroup root ready");
        Ok(CgroupFs { root: root.into(), controllers })
    }

    fn wait_populated(&self, id: &str, want: bool, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.populated(id)?;
            if p == want || Instant::now() >= deadline {
                return Ok(p == want);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn words(path: &Path) -> BTreeSet<String> {
    read(path).map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// Enables the wanted controllers for the children of every cgroup from the top of the
/// hierarchy down to `root` (a cgroup can only offer its children what its parent enabled for
/// it). A level that refuses — it holds processes of its own, or is not ours to change — is
/// logged; the controllers `root` ends up with are what containers get, and a limit that needs
/// a missing one is refused by name.
fn enable_along(root: &Path) {
    let mut chain = vec![root.to_path_buf()];
    while let Some(parent) = chain.last().and_then(|p| p.parent()).filter(|p| is_cgroup2(p)) {
        chain.push(parent.to_path_buf());
    }
    for dir in chain.iter().rev() {
        let available = words(&dir.join("cgroup.controllers"));
        let enabled = words(&dir.join("cgroup.subtree_control"));
        let missing: Vec<String> =
            WANTED.iter().filter(|c| available.contains(**c) && !enabled.contains(**c)).map(|c| format!("+{c}")).collect();
        if missing.is_empty() {
            continue;
        }
        match write(&dir.join("cgroup.subtree_control"), &missing.join(" ")) {
            Ok(()) => debug!(cgroup = %dir.display(), enabled = %missing.join(" "), "controllers enabled for children"),
            Err(e) => {
                warn!(cgroup = %dir.display(), wanted = %missing.join(" "), error = %crate::errors::chain(&e).join(": "), "could not enable controllers")
            }
        }
    }
}

pub fn is_cgroup2(path: &Path) -> bool {
    statfs(path).map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

/// Removes an emptied cgroup and the cgroups below it (an exec's `exec-<id>`), deepest first.
fn remove_tree(p: &Path) -> Result<()> {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path())?;
            }
        }
    }
    match fs::remove_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CgroupError::Io { op: "remove cgroup", path: p.to_path_buf(), source }),
    }
}

impl CgroupOps for CgroupFs {
    fn path(&self, id: &str) -> PathBuf {
        if id.is_empty() { self.root.clone() } else { self.root.join(id) }
    }

    fn controllers(&self) -> BTreeSet<String> {
        self.controllers.clone()
    }

    fn create(&self, id: &str, limits: &Limits) -> Result<PathBuf> {
        self.check_limits(limits)?;
        let p = self.path(id);
        if p.exists() {
            self.remove(id)?;
        }
        fs::create_dir(&p).map_err(|source| CgroupError::Io { op: "create cgroup", path: p.clone(), source })?;
        if let Err(e) = self.apply_limits(id, limits) {
            let _ = fs::remove_dir(&p);
            return Err(e);
        }
        Ok(p)
    }

    fn apply_limits(&self, id: &str, limits: &Limits) -> Result<()> {
        self.check_limits(limits)?;
        let p = self.path(id);
        if let Some(m) = limits.memory {
            write(&p.join("memory.max"), &m.to_string())?;
            if p.join("memory.swap.max").exists() {
                write(&p.join("memory.swap.max"), &limits.swap.unwrap_or(0).to_string())?;
            }
        }
        if let Some(c) = limits.cpus {
            let (quota, period) = Limits::cpu_max(c);
            write(&p.join("cpu.max"), &format!("{quota} {period}"))?;
        }
        if let Some(n) = limits.pids {
            write(&p.join("pids.max"), &n.to_string())?;
        }
        Ok(())
    }

    fn kill(&self, id: &str) -> Result<()> {
        write(&self.path(id).join("cgroup.kill"), "1")
    }

    fn freeze(&self, id: &str, frozen: bool) -> Result<()> {
        let p = self.path(id);
        write(&p.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let want = u64::from(frozen);
        loop {
            if keyed(&read(&p.join("cgroup.events"))?, "frozen") == Some(want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(CgroupError::Io { op: "wait for freeze state", path: p, source: std::io::ErrorKind::TimedOut.into() });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn thaw_tree(&self, id: &str) -> Result<usize> {
        let p = self.path(id);
        if !p.exists() {
            return Ok(0);
        }
        super::thaw::thaw_tree(&p)
    }

    fn populated(&self, id: &str) -> Result<bool> {
        Ok(keyed(&read(&self.path(id).join("cgroup.events"))?, "populated") == Some(1))
    }

    fn remove(&self, id: &str) -> Result<()> {
        let p = self.path(id);
        if !p.exists() {
            return Ok(());
        }
        if self.populated(id)? {
            self.kill(id)?;
            if !self.wait_populated(id, false, Duration::from_secs(10))? {
                return Err(CgroupError::Busy(p));
            }
        }
        remove_tree(&p)
    }

    fn usage(&self, id: &str) -> Usage {
        let p = self.path(id);
        let num = |f: &str| fs::read_to_string(p.join(f)).ok().and_then(|s| s.trim().parse().ok());
        let cpu_stat = fs::read_to_string(p.join("cpu.stat")).ok();
        Usage {
            memory_bytes: num("memory.current"),
            memory_peak_bytes: num("memory.peak"),
            cpu_usage_usec: cpu_stat.as_deref().and_then(|s| keyed(s, "usage_usec")),
            cpu_throttled_usec: cpu_stat.as_deref().and_then(|s| keyed(s, "throttled_usec")),
            pids: num("pids.current"),
            oom_kills: fs::read_to_string(p.join("memory.events")).ok().and_then(|s| keyed(&s, "oom_kill")),
        }
    }

    fn shim_cgroup(&self) -> Result<PathBuf> {
        let p = self.root.join(SHIMS);
        match fs::create_dir(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(p),
            Err(source) => Err(CgroupError::Io { op: "create cgroup", path: p, source }),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut out = vec![];
        for e in fs::read_dir(&self.root).map_err(|source| CgroupError::Io { op: "read", path: self.root.clone(), source })?.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                && let Some(n) = e.file_name().to_str()
                && n != SHIMS
            {
                out.push(n.to_owned());
            }
        }
        Ok(out)
    }
}

/// Name of the shims' cgroup under the root (never a container id: those are hex).
const SHIMS: &str = "shims";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values() {
        let ev = "populated 1\nfrozen 0\n";
        assert_eq!(keyed(ev, "populated"), Some(1));
        assert_eq!(keyed(ev, "frozen"), Some(0));
        assert_eq!(keyed("oom 2\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(keyed("oom 2\noom_kill 3\n", "oom"), Some(2));
    }
}
