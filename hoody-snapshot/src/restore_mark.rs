//! The mark a restore leaves on the root it prepares, so that the start after a crash can tell
//! whether the swap happened: the prepared root carries `trusted.hoody.restore = TOKEN` (the
//! token the runtime recorded with its restore intent) until the restore is finished. A
//! `trusted.*` attribute needs CAP_SYS_ADMIN in the host's user namespace: a tenant can neither
//! read nor forge it.

use std::ffi::CStr;
use std::os::fd::AsFd;
use std::path::Path;

use crate::dirfd::open_dir;
use crate::error::{Result, StorageError};
use crate::sys;

const NAME: &CStr = c"trusted.hoody.restore";

/// Marks the directory `dir` (the root of a prepared restore) with `token`.
pub(crate) fn set(dir: &Path, token: &str) -> Result<()> {
    let fd = open_dir(dir)?;
    sys::fsetxattr(fd.as_fd(), NAME, token.as_bytes()).map_err(StorageError::io("mark the prepared root", dir))
}

/// True when `dir` carries the mark `token`.
pub(crate) fn has(dir: &Path, token: &str) -> bool {
    let Ok(fd) = open_dir(dir) else { return false };
    let mut buf = [0u8; 128];
    sys::fgetxattr(fd.as_fd(), NAME, &mut buf).is_some_and(|n| &buf[..n] == token.as_bytes())
}

/// Removes the mark from `dir` (absent is fine).
pub(crate) fn clear(dir: &Path) -> Result<()> {
    let fd = open_dir(dir)?;
    sys::fremovexattr(fd.as_fd(), NAME).map_err(StorageError::io("clear the restore mark", dir))
}
