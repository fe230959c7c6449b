//! Where the daemon and its containers sit in the cgroup v2 tree.
//!
//! cgroup v2 lets only leaves hold processes once controllers are enabled for children ("no
//! internal processes"). When the containers' root lies inside the daemon's own cgroup, the
//! daemon first moves itself (and anything else in its cgroup) into a leaf beside them,
//! `<own>/daemon`, so that controllers can be enabled along the path. (A supervisor that starts
//! the next daemon in the root of that cgroup again will be refused by the kernel: under
//! systemd the containers go in a delegated cgroup of their own, hoody-containers.service.)

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{debug, info};

use super::fs::is_cgroup2;
use super::{CgroupError, Result};

/// The leaf the daemon moves into when the containers' root is inside its own cgroup.
pub const DAEMON_LEAF: &str = "daemon";

/// The cgroup v2 path of process `pid` (`0::/path` of `/proc/PID/cgroup`) under `mount`.
pub fn cgroup_of(proc_root: &Path, pid: &str, mount: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(proc_root.join(pid).join("cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(rel.trim_start_matches('/')))
}

/// Where the unified hierarchy is mounted: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid hosts.
pub fn unified_mount(sys_fs_cgroup: &Path) -> PathBuf {
    if !is_cgroup2(sys_fs_cgroup) && is_cgroup2(&sys_fs_cgroup.join("unified")) {
        sys_fs_cgroup.join("unified")
    } else {
        sys_fs_cgroup.into()
    }
}

/// The default containers' root: `hoody.slice` at the top of the unified hierarchy. Under
/// systemd the unit passes `--cgroup-root` inside hoody-containers.service, a delegated cgroup
/// of its own: containers cannot live in hoodyd.service's cgroup, because systemd attaches a
/// restarted daemon to the root of its unit's cgroup, which cgroup v2 refuses once controllers
/// are enabled there.
pub fn default_root(mount: &Path) -> PathBuf {
    mount.join("hoody.slice")
}

/// Moves every process of `own` into `own/daemon` when `root` lies inside `own` (and `own` is
/// not the top of the hierarchy, which is exempt). Returns the leaf when it moved anything.
pub fn leave_subtree(root: &Path, own: &Path, mount: &Path) -> Result<Option<PathBuf>> {
    if own == mount || !root.starts_with(own) {
        return Ok(None);
    }
    let leaf = own.join(DAEMON_LEAF);
    if root.starts_with(&leaf) {
        return Ok(None); // already moved (the root was given inside the leaf: nothing to do)
    }
    if !leaf.exists() {
        fs::create_dir(&leaf).map_err(|source| CgroupError::Io { op: "create the daemon's leaf cgroup", path: leaf.clone(), source })?;
    }
    let procs = own.join("cgroup.procs");
    let pids = fs::read_to_string(&procs).map_err(|source| CgroupError::Io { op: "read", path: procs.clone(), source })?;
    let target = leaf.join("cgroup.procs");
    for pid in pids.split_whitespace() {
        let mut f = fs::OpenOptions::new().write(true).open(&target).map_err(|source| CgroupError::Io {
            op: "open",
            path: target.clone(),
            source,
        })?;
        match f.write_all(pid.as_bytes()) {
            Ok(()) => debug!(pid, cgroup = %leaf.display(), "moved into the daemon's leaf"),
            // A process that exited meanwhile is gone from both lists.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(source) => return Err(CgroupError::Io { op: "move a process into", path: target, source }),
        }
    }
    info!(from = %own.display(), to = %leaf.display(), "the daemon left its containers' subtree");
    Ok(Some(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_own_cgroup() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("42")).unwrap();
        fs::write(d.path().join("42/cgroup"), "0::/system.slice/hoodyd.service\n").unwrap();
        assert_eq!(
            cgroup_of(d.path(), "42", Path::new("/sys/fs/cgroup")),
            Some(PathBuf::from("/sys/fs/cgroup/system.slice/hoodyd.service"))
        );
        fs::write(d.path().join("42/cgroup"), "12:pids:/x\n1:name=systemd:/y\n0::/\n").unwrap();
        assert_eq!(cgroup_of(d.path(), "42", Path::new("/sys/fs/cgroup/unified")), Some(PathBuf::from("/sys/fs/cgroup/unified/")));
        assert_eq!(cgroup_of(d.path(), "43", Path::new("/m")), None);
    }

    #[test]
    fn roots_outside_own_cgroup_move_nothing() {
        let m = Path::new("/sys/fs/cgroup");
        assert_eq!(leave_subtree(&m.join("hoody.slice"), &m.join("system.slice/x.service"), m).unwrap(), None);
        assert_eq!(leave_subtree(&m.join("hoody.slice"), m, m).unwrap(), None, "the top of the hierarchy is exempt");
        let own = m.join("system.slice/x.service");
        assert_eq!(leave_subtree(&own.join("daemon/containers"), &own, m).unwrap(), None);
        assert_eq!(default_root(m), m.join("hoody.slice"));
    }
}
