//! overlay driver: an image is a plain directory (the lower layer); a container has `upper/` and
//! `work/` beside a `rootfs/` mount point. The overlay itself is mounted only inside the
//! container's mount namespace, by the runtime.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::driver::{ContainerRoot, DriverKind, SnapshotStats, StorageDriver, staging_name, step};
use crate::error::{Result, StorageError};
use crate::sys;
use std::ffi::OsStr;
use std::os::fd::AsFd;

pub struct OverlayDriver {
    root: PathBuf,
}

impl OverlayDriver {
    pub fn new(root: PathBuf) -> Self {
        OverlayDriver { root }
    }
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

    fn create_container(&self, image: &str, id: &str) -> Result<ContainerRoot> {
        let lower = self.image_path(image);
        if !lower.is_dir() {
            return Err(StorageError::ImageNotFound(image.to_owned()));
        }
        let dir = self.container_dir(id);
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => StorageError::ContainerExists(id.to_owned()),
            _ => StorageError::io("create directory", &dir)(e),
        })?;
        for (sub, mode) in [("upper", 0o755), ("work", 0o700), ("rootfs", 0o755)] {
            let p = dir.join(sub);
            if let Err(e) = fs::DirBuilder::new().mode(mode).create(&p) {
                let _ = fs::remove_dir_all(&dir);
                return Err(StorageError::io("create directory", &p)(e));
            }
        }
        Ok(ContainerRoot::Overlay { lower, dir })
    }

    fn container_root(&self, image: &str, id: &str) -> ContainerRoot {
        ContainerRoot::Overlay { lower: self.image_path(image), dir: self.container_dir(id) }
    }

    fn create_snapshot(&self, id: &str, name: &str) -> Result<SnapshotStats> {
        let dir = self.snapshots_dir(id).join(name);
        if dir.exists() {
            return Err(StorageError::SnapshotExists(name.to_owned()));
        }
        fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).map_err(StorageError::io("create directory", &dir))?;
        match crate::copy::copy_tree(&self.container_dir(id).join("upper"), &dir.join("upper")) {
            Ok(st) => Ok(SnapshotStats { bytes: Some(st.bytes) }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
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

    fn restore_snapshot(&self, id: &str, name: &str, checkpoint: &dyn Fn(&'static str) -> std::io::Result<()>) -> Result<()> {
        let snap = self.snapshots_dir(id).join(name).join("upper");
        if !snap.is_dir() {
            return Err(StorageError::SnapshotNotFound(name.to_owned()));
        }
        let dir = self.container_dir(id);
        let staged = dir.join(".restore");
        self.cleanup_restore(id)?;
        step(checkpoint, "restore-prepare")?;
        crate::copy::copy_tree(&snap, &staged)?;
        let swapped = step(checkpoint, "restore-swap").and_then(|_| {
            let dfd = crate::btrfs::open_dir(&dir)?;
            sys::exchange(dfd.as_fd(), OsStr::new("upper"), OsStr::new(".restore"))
                .map_err(StorageError::io("swap in the restored upper layer", &dir))
        });
        if let Err(e) = swapped {
            let _ = fs::remove_dir_all(&staged);
            return Err(e);
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

    fn snapshot_view(&self, image: &str, id: &str, name: &str) -> Box<dyn crate::diff::View> {
        Box::new(crate::diff::OverlayView { lower: self.image_path(image), upper: self.snapshots_dir(id).join(name).join("upper") })
    }

    fn live_view(&self, image: &str, id: &str) -> Box<dyn crate::diff::View> {
        Box::new(crate::diff::OverlayView { lower: self.image_path(image), upper: self.container_dir(id).join("upper") })
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
