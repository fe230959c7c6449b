//! Thawing a container's whole cgroup subtree. After a daemon restart no operation is live, so
//! any `cgroup.freeze` of 1 there is a leftover (a crash while a snapshot froze it) — at every
//! level: a child the tenant made and froze would keep its processes stopped past the parent's
//! thaw. The subtree is the tenant's to shape, so the walk is bounded in depth and size and
//! follows nothing but directories (cgroupfs has no symlinks; none is followed anyway).

use std::fs;
use std::path::{Path, PathBuf};

use super::{CgroupError, Result};

const MAX_DEPTH: usize = 32;
const MAX_CGROUPS: usize = 10_000;

/// Writes 0 to every `cgroup.freeze` that holds 1 in `top` and below; returns how many.
pub(super) fn thaw_tree(top: &Path) -> Result<usize> {
    let mut thawed = 0;
    let mut seen = 0;
    let mut stack: Vec<(PathBuf, usize)> = vec![(top.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        seen += 1;
        if seen > MAX_CGROUPS {
            return Err(CgroupError::Io {
                op: "walk (too many cgroups)",
                path: top.into(),
                source: std::io::ErrorKind::OutOfMemory.into(),
            });
        }
        let freeze = dir.join("cgroup.freeze");
        if fs::read_to_string(&freeze).is_ok_and(|v| v.trim() == "1") {
            super::knob::write(&freeze, "0")?;
            thawed += 1;
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    Ok(thawed)
}
