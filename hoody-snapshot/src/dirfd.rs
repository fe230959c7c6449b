//! Directories of the pool, opened as descriptors (never through a symlink).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use crate::error::{Result, StorageError};

pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd> {
    open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| StorageError::io("open directory", path)(e.into()))
}
