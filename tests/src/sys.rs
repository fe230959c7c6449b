//! The harness's unsafe corner: entering a network namespace in a child before exec.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes `cmd` run inside the network namespace `ns` (only the network: mounts, cgroups and the
/// file system stay the caller's, unlike `ip netns exec`, which remounts /sys).
pub fn in_netns(cmd: &mut Command, ns: OwnedFd) {
    // SAFETY: the closure runs between fork and exec and only calls setns(2), which is
    // async-signal-safe; `ns` is moved into the closure and stays open until exec.
    unsafe {
        cmd.pre_exec(move || nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
    }
}
