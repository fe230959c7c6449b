use std::io;
use std::path::PathBuf;

/// Errors of the storage layer. Every variant names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image {0:?} already exists")]
    ImageExists(String),
    #[error("image {0:?} not found")]
    ImageNotFound(String),
    #[error("container root of {0} already exists")]
    ContainerExists(String),
    #[error("snapshot {0:?} already exists")]
    SnapshotExists(String),
    #[error("snapshot {0:?} not found")]
    SnapshotNotFound(String),
    #[error("restore stopped at step {step}")]
    Interrupted {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("archive entry {entry:?} refused: {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("cannot read the archive")]
    Archive(#[source] io::Error),
    #[error("{path} is not a directory or a tar archive", path = .0.display())]
    NotImportable(PathBuf),
    /// The archive is not a root file system: what it is instead.
    #[error("not a root file system: {0}")]
    NotARootFs(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the storage directory cannot enforce disk limits: {0}")]
    QuotaUnsupported(String),
    #[error("{}: storage driver {driver} does not work here: {reason}", path.display())]
    Unsupported { driver: &'static str, path: PathBuf, reason: String },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
