use std::io;
use std::path::PathBuf;

/// Errors inside the helper processes. Each names the step and the object it failed on.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{step} {}", path.display())]
    Path {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{step}")]
    Step {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot execute {command:?}")]
    Exec {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("container process failed during setup: {0}")]
    Child(String),
    #[error("invalid helper input")]
    Spec(#[source] serde_json::Error),
    #[error("seccomp filter")]
    Seccomp(#[from] seccompiler::BackendError),
    #[error("capabilities: {0}")]
    Caps(String),
    #[error("the container {0} is not running (its init is gone)")]
    NotRunning(String),
    #[error("network set-up")]
    Net(#[source] hoody_net::NetError),
}

pub type Result<T, E = HelperError> = std::result::Result<T, E>;

pub(crate) fn step(step: &'static str) -> impl FnOnce(io::Error) -> HelperError {
    move |source| HelperError::Step { step, source }
}

pub(crate) fn path_step(step: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> HelperError {
    let path = path.into();
    move |source| HelperError::Path { step, path, source }
}

pub(crate) fn nix_step(step: &'static str) -> impl FnOnce(nix::errno::Errno) -> HelperError {
    move |e| HelperError::Step { step, source: e.into() }
}

pub use crate::errors::chain;
