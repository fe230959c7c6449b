//! The storage driver seam: one trait, a btrfs and an overlay implementation.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};
use crate::quota::{DiskLimits, DiskUsage, SnapshotBudget};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Btrfs,
    Overlay,
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DriverKind::Btrfs => "btrfs",
            DriverKind::Overlay => "overlay",
        })
    }
}

/// What the runtime needs to mount a container's root filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum ContainerRoot {
    /// A writable subvolume, mounted idmapped as the container's `/`.
    Btrfs { subvol: PathBuf },
    /// An overlay of the image directory `lower` with `dir/upper` (and `dir/work`), mounted on
    /// `dir/rootfs` inside the container's mount namespace.
    Overlay { lower: PathBuf, dir: PathBuf },
}

/// A storage pool. Methods block (file system work): call them from a blocking thread.
pub trait StorageDriver: Send + Sync + 'static {
    fn kind(&self) -> DriverKind;
    /// The pool's directory (`--storage-dir`).
    fn root(&self) -> &Path;
    /// An empty directory to fill with a new image; pass it to `commit_image` or `discard_staged`.
    fn stage_image(&self) -> Result<PathBuf>;
    /// Makes a staged image visible under `name` (read-only from then on).
    fn commit_image(&self, staged: &Path, name: &str) -> Result<()>;
    fn discard_staged(&self, staged: &Path);
    fn delete_image(&self, name: &str) -> Result<()>;
    fn has_image(&self, name: &str) -> bool {
        self.image_path(name).is_dir()
    }
    fn image_path(&self, name: &str) -> PathBuf {
        self.root().join("images").join(name)
    }
    /// Creates the private root filesystem of container `id` from `image`, bounded by `limits`
    /// from the start.
    fn create_container(&self, image: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot>;
    /// Creates container `id`'s root from snapshot `snapshot` of container `source` (both of
    /// `image`): on btrfs a writable snapshot of it (O(1)), on overlay a copy of its upper layer
    /// over the same image, counted against `limits` as the copy is written. Bounded by
    /// `limits` from the start; nothing is left when it fails.
    fn fork_container(&self, image: &str, source: &str, snapshot: &str, id: &str, limits: &DiskLimits) -> Result<ContainerRoot>;
    /// Reads snapshot `snapshot` of container `id` (made from `image`) as the container saw
    /// it: `read` is given the path of its whole tree, read-only, for as long as it runs (on
    /// btrfs the snapshot itself; on overlay its upper layer merged over the image, mounted
    /// where only `read`'s thread sees it).
    fn read_snapshot(
        &self,
        image: &str,
        id: &str,
        snapshot: &str,
        read: &mut (dyn FnMut(&Path) -> Result<crate::ImportReport> + Send),
    ) -> Result<crate::ImportReport>;
    /// The layout of an existing container root.
    fn container_root(&self, image: &str, id: &str) -> ContainerRoot;
    /// Deletes everything the pool holds for container `id` (idempotent).
    fn delete_container(&self, id: &str) -> Result<()>;
    /// Ids of every container directory in the pool (for reconciliation).
    fn container_ids(&self) -> Result<Vec<String>> {
        let dir = self.root().join("containers");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(StorageError::io("read directory", &dir))? {
            let e = e.map_err(StorageError::io("read directory", &dir))?;
            if let Some(n) = e.file_name().to_str() {
                out.push(n.to_owned());
            }
        }
        Ok(out)
    }
    fn container_dir(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id)
    }

    /// Where the container's snapshots live.
    fn snapshots_dir(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("snapshots")
    }

    fn has_snapshot(&self, id: &str, name: &str) -> bool {
        self.snapshots_dir(id).join(name).is_dir()
    }

    /// A point-in-time copy of the container's root (the caller freezes a running container).
    /// With a `budget`, a snapshot that would not fit is refused with `QuotaExceeded`.
    fn create_snapshot(&self, id: &str, name: &str, budget: Option<SnapshotBudget>) -> Result<SnapshotStats>;

    fn delete_snapshot(&self, id: &str, name: &str) -> Result<()>;

    /// Makes snapshot `name` the container's root. The new root is prepared beside the current
    /// one and the two are swapped atomically (`RENAME_EXCHANGE`): a failure at any step leaves
    /// the container on one complete root, never on none. `checkpoint` is called before each
    /// step (`restore-prepare`, `restore-swap`) and may stop it (fault injection in tests). The
    /// old root is left beside the new one for [`StorageDriver::cleanup_restore`].
    /// The new root is bounded by `limits` before it is swapped in; a restore is never refused
    /// for quota.
    /// The prepared root carries `token` (see [`StorageDriver::restore_swapped`]) until
    /// [`StorageDriver::finish_restore`]. Nothing is synced here: the caller syncs the pool.
    fn restore_snapshot(
        &self,
        id: &str,
        name: &str,
        limits: &DiskLimits,
        token: &str,
        checkpoint: &dyn Fn(&'static str) -> std::io::Result<()>,
    ) -> Result<()>;

    /// True when the container's live root is the one a restore with `token` prepared (the
    /// swap happened), for the start-up reconcile after a crash.
    fn restore_swapped(&self, id: &str, token: &str) -> bool;

    /// Ends a restore whose swap happened: the mark is cleared and what belongs to the old root
    /// alone (overlay: its work directory; with quotas its upper layer too) is reset; idempotent.
    fn finish_restore(&self, id: &str) -> Result<()>;

    /// Removes what a restore left behind (the previous root); idempotent.
    fn cleanup_restore(&self, id: &str) -> Result<()>;

    /// Makes what the pool holds reach the disk, before an answer and before the state row
    /// that points at it (btrfs: a transaction commit, which also persists subvolume entries
    /// and swaps; other file systems: `syncfs`).
    fn sync(&self) -> Result<()> {
        let fd = crate::dirfd::open_dir(self.root())?;
        nix::unistd::syncfs(&fd).map_err(|e| StorageError::io("syncfs", self.root())(e.into()))
    }

    /// Names of the snapshots of container `id` on disk, for the start-up reconcile.
    fn snapshot_names(&self, id: &str) -> Result<Vec<String>> {
        names_in(&self.snapshots_dir(id))
    }

    /// Names of the committed images on disk (staging entries left out).
    fn image_names(&self) -> Result<Vec<String>> {
        Ok(names_in(&self.root().join("images"))?.into_iter().filter(|n| !n.starts_with('.')).collect())
    }

    /// Removes every staging entry an interrupted import left; returns their names. Run at
    /// start-up only (no import is live then).
    fn discard_stale_staging(&self) -> Result<Vec<String>> {
        let mut out = vec![];
        for n in names_in(&self.root().join("images"))? {
            let p = self.root().join("images").join(&n);
            if n.starts_with(STAGING_PREFIX) {
                self.discard_staged(&p);
                // Reported only when it is gone (a failure was logged by discard_staged).
                if fs::symlink_metadata(&p).is_err() {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// Removes what an interrupted operation left in the container's directory (a restore's
    /// previous root, a diff's temporary snapshot); run at start-up, idempotent.
    fn cleanup_temporaries(&self, id: &str) -> Result<()> {
        self.cleanup_restore(id)
    }

    /// The state of the container's root in snapshot `name`, for diffs.
    fn snapshot_view(&self, image: &str, id: &str, name: &str) -> Result<Box<dyn crate::diff::View>>;

    /// The live state of the container's root, for diffs: on btrfs a temporary read-only
    /// snapshot of it (gone when the view is dropped; one a crash leaves is removed by
    /// [`StorageDriver::cleanup_restore`]), on overlay the live upper directory walked safely.
    fn live_view(&self, image: &str, id: &str) -> Result<Box<dyn crate::diff::View>>;

    /// Whether this pool can enforce disk limits in the kernel; why not, when it cannot.
    fn quota_support(&self) -> std::result::Result<(), String>;

    /// Whether this pool counts and limits inodes apart from bytes (overlay's project quotas;
    /// on btrfs inodes are metadata that the byte limit bounds).
    fn limits_inodes(&self) -> bool;

    /// Sets the container's disk limits in the kernel (live).
    fn set_disk_limits(&self, id: &str, limits: &DiskLimits) -> Result<()>;

    /// What the container's root (and, where the kernel counts them, its snapshots) use.
    fn disk_usage(&self, id: &str) -> Result<DiskUsage>;
}

/// What a snapshot took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    /// Bytes copied (overlay); `None` where the snapshot shares everything (btrfs).
    pub bytes: Option<u64>,
    /// What the snapshot counts against the container's snapshot space: btrfs, the root's
    /// exclusive bytes at the snapshot (all it can ever pin that no older snapshot pins);
    /// overlay, the bytes its copy added to the snapshots' project. 0 where quotas are off.
    pub charge: u64,
}

/// Runs a restore step, mapping a checkpoint refusal to `Interrupted`.
pub(crate) fn step(checkpoint: &dyn Fn(&'static str) -> std::io::Result<()>, name: &'static str) -> Result<()> {
    checkpoint(name).map_err(|source| StorageError::Interrupted { step: name, source })
}

/// Which driver to use: `auto` picks btrfs when `root` is on btrfs, else overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverChoice {
    Auto,
    Btrfs,
    Overlay,
}

impl std::str::FromStr for DriverChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DriverChoice::Auto),
            "btrfs" => Ok(DriverChoice::Btrfs),
            "overlay" => Ok(DriverChoice::Overlay),
            o => Err(format!("unknown storage driver {o:?} (auto, btrfs, overlay)")),
        }
    }
}

/// Names in `dir` (none when it does not exist).
fn names_in(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(StorageError::io("read directory", dir)(e)),
    };
    let mut out = vec![];
    for e in rd {
        let e = e.map_err(StorageError::io("read directory", dir))?;
        if let Some(n) = e.file_name().to_str() {
            out.push(n.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

const STAGING_PREFIX: &str = ".staging-";

/// A unique name for a staging entry under `images/`.
pub(crate) fn staging_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{STAGING_PREFIX}{}-{}-{}", std::process::id(), t, N.fetch_add(1, Ordering::Relaxed))
}
