//! A snapshot's whole tree as the container saw it, for reading once (publishing it as an
//! image). On btrfs that is the snapshot's read-only subvolume itself. On overlay it is a
//! read-only overlay of the snapshot's upper layer over the image (the kernel applies the
//! whiteouts and opaque directories), mounted in a mount namespace of a thread of its own, so
//! it is gone, whatever happens, when that thread ends: nothing is ever mounted where the rest
//! of the host could see it, and a crash leaves only an empty staging directory that the
//! start-up reconcile removes.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Result, StorageError};

/// Runs `read` on the merged tree of the overlay `upper` (a snapshot's) over `lower` (its
/// image), mounted read-only at `at` (an empty directory) in a private mount namespace of a
/// thread made for it.
pub fn with_overlay_view<T: Send>(lower: &Path, upper: &Path, at: &Path, read: impl FnOnce(&Path) -> Result<T> + Send) -> Result<T> {
    for p in [lower, upper] {
        let s = p.to_str().unwrap_or(",");
        if s.contains([',', ':', '\\']) || !p.is_absolute() {
            return Err(StorageError::io("use as an overlay layer", p)(std::io::Error::other(
                "a layer path must be absolute, in UTF-8, without ',', ':' or '\\'",
            )));
        }
    }
    // The two layers are lower layers: the upper one's whiteouts hide the image's entries.
    // `userxattr`: the container's overlay (mounted in its user namespace) marks opaque
    // directories with user.overlay.* attributes, so they are read as such here too.
    let options = format!("lowerdir={}:{},userxattr", upper.display(), lower.display());
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                // This thread alone gets the new namespace (it stops sharing the process's
                // file system attributes); the namespace, and the mount in it, go when it ends.
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(|e| StorageError::io("unshare the mount namespace", at)(e.into()))?;
                nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .map_err(|e| StorageError::io("make the mounts private", at)(e.into()))?;
                nix::mount::mount(
                    Some("overlay"),
                    at,
                    Some("overlay"),
                    MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                    Some(options.as_str()),
                )
                .map_err(|e| StorageError::io("mount the snapshot's merged view", at)(e.into()))?;
                let r = read(at);
                let _ = nix::mount::umount2(at, MntFlags::MNT_DETACH);
                r
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
