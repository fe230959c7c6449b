//! What changed between two states of a root file system: paths added, modified (content,
//! mode, owner, link target, type) and deleted. Each state is a [`View`]: a plain directory
//! tree (a btrfs subvolume) or an overlay of a shared lower layer with an upper directory, in
//! which case only directories that an upper touched are walked.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::beneath::{Beneath, Node};
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
    /// file, directory, symlink, subvolume, other (of the newer state; of the older for
    /// deletions).
    #[serde(rename = "type")]
    pub file_type: &'static str,
}

/// One entry of a view, held open (`O_PATH`) while it is compared.
pub struct Entry<'a> {
    tree: &'a Beneath,
    rel: PathBuf,
    node: Node,
    /// Views with the same lineage are snapshots of one another on one file system: the same
    /// inode number there is the same file (btrfs keeps inode numbers in snapshots, while giving
    /// each subvolume its own device number).
    lineage: Option<u64>,
}

impl Entry<'_> {
    fn md(&self) -> &std::fs::Metadata {
        &self.node.md
    }

    /// On another device than its tree: a nested subvolume (or a mount), shown as one opaque
    /// entry, never entered.
    fn foreign(&self) -> bool {
        self.node.md.dev() != self.tree.dev()
    }

    /// A directory to descend into.
    fn is_dir(&self) -> bool {
        self.node.md.is_dir() && !self.foreign()
    }

    fn type_name(&self) -> &'static str {
        let t = self.node.md.file_type();
        if self.foreign() {
            "subvolume"
        } else if t.is_dir() {
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
pub trait View: Send {
    /// The entry at `rel` (empty for the root), if present in this state.
    fn stat(&self, rel: &Path) -> Option<Entry<'_>>;
    /// Names in directory `rel`.
    fn list(&self, rel: &Path) -> Vec<OsString>;
    /// Whether anything under directory `rel` can differ from the layer shared by both states.
    fn touched(&self, _rel: &Path) -> bool {
        true
    }
}

/// A plain directory tree, optionally of a snapshot lineage (see [`Entry::lineage`]), holding
/// whatever must live as long as the view (a temporary snapshot it is a view of).
pub struct DirView {
    tree: Beneath,
    lineage: Option<u64>,
    _hold: Option<Box<dyn Send>>,
}

impl DirView {
    pub fn open(root: &Path, lineage: Option<u64>) -> std::io::Result<Self> {
        Ok(DirView { tree: Beneath::open(root)?, lineage, _hold: None })
    }

    /// This view, keeping `hold` until it is dropped (after the tree's descriptor is closed).
    pub fn holding(mut self, hold: Box<dyn Send>) -> Self {
        self._hold = Some(hold);
        self
    }
}

impl View for DirView {
    fn stat(&self, rel: &Path) -> Option<Entry<'_>> {
        let node = self.tree.node(rel).ok()?;
        Some(Entry { tree: &self.tree, rel: rel.to_path_buf(), node, lineage: self.lineage })
    }

    fn list(&self, rel: &Path) -> Vec<OsString> {
        self.tree.list(rel).unwrap_or_default()
    }
}

/// An overlay: `upper` over `lower`, as the kernel shows it (whiteouts hide, opaque directories
/// hide the lower directory they cover).
pub struct OverlayView {
    lower: Beneath,
    upper: Beneath,
}

