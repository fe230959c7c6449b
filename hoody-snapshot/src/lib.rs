//! Storage for hoody: images, container root filesystems and snapshots.
//!
//! Two drivers implement [`StorageDriver`]: btrfs (images are read-only subvolumes, container
//! roots are writable snapshots of them) and overlay (images are lower directories, containers
//! get an upper and a work directory). Files are stored with the container's *own* ids (0..65535);
//! the runtime maps them with idmapped mounts, so nothing is ever chowned per container.

pub mod beneath;
pub mod btrfs;
mod btrfs_tree;
pub mod busybox;
pub mod copy;
pub mod diff;
mod dirfd;
pub mod driver;
pub mod error;
pub mod import_dir;
pub mod import_tar;
pub mod overlay;
mod pool;
pub mod quota;
mod quota_sys;
pub mod relpath;
mod restore_mark;
pub mod snapshot_view;
mod sys;
pub mod tree_writer;

pub use driver::{ContainerRoot, DriverKind, StorageDriver};
pub use error::StorageError;
pub use pool::open_driver;
pub use quota::{DiskLimits, DiskUsage, SnapshotBudget};
pub use tree_writer::{ImportReport, OwnerPolicy, SafeTreeWriter};

/// Size of the id range a container's files use on disk (container uid/gid 0..65535).
pub const ID_RANGE: u32 = 65536;
/// Owner given to archive entries whose uid or gid does not fit the container range.
pub const OVERFLOW_ID: u32 = 65534;
