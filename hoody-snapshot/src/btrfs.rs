//! btrfs driver: an image is a read-only subvolume, a container root a writable snapshot of it
//! (constant time whatever the image size). All through ioctls, no `btrfs` command.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tracing::debug;

use crate::driver::{ContainerRoot, DriverKind, SnapshotStats, StorageDriver, staging_name, step};
use crate::error::{Result, StorageError};
use crate::quota::{BtrfsQuota, DiskLimits, DiskUsage, SnapshotBudget};
use crate::sys;

pub struct BtrfsDriver {
    root: PathBuf,
    /// Full qgroup accounting of the pool, or why it could not be enabled.
    quota: std::result::Result<BtrfsQuota, String>,
}

use crate::dirfd::open_dir;

fn split(path: &Path) -> (&Path, &OsStr) {
    (path.parent().expect("pool paths have a parent"), path.file_name().expect("pool paths have a name"))
}

/// Deletes the subvolume at `path` and whatever subvolumes are nested in it, by id (clearing
/// the read-only flag is not needed as root).
pub(crate) fn destroy_subvolume(path: &Path) -> Result<()> {
    crate::btrfs_tree::destroy(path)
}

/// Snapshots `src` to `dst` (which must not exist).
pub(crate) fn snapshot(src: &Path, dst: &Path, readonly: bool) -> Result<()> {
    let sfd = open_dir(src)?;
    let (parent, name) = split(dst);
    let pfd = open_dir(parent)?;
    sys::snapshot(sfd.as_fd(), pfd.as_fd(), name, readonly).map_err(StorageError::io("snapshot subvolume", dst))?;
    debug!(src = %src.display(), dst = %dst.display(), readonly, "btrfs snapshot created");
    Ok(())
}

/// Names of the temporary snapshots diffs read the live root through.
const DIFF_PREFIX: &str = ".diff-";

/// A snapshot deleted when this is dropped.
struct TemporarySnapshot(PathBuf);

impl Drop for TemporarySnapshot {
    fn drop(&mut self) {
        if let Err(e) = destroy_subvolume(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not delete a diff's temporary snapshot (removed at start-up)");
        }
    }
}

/// True when `path` is the root of a subvolume (inode 256 on btrfs).
pub(crate) fn is_subvolume(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).map(|m| m.is_dir() && m.ino() == 256).unwrap_or(false)
}

impl BtrfsDriver {
    /// The subvolume of snapshot `name` of container `id`, if there is one.
    fn snapshot_subvol(&self, id: &str, name: &str) -> Result<PathBuf> {
        let p = self.snapshots_dir(id).join(name);
        if !p.is_dir() {
            return Err(StorageError::SnapshotNotFound(name.to_owned()));
        }
        Ok(p)
    }

    /// Container `id`'s root as a writable snapshot of the subvolume `from` (an image or a
    /// snapshot: O(1)), bounded by `limits` before anything can write to it; nothing is left
    /// when it fails.
    fn root_from(&self, from: &Path, id: &str, limits: &DiskLimits) -> Result<ContainerRoot> {
        let quota = crate::quota::quota_for(&self.quota, limits)?;
        let dir = self.container_dir(id);
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StorageError::ContainerExists(id.to_owned()),
            _ => StorageError::io("create directory", &dir)(e),
        })?;
        let subvol = dir.join("rootfs");
        if let Err(e) = snapshot(from, &subvol, false) {
            let _ = fs::remove_dir(&dir);
            return Err(e);
        }
        if let Some(q) = quota
            && let Err(e) = q.set_limit(&subvol, limits.disk)
        {
            let _ = self.delete_container(id);
            return Err(e);
        }
        Ok(ContainerRoot::Btrfs { subvol })
    }

    pub fn new(root: PathBuf, quota: std::result::Result<BtrfsQuota, String>) -> Self {
        if let Err(e) = &quota {
            tracing::warn!(path = %root.display(), reason = %e, "btrfs quotas are off: disk limits are refused");
        }
        BtrfsDriver { root, quota }
    }

    /// The file system id: snapshots and their origin share it and keep inode numbers.
    fn lineage(&self) -> Option<u64> {
        nix::sys::statvfs::statvfs(&self.root).ok().map(|s| s.filesystem_id())
    }
}

