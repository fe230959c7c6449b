//! overlay driver: an image is a plain directory (the lower layer); a container has `upper/` and
//! `work/` beside a `rootfs/` mount point. The overlay itself is mounted only inside the
//! container's mount namespace, by the runtime.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::driver::{ContainerRoot, DriverKind, SnapshotStats, StorageDriver, staging_name, step};
use crate::error::{Result, StorageError};
use crate::quota::{self, DiskLimits, DiskUsage, ProjectQuota, SnapshotBudget, project_ids};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::AsFd;

pub struct OverlayDriver {
    root: PathBuf,
    /// Project quotas of the pool's file system, or why there are none.
    quota: std::result::Result<ProjectQuota, String>,
}

impl OverlayDriver {
    /// The upper layer kept by snapshot `name` of container `id`, if there is one.
    fn snapshot_upper(&self, id: &str, name: &str) -> Result<PathBuf> {
        let p = self.snapshots_dir(id).join(name).join("upper");
        if !p.is_dir() {
            return Err(StorageError::SnapshotNotFound(name.to_owned()));
        }
        Ok(p)
    }

    pub fn new(root: PathBuf, quota: std::result::Result<ProjectQuota, String>) -> Self {
        if let Err(e) = &quota {
            tracing::info!(path = %root.display(), reason = %e, "no project quotas: disk and inode limits are refused");
        }
        OverlayDriver { root, quota }
    }

    /// Makes the container directory `dir` and its `snapshots/`, each in its project (before
    /// anything is made inside them), with their limits.
    fn make_dirs(&self, dir: &Path, id: &str, q: Option<&ProjectQuota>, limits: &DiskLimits) -> Result<()> {
        let snaps = self.snapshots_dir(id);
        fs::DirBuilder::new().mode(0o700).create(&snaps).map_err(StorageError::io("create directory", &snaps))?;
        if let Some(q) = q {
            let (p, s) = project_ids(id);
            ProjectQuota::assign(dir, p)?;
            ProjectQuota::assign(&snaps, s)?;
            set_limits(q, id, limits)?;
        }
        for (sub, mode) in [("upper", 0o755), ("work", 0o700), ("rootfs", 0o755)] {
            let p = dir.join(sub);
            fs::DirBuilder::new().mode(mode).create(&p).map_err(StorageError::io("create directory", &p))?;
        }
        Ok(())
    }
}

fn set_limits(q: &ProjectQuota, id: &str, limits: &DiskLimits) -> Result<()> {
    let (p, s) = project_ids(id);
    q.set_limits(p, limits.disk, limits.inodes)?;
    q.set_limits(s, limits.snapshots_disk, limits.inodes)
}

