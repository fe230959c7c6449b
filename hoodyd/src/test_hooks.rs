//! Hooks the test suite and the benchmarks steer the daemon with (injected faults, a fake clock
//! and boot id, a fast scheduler, audit off for measuring it). They exist only with the cargo
//! feature `test-hooks`, which the end-to-end crate turns on for the workspace's debug builds;
//! the release binary (`cargo build --release -p hoodyd`, packaging/deb.sh) has none: there
//! every hook reads as unset, and packaging/deb.sh refuses a binary that names one.

/// The value of the hook `name` (an environment variable), when hooks are compiled in.
#[cfg(feature = "test-hooks")]
pub fn var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name)
}

/// Hooks are not compiled in: nothing is set.
#[cfg(not(feature = "test-hooks"))]
pub fn var(_name: &str) -> Option<std::ffi::OsString> {
    None
}

/// True when this binary carries the hooks (logged at start-up, so a test run can tell).
pub const ENABLED: bool = cfg!(feature = "test-hooks");
