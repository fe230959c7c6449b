//! Copying a file tree exactly: types, modes, owners, extended attributes (overlay's opaque
//! markers among them), whiteouts (0/0 character devices), hard links, times. Regular files are
//! reflinked where the file system can, copied otherwise. Symlinks are never followed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat};

use crate::error::{Result, StorageError};
use crate::sys;

/// What a copy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyStats {
    pub entries: u64,
    pub bytes: u64,
    pub reflinked: u64,
}

fn copy_file(src: &Path, dst: &Path, mode: u32, stats: &mut CopyStats) -> io::Result<()> {
    let s = File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(src)?;
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

/// Copies the tree at `src` to `dst` (which must not exist).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<CopyStats> {
    let mut stats = CopyStats::default();
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    let mut dirs: Vec<(std::path::PathBuf, fs::Metadata)> = vec![];
    copy_entry(src, dst, &mut stats, &mut links, &mut dirs)?;
    // Directory times last: filling a directory changes them.
    for (d, md) in dirs.iter().rev() {
        let (a, m) = (TimeSpec::new(md.atime(), md.atime_nsec()), TimeSpec::new(md.mtime(), md.mtime_nsec()));
        utimensat(nix::fcntl::AT_FDCWD, d.as_path(), &a, &m, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| StorageError::io("set times", d)(e.into()))?;
    }
    Ok(stats)
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    stats: &mut CopyStats,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
    dirs: &mut Vec<(std::path::PathBuf, fs::Metadata)>,
) -> Result<()> {
    let md = fs::symlink_metadata(src).map_err(StorageError::io("stat", src))?;
    let ft = md.file_type();
    let err = |op| StorageError::io(op, dst);
    if !ft.is_dir() && md.nlink() > 1 {
        if let Some(first) = links.get(&(md.dev(), md.ino())) {
            fs::hard_link(first, dst).map_err(err("hard link"))?;
            stats.entries += 1;
            return Ok(());
        }
        links.insert((md.dev(), md.ino()), dst.to_path_buf());
    }
    if ft.is_dir() {
        fs::create_dir(dst).map_err(err("create directory"))?;
    } else if ft.is_file() {
        copy_file(src, dst, md.mode(), stats).map_err(err("copy file"))?;
        stats.bytes += md.len();
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(StorageError::io("read link", src))?;
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
    stats.entries += 1;
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
    sys::set_xattrs(dst, &sys::xattrs(src).map_err(StorageError::io("read xattrs", src))?).map_err(err("set xattrs"))?;
    if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(StorageError::io("read directory", src))?
            .collect::<io::Result<_>>()
            .map_err(StorageError::io("read directory", src))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            copy_entry(&src.join(e.file_name()), &dst.join(e.file_name()), stats, links, dirs)?;
        }
        dirs.push((dst.to_path_buf(), md));
    } else {
        let (a, m) = (TimeSpec::new(md.atime(), md.atime_nsec()), TimeSpec::new(md.mtime(), md.mtime_nsec()));
        utimensat(nix::fcntl::AT_FDCWD, dst, &a, &m, UtimensatFlags::NoFollowSymlink).map_err(|e| err("set times")(e.into()))?;
    }
    Ok(())
}

/// Size in bytes of the regular files of a tree (hard links once).
pub fn tree_bytes(root: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(rd) = fs::read_dir(&p) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
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
        if !sys::xattrs(&s.join("d")).unwrap().is_empty() {
            assert_eq!(sys::xattrs(&dst.join("d")).unwrap(), sys::xattrs(&s.join("d")).unwrap(), "extended attributes are kept");
        }
        assert!(st.entries >= 6);
    }
}
