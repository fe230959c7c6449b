//! Sanitising of paths taken from archives: every path becomes relative to the image root.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::StorageError;

/// A path that is relative, normal (no `.`/`..`) and non-empty: safe to resolve inside a root.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelPath(PathBuf);

impl RelPath {
    /// Turns an archive path into a path relative to the root. Leading `/` and `./` are removed
    /// (neutralised, as GNU tar does); a `..` component anywhere refuses the entry. Returns
    /// `Ok(None)` for the root itself (`.`, `./`, `/`).
    pub fn sanitize(raw: &Path) -> Result<Option<RelPath>, StorageError> {
        let mut out = PathBuf::new();
        for comp in raw.components() {
            match comp {
                Component::RootDir | Component::CurDir => {}
                Component::Prefix(_) => return Err(refuse(raw, "path prefix")),
                Component::ParentDir => return Err(refuse(raw, "path contains `..`")),
                Component::Normal(c) => {
                    if c.as_bytes().contains(&0) {
                        return Err(refuse(raw, "NUL in path"));
                    }
                    out.push(c)
                }
            }
        }
        if out.as_os_str().is_empty() { Ok(None) } else { Ok(Some(RelPath(out))) }
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The parent directory (`None` when the entry sits directly under the root).
    pub fn parent(&self) -> Option<&Path> {
        self.0.parent().filter(|p| !p.as_os_str().is_empty())
    }

    /// The last component.
    pub fn file_name(&self) -> &OsStr {
        self.0.file_name().expect("a sanitized RelPath always has a file name")
    }
}

fn refuse(raw: &Path, reason: &'static str) -> StorageError {
    StorageError::UnsafeEntry { entry: raw.to_string_lossy().into_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p: &str) -> Result<Option<String>, StorageError> {
        RelPath::sanitize(Path::new(p)).map(|r| r.map(|r| r.as_path().to_string_lossy().into_owned()))
    }

    #[test]
    fn strips_absolute_and_dot_prefixes() {
        assert_eq!(s("/etc/passwd").unwrap().as_deref(), Some("etc/passwd"));
        assert_eq!(s("./bin/sh").unwrap().as_deref(), Some("bin/sh"));
        assert_eq!(s("a/./b").unwrap().as_deref(), Some("a/b"));
        assert_eq!(s("./").unwrap(), None);
        assert_eq!(s("/").unwrap(), None);
    }

    #[test]
    fn refuses_parent_components() {
        for p in ["../x", "a/../../x", "a/b/..", "/../etc/shadow"] {
            assert!(matches!(s(p), Err(StorageError::UnsafeEntry { .. })), "{p}");
        }
    }

    #[test]
    fn parent_and_name() {
        let r = RelPath::sanitize(Path::new("a/b/c")).unwrap().unwrap();
        assert_eq!(r.parent(), Some(Path::new("a/b")));
        assert_eq!(r.file_name(), "c");
        let r = RelPath::sanitize(Path::new("top")).unwrap().unwrap();
        assert_eq!(r.parent(), None);
    }
}
