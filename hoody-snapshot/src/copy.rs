//! Copying a file tree exactly: types, modes, owners, extended attributes (overlay's opaque
//! markers among them), whiteouts (0/0 character devices), hard links, times. Regular files are
//! reflinked where the file system can, copied otherwise. Symlinks are never followed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};

use crate::beneath::Beneath;
use crate::error::{Result, StorageError};
use crate::sys;

/// What a copy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub entries: u64,
    pub bytes: u64,
    pub reflinked: u64,
}

fn copy_file(s: File, dst: &Path, mode: u32, stats: &mut CopyStats) -> io::Result<()> {
    let d = File::options().write(true).create_new(true).mode(mode & 0o777).custom_flags(libc::O_NOFOLLOW).open(dst)?;
    if sys::ficlone(d.as_fd(), s.as_fd()).is_ok() {
        stats.reflinked += 1;
    } else {
        copy_sparse(&s, &d)?;
    }
    Ok(())
}

/// Copies only the data segments of `s` (SEEK_DATA / SEEK_HOLE), then sets the size: holes stay
/// holes, so a 2 GiB sparse file costs what it holds, not 2 GiB. Where the file system cannot
/// tell holes, the whole file is one data segment.
fn copy_sparse(s: &File, d: &File) -> io::Result<()> {
    use nix::unistd::{Whence, lseek};
    use std::os::unix::fs::FileExt;
    let len = s.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let data = match lseek(s.as_fd(), off as i64, Whence::SeekData) {
            Ok(p) => p as u64,
            Err(nix::errno::Errno::ENXIO) => break, // only a hole is left
            Err(e) => return Err(e.into()),
        };
        let hole = (lseek(s.as_fd(), data as i64, Whence::SeekHole)? as u64).min(len);
        let mut at = data;
        while at < hole {
            let want = ((hole - at) as usize).min(buf.len());
            let n = s.read_at(&mut buf[..want], at)?;
            if n == 0 {
                break; // the file shrank while it was copied
            }
            d.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
        off = hole.max(data + 1);
    }
    d.set_len(len)
}

/// Copies the tree at `src` to `dst` (which must not exist). The source may be a tenant's
/// (an overlay upper directory): it is read only beneath its root, without following any
/// symlink, opening only directories and regular files (see [`Beneath`]). The destination is
/// the daemon's own, fresh directory.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<CopyStats> {
    let tree = Beneath::open(src).map_err(StorageError::io("open directory", src))?;
    let mut c = Copier { tree: &tree, src, stats: CopyStats::default(), links: HashMap::new(), dirs: vec![] };
    c.entry(Path::new(""), dst)?;
    // Directory times last: filling a directory changes them.
    for (d, md) in c.dirs.iter().rev() {
        let (a, m) = (TimeSpec::new(md.atime(), md.atime_nsec()), TimeSpec::new(md.mtime(), md.mtime_nsec()));
        utimensat(nix::fcntl::AT_FDCWD, d.as_path(), &a, &m, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| StorageError::io("set times", d)(e.into()))?;
    }
    Ok(c.stats)
}

struct Copier<'a> {
    tree: &'a Beneath,
    src: &'a Path,
    stats: CopyStats,
    links: HashMap<(u64, u64), PathBuf>,
    dirs: Vec<(PathBuf, fs::Metadata)>,
}

