//! Importing a root filesystem from a directory on the host, through [`SafeTreeWriter`].
//! Symlinks in the source are copied as symlinks, never followed; hard links are kept.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::relpath::RelPath;
use crate::tree_writer::{ImportReport, Meta, SafeTreeWriter};

pub fn import_dir(src: &Path, mut writer: SafeTreeWriter) -> Result<ImportReport> {
    let mut links: HashMap<(u64, u64), RelPath> = HashMap::new();
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let abs = src.join(&rel_dir);
        let mut names: Vec<_> = fs::read_dir(&abs)
            .map_err(StorageError::io("read directory", &abs))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(StorageError::io("read directory", &abs))?;
        names.sort_by_key(|e| e.file_name());
        for ent in names {
            let rel_raw = rel_dir.join(ent.file_name());
            let abs = src.join(&rel_raw);
            let md = fs::symlink_metadata(&abs).map_err(StorageError::io("stat", &abs))?;
            let rel = RelPath::sanitize(&rel_raw)?.expect("a child entry is never the root");
            let meta = Meta { mode: md.mode(), uid: u64::from(md.uid()), gid: u64::from(md.gid()), mtime: md.mtime() };
            let ft = md.file_type();
            if ft.is_dir() {
                writer.dir(&rel, &meta)?;
                stack.push(rel_raw);
            } else if ft.is_symlink() {
                let target = fs::read_link(&abs).map_err(StorageError::io("read link", &abs))?;
                writer.symlink(&rel, target.as_os_str(), &meta)?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = links.get(&(md.dev(), md.ino())) {
                        writer.hardlink(&rel, first)?;
                        continue;
                    }
                    links.insert((md.dev(), md.ino()), rel.clone());
                }
                let mut f = File::options().read(true).custom_flags(libc::O_NOFOLLOW).open(&abs).map_err(StorageError::io("open", &abs))?;
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
