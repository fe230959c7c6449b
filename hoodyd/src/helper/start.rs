//! `hoodyd __start`: creates one container process. Runs single-threaded (a fresh exec of the
//! daemon's binary), so clone3/unshare/setns are safe here.
//!
//! H (this process, host root) ── clone3(NEWUSER|NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET,
//! INTO_CGROUP) ──▶ C (the future init). H writes C's uid/gid maps, creates idmapped mounts of
//! the container's layers with C's user namespace and passes them over a socket; C builds its
//! root, pivots into it, confines itself and execs the command. The socket is close-on-exec, so
//! EOF tells H that the exec happened; an error message tells it what failed.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hoody_snapshot::ContainerRoot;
use nix::fcntl::{OFlag, open};
use nix::sched::CloneFlags;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid, dup2_stderr, dup2_stdin, dup2_stdout};

use super::error::{HelperError, Result, chain, nix_step, path_step, step};
use super::rootfs::{self, HostFds};
use super::security::Confinement;
use super::sys::{self, Forked};
use super::{command, fdpass};
use crate::spec::{FailureKind, HelperFailure, HelperReply, StartSpec};

pub fn main() -> ! {
    let mut input = String::new();
    let reply = match std::io::stdin().read_to_string(&mut input) {
        Err(e) => failure(&HelperError::Step { step: "read spec", source: e }),
        Ok(_) => match serde_json::from_str::<StartSpec>(&input).map_err(HelperError::Spec).and_then(|s| start(&s)) {
            Ok((pid, start_time, shim_pid)) => HelperReply::Started { pid, start_time, shim_pid },
            Err(e) => failure(&e),
        },
    };
    let ok = matches!(reply, HelperReply::Started { .. });
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &reply);
    let _ = out.flush();
    std::process::exit(if ok { 0 } else { 1 })
}

pub(crate) fn failure(e: &HelperError) -> HelperReply {
    let kind = if matches!(e, HelperError::Exec { .. }) || matches!(e, HelperError::Child(m) if m.starts_with("exec:")) {
        FailureKind::Exec
    } else {
        FailureKind::Setup
    };
    let mut causes = chain(e);
    let message = causes.remove(0);
    HelperReply::Failed(HelperFailure { kind, message, causes })
}

/// Kills the half-made container process if the helper bails out.
struct KillOnDrop(Option<OwnedFd>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = sys::waitid_pidfd(fd.as_fd(), false);
        }
    }
}

fn open_path(p: &Path, flags: OFlag) -> Result<OwnedFd> {
    open(p, flags | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| HelperError::Path {
        step: "open",
        path: p.to_path_buf(),
        source: e.into(),
    })
}

