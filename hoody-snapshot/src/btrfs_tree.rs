//! Removing a btrfs subvolume together with every subvolume nested in it, found and destroyed
//! by id (the root tree's ROOT_REF items, `SNAP_DESTROY_V2` with `SPEC_BY_ID`): no path inside
//! the tree is ever walked, so a tenant's symlinks cannot point the daemon at another tree, and
//! a subvolume made inside a container (which seccomp refuses, but the host or an old kernel
//! may not) cannot make its root undeletable.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::sys;

/// Deeper nesting than this is refused rather than followed (each level costs a stack frame).
const MAX_DEPTH: usize = 256;

fn destroy_by_id(fs: BorrowedFd<'_>, id: u64, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!("subvolumes nested more than {MAX_DEPTH} deep")));
    }
    for child in sys::subvol_children(fs, id)? {
        destroy_by_id(fs, child, depth + 1)?;
    }
    match sys::subvol_destroy_by_id(fs, id) {
        // Already gone (a retry after a partial delete): what was asked holds.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// Deletes the subvolume at `path` (a path the host owns, not followed) and every subvolume
/// nested in it, deepest first.
pub(crate) fn destroy(path: &Path) -> Result<()> {
    let id = {
        let fd = crate::dirfd::open_dir(path)?;
        crate::quota_sys::btrfs_subvol_id(fd.as_fd()).map_err(StorageError::io("look up subvolume id", path))?
    };
    let parent = crate::dirfd::open_dir(path.parent().expect("pool paths have a parent"))?;
    destroy_by_id(parent.as_fd(), id, 0).map_err(StorageError::io("delete subvolume", path))?;
    tracing::debug!(path = %path.display(), id, "btrfs subvolume deleted with what was nested in it");
    Ok(())
}
