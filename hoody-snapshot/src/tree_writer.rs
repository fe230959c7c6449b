//! Writing a file tree into an image root without ever leaving it.
//!
//! Every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the tree
//! (absolute or full of `..`) resolves *inside* the root, and every leaf is created relative to
//! that parent fd without following it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `O_EXCL`). Device
//! nodes and sockets are skipped and reported; ids outside the container range become 65534.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, fchmod, mkdirat, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

use crate::error::{Result, StorageError};
use crate::relpath::RelPath;
use crate::{ID_RANGE, OVERFLOW_ID};

/// Whether entry owners are applied. `Preserve` needs CAP_CHOWN (the daemon); `Ignore` lets
/// unprivileged unit tests exercise the path handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerPolicy {
    Preserve,
    Ignore,
}

/// Metadata of one entry, as found in the archive or source tree.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
}

/// What an import did, returned to the API caller as it is.
pub use hoody_api::images::ImportReport;

pub struct SafeTreeWriter {
    root: OwnedFd,
    root_path: PathBuf,
    owners: OwnerPolicy,
    dir_times: Vec<(PathBuf, i64)>,
    pub report: ImportReport,
}

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_IN_ROOT.union(ResolveFlag::RESOLVE_NO_MAGICLINKS).union(ResolveFlag::RESOLVE_NO_XDEV);

impl SafeTreeWriter {
    /// Opens `root` (an existing, empty directory) as the confinement root.
    pub fn new(root: &Path, owners: OwnerPolicy) -> Result<Self> {
        let fd = openat(nix::fcntl::AT_FDCWD, root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| StorageError::io("open image root", root)(e.into()))?;
        Ok(SafeTreeWriter { root: fd, root_path: root.to_path_buf(), owners, dir_times: Vec::new(), report: ImportReport::default() })
    }

    fn err(&self, op: &'static str, rel: &Path) -> impl FnOnce(Errno) -> StorageError {
        let path = self.root_path.join(rel);
        move |e| StorageError::Io { op, path, source: e.into() }
    }

