//! Importing a root filesystem from a directory on the host, through [`SafeTreeWriter`].
//! The source is read through [`Beneath`] (it may be a tree a tenant wrote: a snapshot being
//! published): every lookup beneath a directory fd with no symlink followed, entries looked at
//! through `O_PATH`, content read only from the regular file that was listed (`O_NONBLOCK`, no
//! FIFO or device ever opened). Symlinks are copied as symlinks; hard links are kept.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::beneath::Beneath;
use crate::error::{Result, StorageError};
use crate::relpath::RelPath;
use crate::tree_writer::{ImportReport, Meta, SafeTreeWriter};

pub fn import_dir(src: &Path, mut writer: SafeTreeWriter) -> Result<ImportReport> {
    let tree = Beneath::open(src).map_err(StorageError::io("open", src))?;
    let mut links: HashMap<(u64, u64), RelPath> = HashMap::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let at = |rel: &Path| src.join(rel);
        let mut names = tree.list(&rel_dir).map_err(StorageError::io("read directory", at(&rel_dir)))?;
        names.sort();
        for name in names {
            let rel_raw = rel_dir.join(name);
            let node = tree.node(&rel_raw).map_err(StorageError::io("stat", at(&rel_raw)))?;
            let md = &node.md;
            let rel = RelPath::sanitize(&rel_raw)?.expect("a child entry is never the root");
            let meta = Meta { mode: md.mode(), uid: u64::from(md.uid()), gid: u64::from(md.gid()), mtime: md.mtime() };
            let ft = md.file_type();
            if ft.is_dir() {
                writer.dir(&rel, &meta)?;
                stack.push(rel_raw);
            } else if ft.is_symlink() {
                let target = node.read_link().map_err(StorageError::io("read link", at(&rel_raw)))?;
                writer.symlink(&rel, target.as_os_str(), &meta)?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = links.get(&(md.dev(), md.ino())) {
                        writer.hardlink(&rel, first)?;
                        continue;
                    }
                    links.insert((md.dev(), md.ino()), rel.clone());
                }
                let mut f = tree.open_regular(&rel_raw, md).map_err(StorageError::io("open", at(&rel_raw)))?;
                writer.file(&rel, &meta, &mut f)?;
            } else if ft.is_fifo() {
                writer.fifo(&rel, &meta)?;
            } else {
                writer.skip(&rel_raw, "device node or socket");
            }
        }
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree_writer::OwnerPolicy;
    use std::fs;

    #[test]
    fn a_fifo_is_never_opened_and_symlinks_are_not_followed() {
        let src = tempfile::tempdir().unwrap();
        nix::unistd::mkfifo(&src.path().join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        std::os::unix::fs::symlink("/etc", src.path().join("out")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        // A FIFO opened for reading would block this test forever.
        let r = import_dir(src.path(), SafeTreeWriter::new(dst.path(), OwnerPolicy::Ignore).unwrap()).unwrap();
        assert!(fs::symlink_metadata(dst.path().join("pipe")).unwrap().file_type().is_fifo());
        assert_eq!(fs::read_link(dst.path().join("out")).unwrap(), Path::new("/etc"));
        assert_eq!(r.files, 0);
    }

    #[test]
    fn copies_tree_with_links() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/f"), b"data").unwrap();
        fs::hard_link(src.path().join("a/b/f"), src.path().join("a/g")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("a/l")).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let w = SafeTreeWriter::new(dst.path(), OwnerPolicy::Ignore).unwrap();
        let r = import_dir(src.path(), w).unwrap();
        assert_eq!(fs::read(dst.path().join("a/b/f")).unwrap(), b"data");
        assert_eq!(fs::metadata(dst.path().join("a/g")).unwrap().ino(), fs::metadata(dst.path().join("a/b/f")).unwrap().ino());
        assert_eq!(fs::read_link(dst.path().join("a/l")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!((r.files, r.hardlinks, r.symlinks), (1, 1, 1));
    }
}