impl OverlayView {
    pub fn open(lower: &Path, upper: &Path) -> std::io::Result<Self> {
        Ok(OverlayView { lower: Beneath::open(lower)?, upper: Beneath::open(upper)? })
    }
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether directory `rel` of `tree` is marked opaque (read through the directory's fd).
fn is_opaque(tree: &Beneath, rel: &Path) -> bool {
    let Ok(fd) = tree.open_dir(rel) else { return false };
    [c"user.overlay.opaque", c"trusted.overlay.opaque"].iter().any(|name| {
        let mut v = [0u8; 4];
        sys::fgetxattr(fd.as_fd(), name, &mut v).is_some_and(|n| n >= 1 && v[0] == b'y')
    })
}

impl OverlayView {
    /// (upper entry or None, whether the lower layer is visible at `rel`).
    fn resolve(&self, rel: &Path) -> (Option<Node>, bool) {
        let mut lower_visible = true;
        let mut prefix = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        if comps.is_empty() {
            let u = self.upper.node(rel).ok();
            return (u, !is_opaque(&self.upper, rel));
        }
        for (i, c) in comps.iter().enumerate() {
            prefix.push(c);
            let last = i + 1 == comps.len();
            match self.upper.node(&prefix) {
                Ok(n) if is_whiteout(&n.md) => return (None, false),
                Ok(n) if last => {
                    let visible = lower_visible && !(n.md.is_dir() && is_opaque(&self.upper, &prefix));
                    return (Some(n), visible);
                }
                Ok(n) if n.md.is_dir() => {
                    if is_opaque(&self.upper, &prefix) {
                        lower_visible = false;
                    }
                }
                Ok(_) => return (None, false), // a file in the upper replaces this directory
                Err(_) => {
                    if !lower_visible {
                        return (None, false);
                    }
                    if !last && !self.lower.node(&prefix).is_ok_and(|n| n.md.is_dir()) {
                        return (None, false);
                    }
                }
            }
        }
        (None, lower_visible)
    }
}

impl View for OverlayView {
    fn stat(&self, rel: &Path) -> Option<Entry<'_>> {
        match self.resolve(rel) {
            (Some(node), _) => Some(Entry { tree: &self.upper, rel: rel.to_path_buf(), node, lineage: None }),
            (None, true) => {
                let node = self.lower.node(rel).ok()?;
                Some(Entry { tree: &self.lower, rel: rel.to_path_buf(), node, lineage: None })
            }
            (None, false) => None,
        }
    }

    fn list(&self, rel: &Path) -> Vec<OsString> {
        let (upper, lower_visible) = self.resolve(rel);
        let mut names = BTreeSet::new();
        let mut hidden = BTreeSet::new();
        if upper.as_ref().is_some_and(|n| n.md.is_dir()) || rel.as_os_str().is_empty() {
            for name in self.upper.list(rel).unwrap_or_default() {
                if self.upper.node(&rel.join(&name)).is_ok_and(|n| is_whiteout(&n.md)) {
                    hidden.insert(name);
                } else {
                    names.insert(name);
                }
            }
        }
        let lower_dir = upper.as_ref().is_none_or(|n| n.md.is_dir());
        if lower_visible && lower_dir {
            for name in self.lower.list(rel).unwrap_or_default() {
                if !hidden.contains(&name) {
                    names.insert(name);
                }
            }
        }
        names.into_iter().collect()
    }

    fn touched(&self, rel: &Path) -> bool {
        self.upper.node(rel).is_ok()
    }
}

/// Whether two regular files hold the same bytes. Anything that cannot be read as the file
/// that was looked at (it changed, was swapped for a FIFO, shrank) counts as different.
fn same_content(a: &Entry, b: &Entry) -> bool {
    if a.md().dev() == b.md().dev() && a.md().ino() == b.md().ino() {
        return true;
    }
    if a.md().len() != b.md().len() {
        return false;
    }
    let (Ok(mut fa), Ok(mut fb)) = (a.tree.open_regular(&a.rel, a.md()), b.tree.open_regular(&b.rel, b.md())) else {
        return false;
    };
    // Shared physical extents (snapshots, reflinks) mean shared bytes: no need to read them.
    if let (Some(x), Some(y)) = (sys::extents(fa.as_fd()), sys::extents(fb.as_fd()))
        && x == y
        && !x.is_empty()
    {
        return true;
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = match fa.read(&mut ba) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return fb.read(&mut bb[..1]).is_ok_and(|m| m == 0);
        }
        if fb.read_exact(&mut bb[..n]).is_err() || ba[..n] != bb[..n] {
            return false;
        }
    }
}

/// Within one file system, the same inode with the same change time has not changed at all:
/// the kernel sets ctime on every change of content or metadata and nothing can set it back.
/// A btrfs snapshot keeps inode numbers and times, so this settles most files without reading.
fn untouched(a: &Entry, b: &Entry) -> bool {
    let (x, y) = (a.md(), b.md());
    let same_file = x.dev() == y.dev() || (a.lineage.is_some() && a.lineage == b.lineage);
    same_file && x.ino() == y.ino() && x.ctime() == y.ctime() && x.ctime_nsec() == y.ctime_nsec()
}

fn compare(a: &Entry, b: &Entry) -> Vec<&'static str> {
    if a.foreign() || b.foreign() {
        // Opaque: only whether it is (still) one.
        return if a.foreign() == b.foreign() { vec![] } else { vec!["type"] };
    }
    if untouched(a, b) {
        return vec![];
    }
    let (x, y) = (a.md(), b.md());
    let (ta, tb) = (x.file_type(), y.file_type());
    if a.type_name() != b.type_name() || ta.is_char_device() != tb.is_char_device() || ta.is_fifo() != tb.is_fifo() {
        return vec!["type"];
    }
    let mut what = vec![];
    if ta.is_file() && !same_content(a, b) {
        what.push("content");
    }
    if ta.is_symlink() {
        match (a.node.read_link(), b.node.read_link()) {
            (Ok(la), Ok(lb)) if la == lb => {}
            _ => what.push("link"),
        }
    }
    if !ta.is_symlink() && x.mode() & 0o7777 != y.mode() & 0o7777 {
        what.push("mode");
    }
    if (x.uid(), x.gid()) != (y.uid(), y.gid()) {
        what.push("owner");
    }
    if (ta.is_char_device() || ta.is_block_device()) && x.rdev() != y.rdev() {
        what.push("device");
    }
    what
}

