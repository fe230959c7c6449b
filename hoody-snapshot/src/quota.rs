//! Disk quotas of containers, in the kernel.
//!
//! * btrfs: full qgroup accounting is enabled on the pool; `limits.disk` is `max_excl` of the
//!   level-0 qgroup of the container's root (bytes shared with the image are not counted), set
//!   on every new root before it is used (create, and a restore's new root before the swap).
//!   Snapshot space is bounded by the daemon's charges (see [`SnapshotBudget`]), not by a
//!   level-1 qgroup: on the kernels here, a snapshot inheriting into a qgroup that shares extents
//!   with a subvolume outside it (every container shares its image) marks the qgroups
//!   inconsistent, and the kernel then stops accounting — and enforcing — until a full rescan.
//! * overlay on ext4 or xfs: project quotas. The container directory gets project id `P` with
//!   PROJINHERIT before `upper/`, `work/` and any restore staging are made inside it (a rename
//!   across project ids fails with EXDEV and would break copy-up); its `snapshots/` gets `Q`.
//!   `P` is limited to `limits.disk` bytes and `limits.inodes` inodes, `Q` to
//!   `limits.snapshots_disk` bytes and the same inodes. Snapshot copies run without
//!   CAP_SYS_RESOURCE, so the kernel holds them to `Q` like any other writer.

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::quota_sys;

/// A container's disk bounds (bytes; inodes only where the driver counts them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLimits {
    pub disk: Option<u64>,
    pub snapshots_disk: Option<u64>,
    pub inodes: Option<u64>,
}

impl DiskLimits {
    pub fn is_empty(&self) -> bool {
        self.disk.is_none() && self.snapshots_disk.is_none() && self.inodes.is_none()
    }
}

/// What a container's storage uses now, as the kernel counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// The root's own bytes (btrfs: exclusive bytes of its qgroup; overlay: its project `P`).
    pub disk_bytes: u64,
    /// Bytes of the snapshots (overlay: project `Q`); `None` where the daemon counts them
    /// (btrfs: the sum of the snapshots' charges).
    pub snapshots_bytes: Option<u64>,
    /// Inodes of the root (overlay only; on btrfs inodes are metadata bytes, in `disk_bytes`).
    pub inodes: Option<u64>,
}

/// The snapshot space a new snapshot must fit in: `limit` (limits.snapshots_disk) and what the
/// existing snapshots are charged already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotBudget {
    pub limit: u64,
    pub charged: u64,
}

/// The project ids of a container on overlay: `P` for its root (and restore staging), `Q` for
/// its snapshots. Derived from the first 8 hex digits of its id, which the runtime keeps unique
/// among containers with the top bit clear (bit 31 tells `Q` from `P`).
pub fn project_ids(id: &str) -> (u32, u32) {
    let p = id.get(..8).and_then(|h| u32::from_str_radix(h, 16).ok()).unwrap_or(1) & 0x7fff_ffff;
    let p = p.max(1);
    (p, p | 0x8000_0000)
}

/// The pool's quotas (`Ok`), or why it has none: `QuotaUnsupported` when `limits` asks for a
/// bound, nothing to do when it does not.
pub(crate) fn quota_for<'a, Q>(quota: &'a std::result::Result<Q, String>, limits: &DiskLimits) -> Result<Option<&'a Q>> {
    match quota {
        Ok(q) => Ok(Some(q)),
        Err(e) if !limits.is_empty() => Err(StorageError::QuotaUnsupported(e.clone())),
        Err(_) => Ok(None),
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    crate::dirfd::open_dir(path)
}

/// Full qgroup accounting of a btrfs pool.
pub struct BtrfsQuota {
    /// `/sys/fs/btrfs/<fsid>/qgroups`.
    qgroups: PathBuf,
}

impl BtrfsQuota {
    /// Enables full qgroups on the pool at `root` and waits for any rescan to finish.
    pub fn enable(root: &Path, sysfs: &Path) -> std::result::Result<BtrfsQuota, String> {
        let fd = open_dir(root).map_err(|e| e.to_string())?;
        quota_sys::btrfs_quota_enable(fd.as_fd())
            .map_err(|e| format!("cannot enable btrfs quotas (qgroups) on {}: {e}", root.display()))?;
        quota_sys::btrfs_rescan_wait(fd.as_fd()).map_err(|e| format!("waiting for the qgroup rescan of {}: {e}", root.display()))?;
        let fsid = quota_sys::btrfs_fsid(fd.as_fd()).map_err(|e| format!("btrfs file system id of {}: {e}", root.display()))?;
        let qgroups = sysfs.join("fs/btrfs").join(fsid).join("qgroups");
        match fs::read_to_string(qgroups.join("mode")) {
            Ok(m) if m.trim() == "squota" => {
                return Err(format!(
                    "{} has btrfs simple quotas, which charge an extent forever to the subvolume that first wrote it \
                     (a restore would escape the bound); disable them and let hoodyd enable full qgroups",
                    root.display()
                ));
            }
            _ => {}
        }
        if !qgroups.is_dir() {
            return Err(format!("{} is missing: the kernel does not show qgroups in sysfs", qgroups.display()));
        }
        if fs::read_to_string(qgroups.join("inconsistent")).map(|s| s.trim() == "1").unwrap_or(false) {
            // Left inconsistent by someone else: accounting is off until a rescan.
            tracing::warn!(path = %root.display(), "btrfs qgroups are inconsistent; rescanning");
            quota_sys::btrfs_rescan_wait(fd.as_fd()).map_err(|e| format!("qgroup rescan: {e}"))?;
        }
        Ok(BtrfsQuota { qgroups })
    }

