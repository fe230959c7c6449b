//! What changed between two states of a root file system: paths added, modified (content,
//! mode, owner, link target, type) and deleted. Each state is a [`View`]: a plain directory
//! tree (a btrfs subvolume) or an overlay of a shared lower layer with an upper directory, in
//! which case only directories that an upper touched are walked.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Absolute inside the container (`/etc/passwd`).
    pub path: String,
    pub kind: ChangeKind,
    /// What differs, for modified paths: content, mode, owner, link, type.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<&'static str>,
    /// file, directory, symlink, other (of the newer state; of the older for deletions).
    #[serde(rename = "type")]
    pub file_type: &'static str,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub real: PathBuf,
    pub md: fs::Metadata,
    /// Views with the same lineage are snapshots of one another on one file system: the same
    /// inode number there is the same file (btrfs keeps inode numbers in snapshots, while giving
    /// each subvolume its own device number).
    pub lineage: Option<u64>,
}

impl Entry {
    fn type_name(&self) -> &'static str {
        let t = self.md.file_type();
        if t.is_dir() {
            "directory"
        } else if t.is_file() {
            "file"
        } else if t.is_symlink() {
            "symlink"
        } else {
            "other"
        }
    }
}

/// A read-only state of a root file system.
pub trait View {
    /// The entry at `rel` (empty for the root), if present in this state.
    fn stat(&self, rel: &Path) -> Option<Entry>;
    /// Names in directory `rel`.
    fn list(&self, rel: &Path) -> Vec<OsString>;
    /// Whether anything under directory `rel` can differ from the layer shared by both states.
    fn touched(&self, _rel: &Path) -> bool {
        true
    }
}

/// A plain directory tree, optionally of a snapshot lineage (see [`Entry::lineage`]).
pub struct DirView(pub PathBuf, pub Option<u64>);

impl View for DirView {
    fn stat(&self, rel: &Path) -> Option<Entry> {
        let real = self.0.join(rel);
        fs::symlink_metadata(&real).ok().map(|md| Entry { real, md, lineage: self.1 })
    }

    fn list(&self, rel: &Path) -> Vec<OsString> {
        fs::read_dir(self.0.join(rel)).map(|rd| rd.flatten().map(|e| e.file_name()).collect()).unwrap_or_default()
    }
}

/// An overlay: `upper` over `lower`, as the kernel shows it (whiteouts hide, opaque directories
/// hide the lower directory they cover).
pub struct OverlayView {
    pub lower: PathBuf,
    pub upper: PathBuf,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    [c"user.overlay.opaque", c"trusted.overlay.opaque"].iter().any(|name| {
        let mut v = [0u8; 4];
        crate::sys::getxattr(&c, name, &mut v).is_some_and(|n| n >= 1 && v[0] == b'y')
    })
}

impl OverlayView {
    /// (upper entry or None, whether the lower layer is visible at `rel`).
    fn resolve(&self, rel: &Path) -> (Option<fs::Metadata>, bool) {
        let mut lower_visible = true;
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            prefix.push(c);
            let last = i + 1 == comps.len();
            let u = self.upper.join(&prefix);
            match fs::symlink_metadata(&u) {
                Ok(md) if is_whiteout(&md) => return (None, false),
                Ok(md) if last => return (Some(md), lower_visible && !is_opaque(&u)),
                Ok(md) if md.is_dir() => {
                    if is_opaque(&u) {
                        lower_visible = false;
                    }
                }
                Ok(_) => return (None, false), // a file in the upper replaces this directory
                Err(_) => {
                    if !lower_visible {
                        return (None, false);
                    }
                    if !last && !fs::symlink_metadata(self.lower.join(&prefix)).map(|m| m.is_dir()).unwrap_or(false) {
                        return (None, false);
                    }
                }
            }
        }
        if comps.is_empty() {
            let u = fs::symlink_metadata(&self.upper).ok();
            return (u, !is_opaque(&self.upper));
        }
        (None, lower_visible)
    }
}

impl View for OverlayView {
    fn stat(&self, rel: &Path) -> Option<Entry> {
        match self.resolve(rel) {
            (Some(md), _) => Some(Entry { real: self.upper.join(rel), md, lineage: None }),
            (None, true) => {
                let real = self.lower.join(rel);
                fs::symlink_metadata(&real).ok().map(|md| Entry { real, md, lineage: None })
            }
            (None, false) => None,
        }
    }

