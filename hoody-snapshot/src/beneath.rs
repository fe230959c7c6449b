//! Reading a tree the tenant can write, without ever leaving it or blocking on it.
//!
//! A [`Beneath`] holds a directory fd on the tree's root; every path inside is resolved by the
//! kernel beneath it with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`,
//! so a component swapped for a symlink (or `..`) fails the lookup instead of leading out. An
//! entry is looked at through an `O_PATH | O_NOFOLLOW` descriptor (which opens nothing: no FIFO,
//! device or symlink is ever opened for I/O), and its content is read only through
//! [`Beneath::open_regular`], which opens with `O_NONBLOCK | O_NOCTTY` and accepts the result
//! only when fstat says it is the same regular file. Directories are opened `O_DIRECTORY`, which
//! fails on anything else before it is opened.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

const RESOLVE: ResolveFlag = ResolveFlag::RESOLVE_BENEATH.union(ResolveFlag::RESOLVE_NO_SYMLINKS).union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// A tree whose content is not trusted, opened at its root.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
    dev: u64,
}

/// An entry of the tree: its metadata and an `O_PATH` descriptor on exactly that inode.
#[derive(Debug)]
pub struct Node {
    fd: File,
    pub md: fs::Metadata,
}

fn dot(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() { Path::new(".") } else { rel }
}

fn open_at(dir: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW).resolve(RESOLVE);
    Ok(openat2(dir, dot(rel), how)?)
}

impl Beneath {
    /// Opens the tree at `root` (a path the host owns; its last component is not followed).
    pub fn open(root: &Path) -> io::Result<Self> {
        let fd: OwnedFd =
            nix::fcntl::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
        let dev = File::from(fd.try_clone()?).metadata()?.dev();
        Ok(Beneath { root: fd, dev })
    }

    /// The device of the root: an entry on another device is a mount or a nested subvolume.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// The entry at `rel` (empty: the root), not followed if it is a symlink.
    pub fn node(&self, rel: &Path) -> io::Result<Node> {
        let fd = File::from(open_at(self.root.as_fd(), rel, OFlag::O_PATH)?);
        let md = fd.metadata()?;
        Ok(Node { fd, md })
    }

    /// Opens directory `rel` for reading its entries (fails on anything but a directory).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        open_at(self.root.as_fd(), rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
    }

    /// Names in directory `rel`, without `.` and `..`.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let mut dir = nix::dir::Dir::from_fd(self.open_dir(rel)?)?;
        let mut out = vec![];
        for e in dir.iter() {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(std::ffi::OsStr::from_bytes(name).to_owned());
            }
        }
        Ok(out)
    }

    /// Opens the regular file at `rel` for reading, if it is still the inode `expect` describes.
    /// Opening never blocks (`O_NONBLOCK`: a FIFO swapped in opens at once and is refused here,
    /// never read) and never takes a controlling terminal.
    pub fn open_regular(&self, rel: &Path, expect: &fs::Metadata) -> io::Result<File> {
        if !expect.is_file() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let f = File::from(open_at(self.root.as_fd(), rel, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)?);
        let md = f.metadata()?;
        if !md.is_file() || md.ino() != expect.ino() || md.dev() != expect.dev() {
            return Err(io::Error::other(format!("{} changed while it was read", rel.display())));
        }
        Ok(f)
    }

    /// Extended attributes of directory `rel` (a regular file's are read from the descriptor
    /// [`Beneath::open_regular`] gives; other types have none we keep).
    pub fn xattrs(&self, rel: &Path, md: &fs::Metadata) -> io::Result<Vec<(std::ffi::CString, Vec<u8>)>> {
        if md.is_dir() { crate::sys::fxattrs(self.open_dir(rel)?.as_fd()) } else { Ok(vec![]) }
    }
}

impl Node {
    /// The target of this symlink (of exactly this inode: read through its descriptor).
    pub fn read_link(&self) -> io::Result<PathBuf> {
        Ok(PathBuf::from(nix::fcntl::readlinkat(self.fd.as_fd(), "")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn symlinks_never_lead_out() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside) = (t.path().join("root"), t.path().join("outside"));
        fs::create_dir_all(root.join("d")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("d", root.join("inside")).unwrap();
        let b = Beneath::open(&root).unwrap();
        for p in ["abs/secret", "rel/secret", "inside", "../outside/secret", "d/../../outside/secret"] {
            if p == "inside" {
                // The symlink itself is an entry; going through it is refused.
                assert!(b.node(Path::new(p)).unwrap().md.file_type().is_symlink());
                assert!(b.list(Path::new(p)).is_err());
                continue;
            }
            assert!(b.node(Path::new(p)).is_err(), "{p} resolved");
        }
        assert_eq!(b.node(Path::new("abs")).unwrap().read_link().unwrap(), outside);
        assert!(b.list(Path::new("abs")).is_err(), "a directory symlink is not listed through");
        let mut names = b.list(Path::new("")).unwrap();
        names.sort();
        assert_eq!(names, ["abs", "d", "inside", "rel"]);
    }

    #[test]
    fn fifos_are_never_opened_for_reading() {
        let t = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&t.path().join("p"), Mode::from_bits_truncate(0o644)).unwrap();
        fs::write(t.path().join("f"), b"x").unwrap();
        let b = Beneath::open(t.path()).unwrap();
        let fifo = b.node(Path::new("p")).unwrap();
        assert!(fifo.md.file_type().is_fifo());
        assert!(b.open_regular(Path::new("p"), &fifo.md).is_err());
        // Told it is the regular file f (a swap after the stat): opened without blocking, refused.
        let f = b.node(Path::new("f")).unwrap();
        fs::remove_file(t.path().join("f")).unwrap();
        nix::unistd::mkfifo(&t.path().join("f"), Mode::from_bits_truncate(0o644)).unwrap();
        assert!(b.open_regular(Path::new("f"), &f.md).is_err());
        assert!(b.open_dir(Path::new("p")).is_err());
    }
}
