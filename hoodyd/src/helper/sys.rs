//! Raw system calls the container helper needs and that nix does not wrap: clone3, the new mount
//! API (open_tree, mount_setattr, move_mount, fsopen/fsconfig/fsmount), pidfds, seccomp and a
//! few ioctls. Every `unsafe` block of the runtime lives here.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

fn owned(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(rc)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Result of [`clone3`]: in the parent, the child's pid and a pidfd for it.
pub enum Forked {
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
    Child,
}

/// `clone3(2)` with fork semantics (no shared VM), `CLONE_PIDFD`, and optionally
/// `CLONE_INTO_CGROUP`. Only call from a single-threaded process: the child continues with a
/// copy of this one, and only the calling thread exists in it.
pub fn clone3(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = cg.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size we pass; no stack is given, so the child
    // runs on a copy of our stack like fork(2). The caller guarantees the process is
    // single-threaded, so no lock can be held by a thread that does not exist in the child.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    let rc = check(rc)?;
    if rc == 0 {
        Ok(Forked::Child)
    } else {
        // SAFETY: on success in the parent, the kernel stored a new pidfd in `pidfd`; we own it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        Ok(Forked::Parent { pid: rc as libc::pid_t, pidfd })
    }
}

/// `fork(2)`, for the exec helper (single-threaded by construction).
pub fn fork() -> io::Result<libc::pid_t> {
    // SAFETY: the helper processes are single-threaded; the child only runs our own code.
    let rc = unsafe { libc::fork() };
    check(rc as libc::c_long).map(|r| r as libc::pid_t)
}

pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;
const AT_RECURSIVE: u32 = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x0000_0004;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x0000_0040;

/// `open_tree(dirfd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH)`: a detached copy of the mount at `fd`.
pub fn open_tree_clone(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: the path is a valid NUL-terminated empty string and `fd` is a live descriptor.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Turns the detached mount `mnt` into an idmapped mount with the mapping of `userns`.
pub fn mount_setattr_idmap(mnt: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: userns.as_raw_fd() as u64 };
    // SAFETY: `attr` is a valid mount_attr of the size passed; both descriptors are live.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(drop)
}

/// Attaches the mount `from` on top of the directory `to` (both given as descriptors).
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: empty paths are valid C strings; the descriptors are live for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(rc).map(drop)
}

const FSOPEN_CLOEXEC: u32 = 1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 1;

/// A file system context being configured (`fsopen`), finished with [`FsContext::mount`].
pub struct FsContext(OwnedFd);

impl FsContext {
    pub fn open(fstype: &CStr) -> io::Result<Self> {
        // SAFETY: `fstype` is a valid C string.
        owned(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) }).map(FsContext)
    }

    pub fn set_string(&self, key: &CStr, value: &CStr) -> io::Result<()> {
        // SAFETY: key and value are valid C strings; the context fd is live.
        let rc = unsafe { libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), FSCONFIG_SET_STRING, key.as_ptr(), value.as_ptr(), 0) };
        check(rc).map(drop)
    }

    pub fn set_flag(&self, key: &CStr) -> io::Result<()> {
        // SAFETY: key is a valid C string; a flag takes no value.
        let rc =
            unsafe { libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), FSCONFIG_SET_FLAG, key.as_ptr(), std::ptr::null::<u8>(), 0) };
        check(rc).map(drop)
    }

    /// Creates the superblock and returns a detached mount of it.
    pub fn mount(self, attrs: u32) -> io::Result<OwnedFd> {
        // SAFETY: the context fd is live; CMD_CREATE takes no key or value.
        let rc = unsafe {
            libc::syscall(libc::SYS_fsconfig, self.0.as_raw_fd(), FSCONFIG_CMD_CREATE, std::ptr::null::<u8>(), std::ptr::null::<u8>(), 0)
        };
        check(rc)?;
        // SAFETY: the context fd is live and configured.
        owned(unsafe { libc::syscall(libc::SYS_fsmount, self.0.as_raw_fd(), FSMOUNT_CLOEXEC, attrs) })
    }
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed; the descriptor is live.
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0) };
    check(rc).map(drop)
}