    fn list(&self, rel: &Path) -> Vec<OsString> {
        let (upper, lower_visible) = self.resolve(rel);
        let mut names = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        if (upper.as_ref().is_some_and(|m| m.is_dir()) || rel.as_os_str().is_empty())
            && let Ok(rd) = fs::read_dir(self.upper.join(rel))
        {
            for e in rd.flatten() {
                if e.metadata().map(|m| is_whiteout(&m)).unwrap_or(false) {
                    hidden.insert(e.file_name());
                } else {
                    names.insert(e.file_name());
                }
            }
        }
        let lower_dir = upper.as_ref().is_none_or(|m| m.is_dir());
        if lower_visible
            && lower_dir
            && let Ok(rd) = fs::read_dir(self.lower.join(rel))
        {
            for e in rd.flatten() {
                if !hidden.contains(&e.file_name()) {
                    names.insert(e.file_name());
                }
            }
        }
        names.into_iter().collect()
    }

    fn touched(&self, rel: &Path) -> bool {
        fs::symlink_metadata(self.upper.join(rel)).is_ok()
    }
}

fn same_content(a: &Entry, b: &Entry) -> io::Result<bool> {
    if a.md.dev() == b.md.dev() && a.md.ino() == b.md.ino() {
        return Ok(true);
    }
    if a.md.len() != b.md.len() {
        return Ok(false);
    }
    let (mut fa, mut fb) = (File::open(&a.real)?, File::open(&b.real)?);
    // Shared physical extents (snapshots, reflinks) mean shared bytes: no need to read them.
    if let (Some(x), Some(y)) = (sys::extents(fa.as_fd()), sys::extents(fb.as_fd()))
        && x == y
        && !x.is_empty()
    {
        return Ok(true);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Within one file system, the same inode with the same change time has not changed at all:
/// the kernel sets ctime on every change of content or metadata and nothing can set it back.
/// A btrfs snapshot keeps inode numbers and times, so this settles most files without reading.
fn untouched(a: &Entry, b: &Entry) -> bool {
    let same_file = a.md.dev() == b.md.dev() || (a.lineage.is_some() && a.lineage == b.lineage);
    same_file && a.md.ino() == b.md.ino() && a.md.ctime() == b.md.ctime() && a.md.ctime_nsec() == b.md.ctime_nsec()
}

fn compare(a: &Entry, b: &Entry) -> io::Result<Vec<&'static str>> {
    if untouched(a, b) {
        return Ok(vec![]);
    }
    let (ta, tb) = (a.md.file_type(), b.md.file_type());
    if a.type_name() != b.type_name() || ta.is_char_device() != tb.is_char_device() || ta.is_fifo() != tb.is_fifo() {
        return Ok(vec!["type"]);
    }
    let mut what = vec![];
    if ta.is_file() && !same_content(a, b)? {
        what.push("content");
    }
    if ta.is_symlink() && fs::read_link(&a.real)? != fs::read_link(&b.real)? {
        what.push("link");
    }
    if !ta.is_symlink() && a.md.mode() & 0o7777 != b.md.mode() & 0o7777 {
        what.push("mode");
    }
    if (a.md.uid(), a.md.gid()) != (b.md.uid(), b.md.gid()) {
        what.push("owner");
    }
    if (ta.is_char_device() || ta.is_block_device()) && a.md.rdev() != b.md.rdev() {
        what.push("device");
    }
    Ok(what)
}

fn display(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

/// Every path under `rel` in `v`, as `kind` (for added and deleted directories).
fn subtree(v: &dyn View, rel: &Path, kind: ChangeKind, out: &mut Vec<Change>) {
    for name in v.list(rel) {
        let p = rel.join(&name);
        if let Some(e) = v.stat(&p) {
            out.push(Change { path: display(&p), kind, what: vec![], file_type: e.type_name() });
            if e.md.is_dir() {
                subtree(v, &p, kind, out);
            }
        }
    }
}

fn walk(a: &dyn View, b: &dyn View, rel: &Path, out: &mut Vec<Change>) -> io::Result<()> {
    let names: BTreeSet<OsString> = a.list(rel).into_iter().chain(b.list(rel)).collect();
    for name in names {
        let p = rel.join(&name);
        match (a.stat(&p), b.stat(&p)) {
            (None, None) => {}
            (None, Some(eb)) => {
                out.push(Change { path: display(&p), kind: ChangeKind::Added, what: vec![], file_type: eb.type_name() });
                if eb.md.is_dir() {
                    subtree(b, &p, ChangeKind::Added, out);
                }
            }
            (Some(ea), None) => {
                out.push(Change { path: display(&p), kind: ChangeKind::Deleted, what: vec![], file_type: ea.type_name() });
                if ea.md.is_dir() {
                    subtree(a, &p, ChangeKind::Deleted, out);
                }
            }
            (Some(ea), Some(eb)) => {
                let what = compare(&ea, &eb)?;
                if what == ["type"] {
                    out.push(Change { path: display(&p), kind: ChangeKind::Deleted, what: vec![], file_type: ea.type_name() });
                    if ea.md.is_dir() {
                        subtree(a, &p, ChangeKind::Deleted, out);
                    }
                    out.push(Change { path: display(&p), kind: ChangeKind::Added, what: vec![], file_type: eb.type_name() });
                    if eb.md.is_dir() {
                        subtree(b, &p, ChangeKind::Added, out);
                    }
                    continue;
                }
                if !what.is_empty() {
                    out.push(Change { path: display(&p), kind: ChangeKind::Modified, what, file_type: eb.type_name() });
                }
                if ea.md.is_dir() && (a.touched(&p) || b.touched(&p)) {
                    walk(a, b, &p, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The changes that lead from state `a` to state `b`, sorted by path.
pub fn diff(a: &dyn View, b: &dyn View) -> io::Result<Vec<Change>> {
    let mut out = vec![];
    walk(a, b, Path::new(""), &mut out)?;
    out.sort_by(|x, y| x.path.cmp(&y.path).then((x.kind as u8).cmp(&(y.kind as u8))));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(c: &[Change]) -> Vec<(String, ChangeKind, Vec<&'static str>)> {
        c.iter().map(|c| (c.path.clone(), c.kind, c.what.clone())).collect()
    }

    #[test]
    fn plain_trees() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            fs::create_dir_all(d.join("etc")).unwrap();
            fs::write(d.join("etc/same"), b"x").unwrap();
            fs::write(d.join("etc/chg"), b"old").unwrap();
            fs::write(d.join("gone"), b"g").unwrap();
        }
        fs::write(b.join("etc/chg"), b"new").unwrap();
        fs::remove_file(b.join("gone")).unwrap();
        fs::create_dir(b.join("newdir")).unwrap();
        fs::write(b.join("newdir/f"), b"f").unwrap();
        fs::set_permissions(b.join("etc/same"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let d = diff(&DirView(a, None), &DirView(b, None)).unwrap();
        assert_eq!(
            kinds(&d),
            vec![
                ("/etc/chg".into(), ChangeKind::Modified, vec!["content"]),
                ("/etc/same".into(), ChangeKind::Modified, vec!["mode"]),
                ("/gone".into(), ChangeKind::Deleted, vec![]),
                ("/newdir".into(), ChangeKind::Added, vec![]),
                ("/newdir/f".into(), ChangeKind::Added, vec![]),
            ]
        );
    }

    #[test]
    fn overlay_views_with_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/keep"), b"k").unwrap();
        fs::write(lower.join("etc/del"), b"d").unwrap();
        let (u1, u2) = (t.path().join("u1"), t.path().join("u2"));
        fs::create_dir_all(&u1).unwrap();
        fs::create_dir_all(u2.join("etc")).unwrap();
        // A whiteout needs CAP_MKNOD; without it (unprivileged test run) skip that part.
        let whiteout = nix::sys::stat::mknod(&u2.join("etc/del"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0).is_ok();
        fs::write(u2.join("etc/new"), b"n").unwrap();
        let a = OverlayView { lower: lower.clone(), upper: u1 };
        let b = OverlayView { lower, upper: u2 };
        let d = kinds(&diff(&a, &b).unwrap());
        assert!(d.contains(&("/etc/new".into(), ChangeKind::Added, vec![])), "{d:?}");
        if whiteout {
            assert!(d.contains(&("/etc/del".into(), ChangeKind::Deleted, vec![])), "{d:?}");
        }
        assert!(!d.iter().any(|(p, _, _)| p == "/etc/keep"));
    }
}
