//! Writing one cgroup file (a knob: `cgroup.freeze`, `memory.max`, …).

use std::io::Write;
use std::path::Path;

use tracing::debug;

use super::{CgroupError, Result};

pub(super) fn write(path: &Path, value: &str) -> Result<()> {
    let mut f =
        std::fs::OpenOptions::new().write(true).open(path).map_err(|source| CgroupError::Io { op: "open", path: path.into(), source })?;
    f.write_all(value.as_bytes()).map_err(|source| CgroupError::Io { op: "write", path: path.into(), source })?;
    debug!(path = %path.display(), value, "cgroup write");
    Ok(())
}