/// How a process ended, from `waitid(P_PIDFD)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Shell convention: the code, or 128 + the signal number.
    pub fn as_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOHANG)`. `Ok(None)`: still running. `ECHILD`: not our child.
pub fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<Exit>> {
    // SAFETY: siginfo_t is plain old data; zeroed is a valid value for it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: `info` is a valid out-pointer; P_PIDFD takes the descriptor as the id.
    let rc = unsafe { libc::waitid(libc::P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful waitid the pid/status fields of the union are initialised.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if info.si_code == libc::CLD_EXITED { Exit::Code(status) } else { Exit::Signal(status) }))
}

/// Installs a seccomp BPF program for the calling thread. Unlike seccompiler's `apply_filter`
/// this does not set `no_new_privs`: setuid programs inside the container keep working, as with
/// Docker. The caller needs CAP_SYS_ADMIN in its user namespace.
pub fn seccomp_install(prog: &[seccompiler::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog) };
    check(rc).map(drop)
}

/// Marks every descriptor from `first` upwards close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    check(rc).map(drop)
}

/// Closes every descriptor from `first` upwards.
pub fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments; the caller owns no descriptor above `first`
    // it will use again (a freshly forked child).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
    check(rc).map(drop)
}

/// Resets every signal to its default disposition and unblocks all of them, so the container's
/// processes do not inherit our ignored SIGPIPE or a blocked mask.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_DFL is always valid; invalid numbers just fail with EINVAL.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty, initialised set; sigprocmask with a valid set pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Sets or clears IFF_UP on interface `name` in the current network namespace.
pub fn set_link_up(name: &str) -> io::Result<()> {
    // SAFETY: creating a socket has no memory-safety preconditions.
    let sock = owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) } as libc::c_long)?;
    // SAFETY: ifreq is plain old data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming the interface; the ioctl fills the flags.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } as libc::c_long)?;
    // SAFETY: reading the flags member that SIOCGIFFLAGS just wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: `req` is valid and carries the new flags.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } as libc::c_long).map(drop)
}

/// Opens the peer (slave) side of the pseudo-terminal whose master is `master` (TIOCGPTPEER),
/// after unlocking it. Avoids resolving `/dev/pts/N` by path.
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which is valid.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } as libc::c_long)?;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    owned(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) } as libc::c_long)
}

/// Makes `fd` the controlling terminal of the calling session leader.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}

/// Sets the window size of a terminal.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } as libc::c_long).map(drop)
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point at C strings that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Leaves the process immediately, without running destructors or atexit handlers (for the
/// children of clone3/fork, whose copied state belongs to the parent).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Makes the calling process a child subreaper, so orphaned container inits are re-parented to
/// the daemon, which then learns their exit status.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as libc::c_long).map(drop)
}

/// Registers a pidfd with the tokio reactor (readable once the process has exited).
pub fn async_pidfd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is a valid open descriptor that stays open, and keeps returning the same
    // raw fd, for as long as the AsyncFd owns it.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.map_err(|e| e.into())
}

/// `dup2(fd, target)`: `target` becomes a copy of `fd` (without close-on-exec).
pub fn dup_to(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: dup2 on a live descriptor; `target` is replaced atomically.
    check(unsafe { libc::dup2(fd.as_raw_fd(), target) } as libc::c_long).map(drop)
}

/// Takes ownership of descriptor `fd`, inherited across exec from the process that started
/// this one (the shim's console pipe).
pub fn inherited_fd(fd: i32) -> OwnedFd {
    // SAFETY: called once, at the start of a freshly executed helper, for a descriptor its
    // parent set up for it; nothing else in this process owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