    /// The qgroup id (level 0) of the subvolume at `path`.
    pub fn subvol_id(path: &Path) -> Result<u64> {
        let fd = open_dir(path)?;
        quota_sys::btrfs_subvol_id(fd.as_fd()).map_err(StorageError::io("look up the subvolume id", path))
    }

    /// Sets `max_excl` of the subvolume at `path` (None: no limit).
    pub fn set_limit(&self, path: &Path, max_excl: Option<u64>) -> Result<()> {
        let id = Self::subvol_id(path)?;
        let fd = open_dir(path)?;
        quota_sys::btrfs_qgroup_limit_excl(fd.as_fd(), id, max_excl).map_err(StorageError::io("set the qgroup limit", path))
    }

    /// Commits the pool's transaction, so the qgroup numbers are current.
    pub fn sync(&self, path: &Path) -> Result<()> {
        let fd = open_dir(path)?;
        quota_sys::btrfs_sync(fd.as_fd()).map_err(StorageError::io("sync", path))
    }

    /// Exclusive bytes of the subvolume at `path`, as of the last commit.
    pub fn exclusive(&self, path: &Path) -> Result<u64> {
        let id = Self::subvol_id(path)?;
        let f = self.qgroups.join(format!("0_{id}/exclusive"));
        let s = fs::read_to_string(&f).map_err(StorageError::io("read", &f))?;
        s.trim().parse().map_err(|_| StorageError::io("parse", &f)(std::io::Error::from(std::io::ErrorKind::InvalidData)))
    }
}

/// Project quotas of an ext4 or xfs pool.
pub struct ProjectQuota {
    root: OwnedFd,
}

impl ProjectQuota {
    /// Project quotas are usable when they are on for the file system of `root`.
    pub fn open(root: &Path) -> std::result::Result<ProjectQuota, String> {
        let fd = open_dir(root).map_err(|e| e.to_string())?;
        if let Err(e) = quota_sys::project_quota_info(fd.as_fd()) {
            return Err(format!(
                "project quotas are not on for the file system of {} ({e}): ext4 needs -O quota,project \
                 (mkfs or tune2fs) and the mount option prjquota; xfs the mount option pquota",
                root.display()
            ));
        }
        if let Err(e) = quota_sys::project_of(fd.as_fd()) {
            return Err(format!("{} cannot carry project ids ({e})", root.display()));
        }
        Ok(ProjectQuota { root: fd })
    }

    /// Gives the (empty) directory at `path` project `id`, inherited by what is made inside.
    pub fn assign(path: &Path, id: u32) -> Result<()> {
        let fd = open_dir(path)?;
        quota_sys::set_project(fd.as_fd(), id).map_err(StorageError::io("set the project id", path))
    }

    /// Limits project `id` to `bytes` and `inodes` (None: no limit).
    pub fn set_limits(&self, id: u32, bytes: Option<u64>, inodes: Option<u64>) -> Result<()> {
        let q = quota_sys::DqBlk {
            // Limits are in 1 KiB blocks; a byte limit rounds up to the next block.
            bhardlimit: bytes.map(|b| b.div_ceil(quota_sys::QIF_DQBLKSIZE)).unwrap_or(0),
            ihardlimit: inodes.unwrap_or(0),
            valid: quota_sys::QIF_LIMITS,
            ..Default::default()
        };
        quota_sys::project_quota_set(self.root.as_fd(), id, &q).map_err(StorageError::io("set the project quota", format!("project {id}")))
    }

    /// (bytes, inodes) that project `id` uses.
    pub fn usage(&self, id: u32) -> Result<(u64, u64)> {
        let q = quota_sys::project_quota_get(self.root.as_fd(), id)
            .map_err(StorageError::io("read the project quota", format!("project {id}")))?;
        Ok((q.curspace, q.curinodes))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
}

/// Runs `f` on this thread without CAP_SYS_RESOURCE in its effective set, so that quota limits
/// hold for what it writes (a capable writer passes ext4's hard limits). Capabilities are per
/// thread; the capability is raised again afterwards.
pub fn without_resource_override<T>(f: impl FnOnce() -> T) -> T {
    use caps::{CapSet, Capability};
    let had = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
    if had {
        let _ = caps::drop(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE);
    }
    let out = f();
    if had {
        let _ = caps::raise(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE);
    }
    out
}

/// True for the errors a write past a quota gets.
pub fn is_quota_error(e: &StorageError) -> bool {
    let code = match e {
        StorageError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    matches!(code, Some(libc::EDQUOT) | Some(libc::ENOSPC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_differ_by_the_top_bit_and_are_never_zero() {
        assert_eq!(project_ids("0a1b2c3d4e5f60718293a4b5"), (0x0a1b2c3d, 0x8a1b2c3d));
        assert_eq!(project_ids("8a1b2c3d4e5f60718293a4b5"), (0x0a1b2c3d, 0x8a1b2c3d));
        assert_eq!(project_ids("000000004e5f60718293a4b5").0, 1);
    }
}