    /// Opens the directory `rel` inside the root, creating missing components (mode 0755).
    fn dir_fd(&mut self, rel: Option<&Path>) -> Result<OwnedFd> {
        let rel = match rel {
            None => Path::new("."),
            Some(r) => r,
        };
        let how = || OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(RESOLVE);
        match openat2(self.root.as_fd(), rel, how()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.err("resolve directory", rel)(e)),
        }
        // Create the missing components one by one, each resolved from the root again.
        let mut cur = PathBuf::new();
        for comp in rel.components() {
            let parent = openat2(self.root.as_fd(), if cur.as_os_str().is_empty() { Path::new(".") } else { &cur }, how())
                .map_err(self.err("resolve directory", &cur))?;
            match mkdirat(parent.as_fd(), comp.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) => self.report.directories += 1,
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(self.err("create directory", &cur.join(comp))(e)),
            }
            cur.push(comp);
        }
        openat2(self.root.as_fd(), rel, how()).map_err(self.err("resolve directory", rel))
    }

    fn ids(&mut self, meta: &Meta) -> (u32, u32) {
        let clamp = |v: u64| {
            if v < u64::from(ID_RANGE) { v as u32 } else { OVERFLOW_ID }
        };
        let (u, g) = (clamp(meta.uid), clamp(meta.gid));
        if u64::from(u) != meta.uid || u64::from(g) != meta.gid {
            self.report.clamped_owners += 1;
        }
        (u, g)
    }

    fn chown(&mut self, parent: &OwnedFd, name: &OsStr, rel: &Path, meta: &Meta) -> Result<()> {
        if self.owners == OwnerPolicy::Ignore {
            return Ok(());
        }
        let (u, g) = self.ids(meta);
        fchownat(parent.as_fd(), name, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(self.err("chown", rel))
    }

    fn set_mtime(&self, parent: &OwnedFd, name: &OsStr, rel: &Path, mtime: i64) -> Result<()> {
        let t = TimeSpec::new(mtime, 0);
        utimensat(parent.as_fd(), name, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(self.err("set times", rel))
    }

    /// Removes a non-directory leaf so that a later archive entry replaces an earlier one.
    fn clear_leaf(&self, parent: &OwnedFd, name: &OsStr, rel: &Path) -> Result<()> {
        match unlinkat(parent.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(Errno::EISDIR) => {
                Err(StorageError::UnsafeEntry { entry: rel.to_string_lossy().into_owned(), reason: "replaces a directory" })
            }
            Err(e) => Err(self.err("replace entry", rel)(e)),
        }
    }

    pub fn dir(&mut self, rel: &RelPath, meta: &Meta) -> Result<()> {
        let parent = self.dir_fd(rel.parent())?;
        let name = rel.file_name();
        match mkdirat(parent.as_fd(), name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => self.report.directories += 1,
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.err("create directory", rel.as_path())(e)),
        }
        // Open it without following: an existing symlink with this name is an error, not a path.
        let fd = openat(parent.as_fd(), name, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(self.err("open directory", rel.as_path()))?;
        self.chown(&parent, name, rel.as_path(), meta)?;
        fchmod(fd.as_fd(), Mode::from_bits_truncate(meta.mode & 0o7777)).map_err(self.err("chmod", rel.as_path()))?;
        self.dir_times.push((rel.as_path().to_path_buf(), meta.mtime));
        Ok(())
    }

    pub fn file(&mut self, rel: &RelPath, meta: &Meta, content: &mut dyn Read) -> Result<()> {
        let parent = self.dir_fd(rel.parent())?;
        let name = rel.file_name();
        self.clear_leaf(&parent, name, rel.as_path())?;
        let fd = openat(
            parent.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(self.err("create file", rel.as_path()))?;
        let mut f = File::from(fd);
        let n = io::copy(content, &mut f).map_err(StorageError::Archive)?;
        self.chown(&parent, name, rel.as_path(), meta)?;
        fchmod(f.as_fd(), Mode::from_bits_truncate(meta.mode & 0o7777)).map_err(self.err("chmod", rel.as_path()))?;
        self.set_mtime(&parent, name, rel.as_path(), meta.mtime)?;
        self.report.files += 1;
        self.report.bytes += n;
        Ok(())
    }

    pub fn symlink(&mut self, rel: &RelPath, target: &OsStr, meta: &Meta) -> Result<()> {
        let parent = self.dir_fd(rel.parent())?;
        let name = rel.file_name();
        self.clear_leaf(&parent, name, rel.as_path())?;
        symlinkat(target, parent.as_fd(), name).map_err(self.err("create symlink", rel.as_path()))?;
        self.chown(&parent, name, rel.as_path(), meta)?;
        self.set_mtime(&parent, name, rel.as_path(), meta.mtime)?;
        self.report.symlinks += 1;
        Ok(())
    }

    /// A hard link to `target`, an earlier entry of the same tree (resolved inside the root).
    pub fn hardlink(&mut self, rel: &RelPath, target: &RelPath) -> Result<()> {
        let tparent = self.dir_fd(target.parent())?;
        let parent = self.dir_fd(rel.parent())?;
        let name = rel.file_name();
        self.clear_leaf(&parent, name, rel.as_path())?;
        linkat(tparent.as_fd(), target.file_name(), parent.as_fd(), name, AtFlags::empty())
            .map_err(self.err("create hard link", rel.as_path()))?;
        self.report.hardlinks += 1;
        Ok(())
    }

    pub fn fifo(&mut self, rel: &RelPath, meta: &Meta) -> Result<()> {
        let parent = self.dir_fd(rel.parent())?;
        let name = rel.file_name();
        self.clear_leaf(&parent, name, rel.as_path())?;
        mknodat(parent.as_fd(), name, SFlag::S_IFIFO, Mode::from_bits_truncate(meta.mode & 0o777), 0)
            .map_err(self.err("create fifo", rel.as_path()))?;
        self.chown(&parent, name, rel.as_path(), meta)?;
        Ok(())
    }

    /// Records an entry that was deliberately not written.
    pub fn skip(&mut self, raw: &Path, why: &str) {
        self.report.skipped.push(format!("{}: {why}", raw.to_string_lossy()));
    }

    /// Applies directory modification times (deferred, since children change them).
    pub fn finish(mut self) -> Result<ImportReport> {
        let times = std::mem::take(&mut self.dir_times);
        for (rel, mtime) in times.iter().rev() {
            let rel = RelPath::sanitize(rel)?.expect("recorded directories are never the root");
            let parent = self.dir_fd(rel.parent())?;
            self.set_mtime(&parent, rel.file_name(), rel.as_path(), *mtime)?;
        }
        Ok(self.report)
    }
}
