//! Opening the storage pool: its layout on disk and the driver its file system calls for.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use nix::sys::statfs::{BTRFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, statfs};

use crate::btrfs::BtrfsDriver;
use crate::driver::{DriverChoice, DriverKind, StorageDriver};
use crate::error::{Result, StorageError};
use crate::overlay::OverlayDriver;
use crate::quota::{BtrfsQuota, ProjectQuota};

/// Creates the pool layout under `root` (mode 0700: image trees hold setuid files owned by
/// container ids, which no host user may reach) and opens the driver. Quotas are turned on
/// where the file system has them (btrfs: full qgroups, enabled here; ext4/xfs: project quotas,
/// which the mount must have on) unless `quotas` is false; `sysfs` is where the kernel's sysfs is
/// mounted.
pub fn open_driver(choice: DriverChoice, root: &Path, sysfs: &Path, quotas: bool) -> Result<Box<dyn StorageDriver>> {
    const OFF: &str = "disk quotas are turned off (--disk-quotas off)";
    for sub in ["", "images", "containers"] {
        let p = root.join(sub);
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&p).map_err(StorageError::io("create directory", &p))?;
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(StorageError::io("chmod", root))?;
    let st = statfs(root).map_err(|e| StorageError::io("statfs", root)(e.into()))?;
    let on_btrfs = st.filesystem_type() == BTRFS_SUPER_MAGIC;
    let kind = match choice {
        DriverChoice::Auto if on_btrfs => DriverKind::Btrfs,
        DriverChoice::Auto => DriverKind::Overlay,
        DriverChoice::Btrfs => DriverKind::Btrfs,
        DriverChoice::Overlay => DriverKind::Overlay,
    };
    match kind {
        DriverKind::Btrfs if !on_btrfs => Err(StorageError::Unsupported {
            driver: "btrfs",
            path: root.to_path_buf(),
            reason: "the directory is not on a btrfs file system".into(),
        }),
        DriverKind::Btrfs => {
            let quota = if quotas { BtrfsQuota::enable(root, sysfs) } else { Err(OFF.to_owned()) };
            Ok(Box::new(BtrfsDriver::new(root.to_path_buf(), quota)))
        }
        DriverKind::Overlay if st.filesystem_type() == OVERLAYFS_SUPER_MAGIC => Err(StorageError::Unsupported {
            driver: "overlay",
            path: root.to_path_buf(),
            reason: "an overlay upper directory cannot live on overlayfs; use another file system".into(),
        }),
        DriverKind::Overlay => {
            let quota = if quotas { ProjectQuota::open(root) } else { Err(OFF.to_owned()) };
            Ok(Box::new(OverlayDriver::new(root.to_path_buf(), quota)))
        }
    }
}