impl StorageDriver for OverlayDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Overlay
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn stage_image(&self) -> Result<PathBuf> {
        let path = self.root.join("images").join(staging_name());
        fs::DirBuilder::new().mode(0o755).create(&path).map_err(StorageError::io("create directory", &path))?;
        Ok(path)
    }

    fn commit_image(&self, staged: &Path, name: &str) -> Result<()> {
        let dst = self.image_path(name);
        if dst.exists() {
            return Err(StorageError::ImageExists(name.to_owned()));
        }
        fs::rename(staged, &dst).map_err(StorageError::io("rename", &dst))
    }

    fn discard_staged(&self, staged: &Path) {
        if let Err(e) = fs::remove_dir_all(staged) {
            tracing::warn!(path = %staged.display(), error = %e, "could not discard staged image");
        }
    }

    fn delete_image(&self, name: &str) -> Result<()> {
        let path = self.image_path(name);
        if !path.exists() {
            return Err(StorageError::ImageNotFound(name.to_owned()));
        }
        fs::remove_dir_all(&path).map_err(StorageError::io("remove directory", &path))
    }

    fn create_container(&self, image: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot> {
        let quota = crate::quota::quota_for(&self.quota, limits)?;
        let lower = self.image_path(image);
        if !lower.is_dir() {
            return Err(StorageError::ImageNotFound(image.to_owned()));
        }
        let dir = self.container_dir(id);
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StorageError::ContainerExists(id.to_owned()),
            _ => StorageError::io("create directory", &dir)(e),
        })?;
        if let Err(e) = self.make_dirs(&dir, id, quota, limits) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(ContainerRoot::Overlay { lower, dir })
    }

    fn fork_container(&self, image: &str, source: &str, snapshot: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot> {
        let snap = self.snapshot_upper(source, snapshot)?;
        let root = self.create_container(image, id, limits)?;
        let upper = self.container_dir(id).join("upper");
        // The snapshot's upper layer (whiteouts and opaque directories with it) replaces the
        // empty one, written as any writer is, so the new root's limits hold for the copy.
        let copied = fs::remove_dir(&upper)
            .map_err(StorageError::io("remove directory", &upper))
            .and_then(|_| quota::without_resource_override(|| crate::copy::copy_tree(&snap, &upper)));
        if let Err(e) = copied {
            let _ = self.delete_container(id);
            if self.quota.is_ok() && quota::is_quota_error(&e) {
                return Err(StorageError::QuotaExceeded(format!("the snapshot does not fit in the new container's limits.disk ({e})")));
            }
            return Err(e);
        }
        Ok(root)
    }

    fn read_snapshot(
        &self,
        image: &str,
        id: &str,
        snapshot: &str,
        read: &mut (dyn FnMut(&Path) -> Result<crate::ImportReport> + Send),
    ) -> Result<crate::ImportReport> {
        let upper = self.snapshot_upper(id, snapshot)?;
        // The mount point is a staging entry: a crash leaves it to the start-up reconcile.
        let at = self.stage_image()?;
        let r = crate::snapshot_view::with_overlay_view(&self.image_path(image), &upper, &at, |view| read(view));
        self.discard_staged(&at);
        r
    }

    fn container_root(&self, image: &str, id: &str) -> ContainerRoot {
        ContainerRoot::Overlay { lower: self.image_path(image), dir: self.container_dir(id) }
    }

    fn create_snapshot(&self, id: &str, name: &str, budget: Option<SnapshotBudget>) -> Result<SnapshotStats> {
        let dir = self.snapshots_dir(id).join(name);
        if dir.exists() {
            return Err(StorageError::SnapshotExists(name.to_owned()));
        }
        let q = match &self.quota {
            Ok(q) => Some(q),
            Err(e) if budget.is_some() => return Err(StorageError::QuotaUnsupported(e.clone())),
            Err(_) => None,
        };
        let (p, s) = project_ids(id);
        let before = q.map(|q| q.usage(s)).transpose()?.unwrap_or_default();
        if let (Some(q), Some(b)) = (q, budget) {
            // Refused at once when the root alone would not fit beside the snapshots.
            let (root_bytes, _) = q.usage(p)?;
            if before.0.saturating_add(root_bytes) > b.limit {
                return Err(StorageError::QuotaExceeded(format!(
                    "snapshot space is full: the snapshots use {} and the root {}, over limits.snapshots_disk {}",
                    before.0, root_bytes, b.limit
                )));
            }
        }
        fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).map_err(StorageError::io("create directory", &dir))?;
        // The copy is written as the kernel charges any writer: without CAP_SYS_RESOURCE, the
        // snapshots' project limit holds for it too.
        let copied = quota::without_resource_override(|| crate::copy::copy_tree(&self.container_dir(id).join("upper"), &dir.join("upper")));
        match copied {
            Ok(st) => {
                let after = q.map(|q| q.usage(s)).transpose()?.unwrap_or_default();
                Ok(SnapshotStats { bytes: Some(st.bytes), charge: after.0.saturating_sub(before.0) })
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                if q.is_some() && quota::is_quota_error(&e) {
                    return Err(StorageError::QuotaExceeded(format!("snapshot space is full: the copy of the root does not fit ({e})")));
                }
                Err(e)
            }
        }
    }

    fn delete_snapshot(&self, id: &str, name: &str) -> Result<()> {
        let p = self.snapshots_dir(id).join(name);
        if !p.exists() {
            return Err(StorageError::SnapshotNotFound(name.to_owned()));
        }
        fs::remove_dir_all(&p).map_err(StorageError::io("remove directory", &p))
    }

    fn restore_snapshot(
        &self,
        id: &str,
        name: &str,
        _limits: &DiskLimits,
        token: &str,
        checkpoint: &dyn Fn(&'static str) -> std::io::Result<()>,
    ) -> Result<()> {
        // The staging directory is made inside the container directory and so takes its
        // project, whose limits already hold; the copy keeps CAP_SYS_RESOURCE (a restore is
        // never refused for quota).
        let snap = self.snapshot_upper(id, name)?;
        let dir = self.container_dir(id);
        let staged = dir.join(".restore");
        self.cleanup_restore(id)?;
        step(checkpoint, "restore-prepare")?;
        crate::copy::copy_tree(&snap, &staged)?;
        let swapped = crate::restore_mark::set(&staged, token).and_then(|_| step(checkpoint, "restore-swap")).and_then(|_| {
            let dfd = crate::dirfd::open_dir(&dir)?;
            sys::exchange(dfd.as_fd(), OsStr::new("upper"), OsStr::new(".restore"))
                .map_err(StorageError::io("swap in the restored upper layer", &dir))
        });
        if let Err(e) = swapped {
            let _ = fs::remove_dir_all(&staged);
            return Err(e);
        }
        Ok(())
    }

    fn restore_swapped(&self, id: &str, token: &str) -> bool {
        crate::restore_mark::has(&self.container_dir(id).join("upper"), token)
    }

    fn finish_restore(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        crate::restore_mark::clear(&dir.join("upper"))?;
        // The previous upper layer goes now, not later: its bytes and inodes count against the
        // container's project until they are gone, and a container restarted over its quota
        // gets a read-only overlay (the kernel cannot make work/work).
        if self.quota.is_ok() {
            self.cleanup_restore(id)?;
        }
        // The work directory belongs to the old upper layer: start it afresh.
        let work = dir.join("work");
        let _ = fs::remove_dir_all(&work);
        fs::DirBuilder::new().mode(0o700).create(&work).map_err(StorageError::io("create directory", &work))
    }

    fn cleanup_restore(&self, id: &str) -> Result<()> {
        let staged = self.container_dir(id).join(".restore");
        match fs::remove_dir_all(&staged) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io("remove directory", &staged)(e)),
            _ => Ok(()),
        }
    }

    fn snapshot_view(&self, image: &str, id: &str, name: &str) -> Result<Box<dyn crate::diff::View>> {
        let upper = self.snapshots_dir(id).join(name).join("upper");
        let v = crate::diff::OverlayView::open(&self.image_path(image), &upper).map_err(StorageError::io("open snapshot", &upper))?;
        Ok(Box::new(v))
    }

    /// The live upper directory, walked safely but not frozen: a tree changing during the walk
    /// gives a best-effort answer (each entry as it was when looked at).
    fn live_view(&self, image: &str, id: &str) -> Result<Box<dyn crate::diff::View>> {
        let upper = self.container_dir(id).join("upper");
        let v =
            crate::diff::OverlayView::open(&self.image_path(image), &upper).map_err(StorageError::io("open upper directory", &upper))?;
        Ok(Box::new(v))
    }

    fn quota_support(&self) -> std::result::Result<(), String> {
        self.quota.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn limits_inodes(&self) -> bool {
        true
    }

    fn set_disk_limits(&self, id: &str, limits: &DiskLimits) -> Result<()> {
        let Some(q) = crate::quota::quota_for(&self.quota, limits)? else { return Ok(()) };
        let dir = self.container_dir(id);
        let fd = crate::dirfd::open_dir(&dir)?;
        let (p, _) = project_ids(id);
        match crate::quota_sys::project_of(fd.as_fd()) {
            Ok((have, true)) if have == p => set_limits(q, id, limits),
            _ => Err(StorageError::QuotaUnsupported(format!(
                "container {id} was created before the pool had project quotas: its files carry no project id"
            ))),
        }
    }

    fn disk_usage(&self, id: &str) -> Result<DiskUsage> {
        let q = self.quota.as_ref().map_err(|e| StorageError::QuotaUnsupported(e.clone()))?;
        let (p, s) = project_ids(id);
        let (bytes, inodes) = q.usage(p)?;
        let (snap_bytes, _) = q.usage(s)?;
        Ok(DiskUsage { disk_bytes: bytes, snapshots_bytes: Some(snap_bytes), inodes: Some(inodes) })
    }

    fn delete_container(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove directory", &dir)(e)),
        }
    }
}