impl StorageDriver for BtrfsDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Btrfs
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn stage_image(&self) -> Result<PathBuf> {
        let path = self.root.join("images").join(staging_name());
        let (parent, name) = split(&path);
        let pfd = open_dir(parent)?;
        sys::subvol_create(pfd.as_fd(), name).map_err(StorageError::io("create subvolume", &path))?;
        Ok(path)
    }

    fn commit_image(&self, staged: &Path, name: &str) -> Result<()> {
        let dst = self.image_path(name);
        if dst.exists() {
            return Err(StorageError::ImageExists(name.to_owned()));
        }
        let fd = open_dir(staged)?;
        sys::subvol_set_readonly(fd.as_fd(), true).map_err(StorageError::io("make subvolume read-only", staged))?;
        fs::rename(staged, &dst).map_err(StorageError::io("rename", &dst))?;
        Ok(())
    }

    fn discard_staged(&self, staged: &Path) {
        if let Err(e) = destroy_subvolume(staged) {
            tracing::warn!(path = %staged.display(), error = %e, "could not discard staged image");
        }
    }

    fn delete_image(&self, name: &str) -> Result<()> {
        let path = self.image_path(name);
        if !path.exists() {
            return Err(StorageError::ImageNotFound(name.to_owned()));
        }
        destroy_subvolume(&path)
    }

    fn create_container(&self, image: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot> {
        let img = self.image_path(image);
        if !img.is_dir() {
            return Err(StorageError::ImageNotFound(image.to_owned()));
        }
        self.root_from(&img, id, limits)
    }

    fn fork_container(&self, _image: &str, source: &str, snapshot_name: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot> {
        let snap = self.snapshot_subvol(source, snapshot_name)?;
        self.root_from(&snap, id, limits)
    }

    fn read_snapshot(
        &self,
        _image: &str,
        id: &str,
        snapshot: &str,
        read: &mut (dyn FnMut(&Path) -> Result<crate::ImportReport> + Send),
    ) -> Result<crate::ImportReport> {
        let snap = self.snapshot_subvol(id, snapshot)?;
        read(&snap)
    }

    fn container_root(&self, _image: &str, id: &str) -> ContainerRoot {
        ContainerRoot::Btrfs { subvol: self.container_dir(id).join("rootfs") }
    }

    fn create_snapshot(&self, id: &str, name: &str, budget: Option<SnapshotBudget>) -> Result<SnapshotStats> {
        let dir = self.snapshots_dir(id);
        fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).map_err(StorageError::io("create directory", &dir))?;
        let dst = dir.join(name);
        if dst.exists() {
            return Err(StorageError::SnapshotExists(name.to_owned()));
        }
        let root = self.container_dir(id).join("rootfs");
        // The charge: the root's exclusive bytes now, committed first so the number is current.
        // Everything this snapshot can ever pin that no older snapshot pins is among them
        // (bytes shared with the image stay the image's; bytes shared with an older snapshot
        // are that snapshot's charge).
        let charge = match &self.quota {
            Ok(q) => {
                q.sync(&root)?;
                q.exclusive(&root)?
            }
            Err(e) if budget.is_some() => return Err(StorageError::QuotaUnsupported(e.clone())),
            Err(_) => 0,
        };
        if let Some(b) = budget
            && b.charged.saturating_add(charge) > b.limit
        {
            return Err(StorageError::QuotaExceeded(format!(
                "snapshot space is full: the snapshots hold up to {} and this one could pin {} more, over limits.snapshots_disk {}",
                b.charged, charge, b.limit
            )));
        }
        snapshot(&root, &dst, true)?;
        Ok(SnapshotStats { bytes: None, charge })
    }

    fn delete_snapshot(&self, id: &str, name: &str) -> Result<()> {
        let p = self.snapshots_dir(id).join(name);
        if !p.exists() {
            return Err(StorageError::SnapshotNotFound(name.to_owned()));
        }
        destroy_subvolume(&p)
    }

    fn restore_snapshot(
        &self,
        id: &str,
        name: &str,
        limits: &DiskLimits,
        token: &str,
        checkpoint: &dyn Fn(&'static str) -> std::io::Result<()>,
    ) -> Result<()> {
        let quota = self.quota.as_ref().ok();
        let snap = self.snapshot_subvol(id, name)?;
        let dir = self.container_dir(id);
        let staged = dir.join(".restore");
        self.cleanup_restore(id)?;
        step(checkpoint, "restore-prepare")?;
        snapshot(&snap, &staged, false)?;
        // The new root is bounded before it is swapped in (never refused: rolling back a
        // container that filled its quota is what restore is for).
        let bounded = match quota {
            Some(q) => q.set_limit(&staged, limits.disk),
            None => Ok(()),
        }
        .and_then(|_| crate::restore_mark::set(&staged, token));
        let swapped = bounded.and_then(|_| step(checkpoint, "restore-swap")).and_then(|_| {
            let dfd = open_dir(&dir)?;
            sys::exchange(dfd.as_fd(), OsStr::new("rootfs"), OsStr::new(".restore"))
                .map_err(StorageError::io("swap in the restored root", &dir))
        });
        if let Err(e) = swapped {
            let _ = destroy_subvolume(&staged);
            return Err(e);
        }
        Ok(())
    }

    fn restore_swapped(&self, id: &str, token: &str) -> bool {
        crate::restore_mark::has(&self.container_dir(id).join("rootfs"), token)
    }

    fn finish_restore(&self, id: &str) -> Result<()> {
        crate::restore_mark::clear(&self.container_dir(id).join("rootfs"))
    }

    fn cleanup_restore(&self, id: &str) -> Result<()> {
        let staged = self.container_dir(id).join(".restore");
        if is_subvolume(&staged) { destroy_subvolume(&staged) } else { Ok(()) }
    }

    fn sync(&self) -> Result<()> {
        let fd = open_dir(&self.root)?;
        crate::quota_sys::btrfs_sync(fd.as_fd()).map_err(StorageError::io("commit the btrfs transaction", &self.root))
    }

    fn cleanup_temporaries(&self, id: &str) -> Result<()> {
        self.cleanup_restore(id)?;
        let dir = self.container_dir(id);
        for e in fs::read_dir(&dir).map_err(StorageError::io("read directory", &dir))?.flatten() {
            if e.file_name().to_string_lossy().starts_with(DIFF_PREFIX) && is_subvolume(&e.path()) {
                destroy_subvolume(&e.path())?;
            }
        }
        Ok(())
    }

    fn snapshot_view(&self, _image: &str, id: &str, name: &str) -> Result<Box<dyn crate::diff::View>> {
        let p = self.snapshots_dir(id).join(name);
        let v = crate::diff::DirView::open(&p, self.lineage()).map_err(StorageError::io("open snapshot", &p))?;
        Ok(Box::new(v))
    }

    fn live_view(&self, _image: &str, id: &str) -> Result<Box<dyn crate::diff::View>> {
        // A read-only snapshot of the live root: the tree cannot change under the walk.
        let dir = self.container_dir(id);
        let tmp = dir.join(format!("{DIFF_PREFIX}{}", staging_name()));
        snapshot(&dir.join("rootfs"), &tmp, true)?;
        let guard = TemporarySnapshot(tmp.clone());
        let v = crate::diff::DirView::open(&tmp, self.lineage()).map_err(StorageError::io("open snapshot", &tmp))?;
        Ok(Box::new(v.holding(Box::new(guard))))
    }

    fn quota_support(&self) -> std::result::Result<(), String> {
        self.quota.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn limits_inodes(&self) -> bool {
        false
    }

    fn set_disk_limits(&self, id: &str, limits: &DiskLimits) -> Result<()> {
        match crate::quota::quota_for(&self.quota, limits)? {
            Some(q) => q.set_limit(&self.container_dir(id).join("rootfs"), limits.disk),
            None => Ok(()),
        }
    }

    fn disk_usage(&self, id: &str) -> Result<DiskUsage> {
        match &self.quota {
            Ok(q) => {
                Ok(DiskUsage { disk_bytes: q.exclusive(&self.container_dir(id).join("rootfs"))?, snapshots_bytes: None, inodes: None })
            }
            Err(e) => Err(StorageError::QuotaUnsupported(e.clone())),
        }
    }

    fn delete_container(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        // Every subvolume below the container directory (its root, its snapshots) goes first.
        let mut subvols = Vec::new();
        collect_subvolumes(&dir, &mut subvols)?;
        subvols.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for sv in subvols {
            destroy_subvolume(&sv)?;
        }
        fs::remove_dir_all(&dir).map_err(StorageError::io("remove directory", &dir))
    }
}

/// Finds subvolumes up to two levels below `dir` (rootfs, snapshots/<name>).
fn collect_subvolumes(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).map_err(StorageError::io("read directory", dir))? {
        let p = e.map_err(StorageError::io("read directory", dir))?.path();
        if is_subvolume(&p) {
            out.push(p);
        } else if p.is_dir() && !p.is_symlink() {
            for e in fs::read_dir(&p).map_err(StorageError::io("read directory", &p))? {
                let q = e.map_err(StorageError::io("read directory", &p))?.path();
                if is_subvolume(&q) {
                    out.push(q);
                }
            }
        }
    }
    Ok(())
}