fn display(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

/// Every path under `rel` in `v`, as `kind` (for added and deleted directories).
fn subtree(v: &dyn View, rel: &Path, kind: ChangeKind, out: &mut Vec<Change>) {
    for name in v.list(rel) {
        let p = rel.join(&name);
        if let Some(e) = v.stat(&p) {
            side(v, e, &p, kind, out);
        }
    }
}

/// One side of a change: the entry is recorded, then (once its descriptor is closed) a
/// directory's content follows.
fn side(v: &dyn View, e: Entry, p: &Path, kind: ChangeKind, out: &mut Vec<Change>) {
    out.push(Change { path: display(p), kind, what: vec![], file_type: e.type_name() });
    let dir = e.is_dir();
    drop(e);
    if dir {
        subtree(v, p, kind, out);
    }
}

fn walk(a: &dyn View, b: &dyn View, rel: &Path, out: &mut Vec<Change>) {
    let names: BTreeSet<OsString> = a.list(rel).into_iter().chain(b.list(rel)).collect();
    for name in names {
        let p = rel.join(&name);
        match (a.stat(&p), b.stat(&p)) {
            (None, None) => {}
            (None, Some(eb)) => side(b, eb, &p, ChangeKind::Added, out),
            (Some(ea), None) => side(a, ea, &p, ChangeKind::Deleted, out),
            (Some(ea), Some(eb)) => {
                let what = compare(&ea, &eb);
                if what == ["type"] {
                    side(a, ea, &p, ChangeKind::Deleted, out);
                    side(b, eb, &p, ChangeKind::Added, out);
                    continue;
                }
                let descend = ea.is_dir() && eb.is_dir();
                if !what.is_empty() {
                    out.push(Change { path: display(&p), kind: ChangeKind::Modified, what, file_type: eb.type_name() });
                }
                // Descriptors are closed before going down: a deep tree holds none per level.
                drop((ea, eb));
                if descend && (a.touched(&p) || b.touched(&p)) {
                    walk(a, b, &p, out);
                }
            }
        }
    }
}

/// The changes that lead from state `a` to state `b`, sorted by path.
pub fn diff(a: &dyn View, b: &dyn View) -> Vec<Change> {
    let mut out = vec![];
    walk(a, b, Path::new(""), &mut out);
    out.sort_by(|x, y| x.path.cmp(&y.path).then((x.kind as u8).cmp(&(y.kind as u8))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn symlinks_and_fifos_are_entries_never_followed_or_opened() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, host) = (t.path().join("a"), t.path().join("b"), t.path().join("host"));
        fs::create_dir_all(a.join("d")).unwrap();
        fs::write(a.join("d/x"), b"x").unwrap();
        fs::write(a.join("f"), b"data").unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("CANARY"), b"secret").unwrap();
        // Now a symlink to a host directory, now a FIFO where a file was.
        std::os::unix::fs::symlink(&host, b.join("d")).unwrap();
        nix::unistd::mkfifo(&b.join("f"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let d = diff(&DirView::open(&a, None).unwrap(), &DirView::open(&b, None).unwrap());
        assert!(!d.iter().any(|c| c.path.contains("CANARY")), "{d:?}");
        assert!(d.contains(&Change { path: "/d".into(), kind: ChangeKind::Added, what: vec![], file_type: "symlink" }), "{d:?}");
        assert!(d.contains(&Change { path: "/f".into(), kind: ChangeKind::Added, what: vec![], file_type: "other" }), "{d:?}");
        // The other way round: a directory where the symlink was is walked, the link is not.
        let d = diff(&DirView::open(&b, None).unwrap(), &DirView::open(&a, None).unwrap());
        assert!(!d.iter().any(|c| c.path.contains("CANARY")), "{d:?}");
        assert!(d.iter().any(|c| c.path == "/d/x"), "{d:?}");
    }

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
        let d = diff(&DirView::open(&a, None).unwrap(), &DirView::open(&b, None).unwrap());
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
        let a = OverlayView::open(&lower, &u1).unwrap();
        let b = OverlayView::open(&lower, &u2).unwrap();
        let d = kinds(&diff(&a, &b));
        assert!(d.contains(&("/etc/new".into(), ChangeKind::Added, vec![])), "{d:?}");
        if whiteout {
            assert!(d.contains(&("/etc/del".into(), ChangeKind::Deleted, vec![])), "{d:?}");
        }
        assert!(!d.iter().any(|(p, _, _)| p == "/etc/keep"));
    }
}
