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

/// Makes `cmd` run as `uid`:`gid` with exactly the supplementary `groups` (std's `uid`/`gid`
/// drop root before `pre_exec` runs, too early to set groups, so all three happen here).
pub fn as_user(cmd: &mut Command, uid: u32, gid: u32, groups: &[u32]) {
    use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    // SAFETY: the closure runs between fork and exec and only calls setgroups(2), setgid(2) and
    // setuid(2), which are async-signal-safe; `groups` was allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            setgroups(&groups)?;
            setgid(Gid::from_raw(gid))?;
            setuid(Uid::from_raw(uid))?;
            Ok(())
        });
    }
}

/// Makes `cmd` start inside the cgroup whose `cgroup.procs` is open as `procs` (as systemd
/// starts a service in its own cgroup).
pub fn in_cgroup(cmd: &mut Command, procs: std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the closure runs between fork and exec and only calls write(2) on a descriptor
    // opened before the fork and moved into the closure; "0" names the calling process.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) == 1 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
}

/// Opens `n` connections to the Unix socket at `path` as `uid`:`gid` (what the daemon's
/// SO_PEERCRED sees), from a thread of its own whose credentials alone change: the raw
/// setresgid/setresuid system calls act on the calling thread (glibc's wrappers would change
/// every thread of the test process). Each connection's result, in order.
pub fn connect_as(path: &std::path::Path, uid: u32, gid: u32, n: usize) -> Vec<std::io::Result<std::os::unix::net::UnixStream>> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: plain system calls on the calling thread's credentials, with integer
        // arguments; the thread ends after it connected and never gives its rights back.
        let changed = unsafe {
            libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) == 0
                && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
                && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
        };
        assert!(changed, "changing the thread's credentials: {}", std::io::Error::last_os_error());
        (0..n).map(|_| std::os::unix::net::UnixStream::connect(&path)).collect()
    })
    .join()
    .expect("the connecting thread")
}