impl Copier<'_> {
    fn entry(&mut self, rel: &Path, dst: &Path) -> Result<()> {
        let src = self.src.join(rel);
        let node = self.tree.node(rel).map_err(StorageError::io("stat", &src))?;
        let md = node.md.clone();
        let ft = md.file_type();
        let err = |op| StorageError::io(op, dst);
        if !ft.is_dir() && md.nlink() > 1 {
            if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, dst).map_err(err("hard link"))?;
                self.stats.entries += 1;
                return Ok(());
            }
            self.links.insert((md.dev(), md.ino()), dst.to_path_buf());
        }
        // Opened (and its attributes read) before anything is made: a file that is not what was
        // looked at fails the copy. One descriptor serves the attributes and the content.
        let file = if ft.is_file() { Some(self.tree.open_regular(rel, &md).map_err(StorageError::io("open", &src))?) } else { None };
        let xattrs = match &file {
            Some(f) => sys::fxattrs(f.as_fd()),
            None => self.tree.xattrs(rel, &md),
        }
        .map_err(StorageError::io("read xattrs", &src))?;
        if ft.is_dir() {
            fs::create_dir(dst).map_err(err("create directory"))?;
        } else if let Some(f) = file {
            copy_file(f, dst, md.mode(), &mut self.stats).map_err(err("copy file"))?;
            self.stats.bytes += md.len();
        } else if ft.is_symlink() {
            let target = node.read_link().map_err(StorageError::io("read link", &src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(err("create symlink"))?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(dst, kind, Mode::from_bits_truncate(md.mode() & 0o7777), md.rdev()).map_err(|e| err("create node")(e.into()))?;
        } else {
            return Ok(()); // sockets are not content
        }
        drop(node);
        self.stats.entries += 1;
        fchownat(
            nix::fcntl::AT_FDCWD,
            dst,
            Some(Uid::from_raw(md.uid())),
            Some(Gid::from_raw(md.gid())),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("chown")(e.into()))?;
        if !ft.is_symlink() {
            // After chown, which clears set-id bits.
            fs::set_permissions(dst, std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777)).map_err(err("chmod"))?;
        }
        sys::set_xattrs(dst, &xattrs).map_err(err("set xattrs"))?;
        if ft.is_dir() {
            let mut names = self.tree.list(rel).map_err(StorageError::io("read directory", &src))?;
            names.sort();
            for name in names {
                self.entry(&rel.join(&name), &dst.join(&name))?;
            }
            self.dirs.push((dst.to_path_buf(), md));
        } else {
            let (a, m) = (TimeSpec::new(md.atime(), md.atime_nsec()), TimeSpec::new(md.mtime(), md.mtime_nsec()));
            utimensat(nix::fcntl::AT_FDCWD, dst, &a, &m, UtimensatFlags::NoFollowSymlink).map_err(|e| err("set times")(e.into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_files_stay_sparse() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("t");
        fs::create_dir(&s).unwrap();
        let f = File::create(s.join("sparse")).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(&[7u8; 8192], 32 << 20).unwrap();
        f.set_len(256 << 20).unwrap();
        drop(f);
        let dst = d.path().join("copy");
        copy_tree(&s, &dst).unwrap();
        let (a, b) = (fs::read(s.join("sparse")).unwrap(), fs::read(dst.join("sparse")).unwrap());
        assert!(a == b, "the copy has the same bytes");
        let m = fs::metadata(dst.join("sparse")).unwrap();
        assert_eq!(m.len(), 256 << 20);
        // A file system that cannot tell holes would copy it whole; these hosts' /tmp can.
        assert!(m.blocks() * 512 < 4 << 20, "the copy allocated {} bytes for 8 KiB of data", m.blocks() * 512);
    }

    #[test]
    fn copies_types_links_times_and_user_xattrs() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path().join("t");
        fs::create_dir_all(s.join("d/e")).unwrap();
        fs::write(s.join("d/f"), b"content").unwrap();
        fs::hard_link(s.join("d/f"), s.join("d/g")).unwrap();
        std::os::unix::fs::symlink("../nowhere", s.join("d/l")).unwrap();
        nix::unistd::mkfifo(&s.join("p"), Mode::from_bits_truncate(0o640)).unwrap();
        fs::set_permissions(s.join("d/f"), std::os::unix::fs::PermissionsExt::from_mode(0o751)).unwrap();
        let _ = sys::set_xattrs(&s.join("d"), &[(std::ffi::CString::new("user.overlay.opaque").unwrap(), b"y".to_vec())]);
        let t = TimeSpec::new(1_600_000_000, 0);
        utimensat(nix::fcntl::AT_FDCWD, &s.join("d/f"), &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
        let dst = src.path().join("copy");
        let st = copy_tree(&s, &dst).unwrap();
        assert_eq!(fs::read(dst.join("d/f")).unwrap(), b"content");
        assert_eq!(fs::metadata(dst.join("d/f")).unwrap().ino(), fs::metadata(dst.join("d/g")).unwrap().ino());
        assert_eq!(fs::read_link(dst.join("d/l")).unwrap(), Path::new("../nowhere"));
        assert!(fs::symlink_metadata(dst.join("p")).unwrap().file_type().is_fifo());
        assert_eq!(fs::metadata(dst.join("d/f")).unwrap().mode() & 0o7777, 0o751);
        assert_eq!(fs::metadata(dst.join("d/f")).unwrap().mtime(), 1_600_000_000);
        let xattrs = |p: &Path| sys::fxattrs(File::open(p).unwrap().as_fd()).unwrap();
        if !xattrs(&s.join("d")).is_empty() {
            assert_eq!(xattrs(&dst.join("d")), xattrs(&s.join("d")), "extended attributes are kept");
        }
        assert!(st.entries >= 6);
    }
}