/// Starts the container's shim (see [`super::shim`]) on the read end of the console pipe, in the
/// shims' cgroup and a session of its own. Returns its pid.
fn spawn_shim(spec: &StartSpec, console: OwnedFd) -> Result<i32> {
    let cgroup = open_path(&spec.shim_cgroup, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let devnull = open_path(Path::new("/dev/null"), OFlag::O_RDWR)?;
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let log = CString::new(spec.log.as_os_str().as_encoded_bytes()).map_err(|_| HelperError::Child("console log path has a NUL".into()))?;
    let argv = [
        CString::new("hoodyd").expect("no NUL"),
        CString::new("__shim").expect("no NUL"),
        log,
        CString::new(spec.log_max.to_string()).expect("digits"),
    ];
    match sys::clone3(0, Some(cgroup.as_fd())).map_err(path_step("clone3 the shim into", &spec.shim_cgroup))? {
        Forked::Child => {
            let _ = nix::unistd::setsid();
            let ok = dup2_stdin(&devnull).is_ok()
                && dup2_stdout(&devnull).is_ok()
                && dup2_stderr(&devnull).is_ok()
                && sys::dup_to(console.as_fd(), super::shim::CONSOLE_FD).is_ok()
                && sys::cloexec_from(super::shim::CONSOLE_FD as u32 + 1).is_ok();
            if ok {
                sys::reset_signals();
                let _ = sys::execve(&exe, &argv, &[]);
            }
            sys::exit_now(127);
        }
        Forked::Parent { pid, .. } => Ok(pid),
    }
}

fn start(spec: &StartSpec) -> Result<(i32, u64, i32)> {
    // The init's stdin reads end-of-file at once; its stdout and stderr are a pipe to the
    // shim. Pipes, not files: nothing in the container can take a descriptor of a host file.
    let (stdin_r, stdin_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(nix_step("pipe"))?;
    drop(stdin_w);
    let (console_r, console_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(nix_step("pipe"))?;
    // A larger pipe: a burst of output does not stall the writer while the shim catches up.
    let _ = nix::fcntl::fcntl(console_w.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    let shim_pid = spawn_shim(spec, console_r)?;
    let cgroup = open_path(&spec.cgroup, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
    let confinement = Confinement::new()?;
    let argv = command::cstrings(&spec.command)?;
    let envp = command::cstrings(&spec.env)?;
    let (parent_sock, child_sock) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(nix_step("socketpair"))?;

    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    let (pid, pidfd) = match sys::clone3(flags.bits() as u64, Some(cgroup.as_fd())).map_err(path_step("clone3 into", &spec.cgroup))? {
        Forked::Child => {
            drop(parent_sock);
            let err = container_process(spec, &child_sock, &stdin_r, &console_w, &confinement, &argv, &envp);
            let msg = chain(&err).join(": ");
            let msg = if matches!(err, HelperError::Exec { .. }) { format!("exec: {msg}") } else { msg };
            let _ = fdpass::send(child_sock.as_fd(), msg.as_bytes(), &[]);
            sys::exit_now(127);
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_sock);
    // Only the init holds the console's write end now: when its last process is gone, the
    // shim reads end-of-file and exits.
    drop(console_w);
    drop(stdin_r);
    let guard = KillOnDrop(Some(pidfd));
    tracing::debug!(container = %spec.id, pid, "container process created");

    write_id_maps(&spec.proc_root, pid, spec.idmap.host_base, spec.idmap.size)?;
    let userns_path = spec.proc_root.join(pid.to_string()).join("ns/user");
    let userns = open_path(&userns_path, OFlag::O_RDONLY)?;
    let idmapped = |target: &OwnedFd, what: &'static str| -> Result<OwnedFd> {
        let m = sys::open_tree_clone(target.as_fd(), false).map_err(step(what))?;
        sys::mount_setattr_idmap(m.as_fd(), userns.as_fd()).map_err(step("idmap the mount"))?;
        Ok(m)
    };
    let host = open_targets(&spec.root)?;
    let mounts = match &spec.root {
        ContainerRoot::Btrfs { .. } => vec![idmapped(&host.root_target, "clone the container subvolume mount")?],
        ContainerRoot::Overlay { .. } => vec![
            idmapped(host.lower_target.as_ref().expect("overlay has a lower target"), "clone the image layer mount")?,
            idmapped(host.dir_target.as_ref().expect("overlay has a dir target"), "clone the container layer mount")?,
        ],
    };
    drop(host);
    if let Some(net) = &spec.network {
        super::net::setup(&spec.proc_root, pid, net)?;
    }
    let fds: Vec<_> = mounts.iter().map(|m| m.as_fd()).collect();
    fdpass::send(parent_sock.as_fd(), b"go", &fds)?;
    drop(mounts);
    let (msg, _) = fdpass::recv(parent_sock.as_fd())?;
    if !msg.is_empty() {
        return Err(HelperError::Child(String::from_utf8_lossy(&msg).into_owned()));
    }
    let start_time = crate::procfs::start_time(&spec.proc_root, pid).map_err(step("read the start time of the container init"))?;
    std::mem::forget(guard);
    Ok((pid, start_time, shim_pid))
}

/// Opens the directories the container's root is built on. In the container process this runs
/// right after clone, so the descriptors name mounts of its own (copied) mount namespace, which
/// is what move_mount needs; its fsuid is still host root then, so it may traverse the pool's
/// 0700 directories.
fn open_targets(root: &ContainerRoot) -> Result<HostFds> {
    Ok(match root {
        ContainerRoot::Btrfs { subvol } => {
            HostFds { root_target: open_path(subvol, OFlag::O_PATH | OFlag::O_DIRECTORY)?, lower_target: None, dir_target: None }
        }
        ContainerRoot::Overlay { lower, dir } => HostFds {
            root_target: open_path(&dir.join("rootfs"), OFlag::O_PATH | OFlag::O_DIRECTORY)?,
            lower_target: Some(open_path(lower, OFlag::O_PATH | OFlag::O_DIRECTORY)?),
            dir_target: Some(open_path(dir, OFlag::O_PATH | OFlag::O_DIRECTORY)?),
        },
    })
}

fn write_id_maps(proc_root: &Path, pid: i32, base: u32, size: u32) -> Result<()> {
    let line = format!("0 {base} {size}\n");
    for f in ["uid_map", "gid_map"] {
        let p = proc_root.join(pid.to_string()).join(f);
        std::fs::write(&p, &line).map_err(path_step("write", &p))?;
    }
    Ok(())
}

/// Runs in C. Returns only on failure.
#[allow(clippy::too_many_arguments)]
fn container_process(
    spec: &StartSpec,
    sock: &OwnedFd,
    stdin: &OwnedFd,
    console: &OwnedFd,
    confinement: &Confinement,
    argv: &[CString],
    envp: &[CString],
) -> HelperError {
    let run = || -> Result<HelperError> {
        dup2_stdin(stdin).map_err(nix_step("stdin"))?;
        dup2_stdout(console).map_err(nix_step("stdout"))?;
        dup2_stderr(console).map_err(nix_step("stderr"))?;
        let host = open_targets(&spec.root)?;
        let (go, mounts) = fdpass::recv(sock.as_fd())?;
        if go.is_empty() {
            sys::exit_now(1); // the helper went away: nothing to report to
        }
        nix::unistd::setgroups(&[]).map_err(nix_step("setgroups"))?;
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(nix_step("setresgid 0"))?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(nix_step("setresuid 0"))?;
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(nix_step("unshare the cgroup namespace"))?;
        nix::mount::mount(None::<&str>, "/", None::<&str>, nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE, None::<&str>)
            .map_err(nix_step("make mounts private"))?;
        let root = rootfs::attach_root(&spec.root, &host, mounts)?;
        drop(host);
        rootfs::populate(root.as_fd())?;
        nix::unistd::sethostname(&spec.hostname).map_err(nix_step("sethostname"))?;
        if spec.network.is_none() {
            sys::set_link_up("lo").map_err(step("bring up lo"))?;
        }
        rootfs::enter(root.as_fd())?;
        drop(root);
        let path = command::resolve(&spec.command[0], &spec.env)?;
        sys::reset_signals();
        confinement.apply()?;
        sys::cloexec_from(3).map_err(step("close descriptors"))?;
        let err = sys::execve(&path, argv, envp);
        Ok(HelperError::Exec { command: spec.command[0].clone(), source: err })
    };
    match run() {
        Ok(e) | Err(e) => e,
    }
}
