//! The helper: hoodyd re-executed as `hoodyd __start` or `hoodyd __exec-shim`, single-threaded, for
//! all namespace work (clone3, setns, mounts, pivot_root). The daemon never does any of it on a
//! tokio thread.

mod command;
pub(crate) mod error;
pub(crate) mod exec;
pub(crate) mod exec_shim;
mod fdpass;
mod net;
mod rootfs;
pub(crate) mod security;
pub(crate) mod shim;
pub(crate) mod start;
pub(crate) mod sys;

/// If `args` name a helper sub-command, runs it and never returns.
pub fn dispatch(args: &[std::ffi::OsString]) {
    match args.get(1).and_then(|a| a.to_str()) {
        Some("__start") => start::main(),
        Some("__shim") => shim::main(args),
        Some("__exec-shim") => exec_shim::main(args),
        _ => {}
    }
}
