//! The exec helper X: runs one command inside a running container. Forked by the exec's shim
//! ([`super::exec_shim`]) while that is single-threaded, into the exec's cgroup, with its pipes
//! on 0, 1 and 2.
//!
//! X, born in the exec's cgroup, joins all the container's namespaces at once through a
//! pidfd of its init, becomes the container's root, and forks E, which is born in the
//! container's PID namespace, takes the requested user, the container's confinement, and execs.
//! Without a TTY, E inherits X's stdin/stdout/stderr (pipes from the shim). With a TTY, X
//! allocates a pseudo-terminal from the container's own devpts, and relays: framed input from
//! the shim on stdin (data, EOF, window size) to the terminal, terminal output to stdout.
//! X exits with E's exit status.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

use super::error::{HelperError, Result, chain, nix_step, step};
use super::security::Confinement;
use super::{command, sys};
use crate::proto::{FrameReader, InFrame};
use crate::spec::ExecSpec;

/// X forked from the exec's shim (single-threaded then) with its pipes on 0, 1 and 2 and no
/// other descriptor: runs the exec and exits with the command's status.
pub fn run_forked(spec: &ExecSpec) -> ! {
    finish(run(spec))
}

fn finish(r: Result<i32>) -> ! {
    let code = match r {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "hoody exec: {}", chain(&e).join(": "));
            if matches!(e, HelperError::Exec { .. }) { 127 } else { 126 }
        }
    };
    std::process::exit(code)
}

fn run(spec: &ExecSpec) -> Result<i32> {
    let pidfd = sys::pidfd_open(spec.init_pid).map_err(|_| HelperError::NotRunning(spec.id.clone()))?;
    // The pidfd pins the process; the start time proves it is still the container's init.
    if !crate::procfs::is_same_process(&spec.proc_root, spec.init_pid, spec.init_start) {
        return Err(HelperError::NotRunning(spec.id.clone()));
    }
    let confinement = Confinement::new()?;
    let argv = command::cstrings(&spec.command)?;
    let envp = command::cstrings(&spec.env)?;
    let all = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    nix::sched::setns(&pidfd, all).map_err(nix_step("join the container's namespaces"))?;
    nix::unistd::setgroups(&[]).map_err(nix_step("setgroups"))?;
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(nix_step("setresgid 0"))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(nix_step("setresuid 0"))?;

    let pty = if spec.tty {
        let master =
            open("/dev/ptmx", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty()).map_err(nix_step("open /dev/ptmx"))?;
        let peer = sys::pty_peer(master.as_fd()).map_err(step("open the terminal peer"))?;
        sys::set_winsize(master.as_fd(), spec.rows.max(1), spec.cols.max(1)).map_err(step("set window size"))?;
        Some((master, peer))
    } else {
        None
    };

    let child = sys::fork().map_err(step("fork"))?;
    if child == 0 {
        let err = exec_child(spec, pty.as_ref().map(|(_, p)| p), &confinement, &argv, &envp);
        let _ = writeln!(std::io::stderr(), "hoody exec: {}", chain(&err).join(": "));
        sys::exit_now(if matches!(err, HelperError::Exec { .. }) { 127 } else { 126 });
    }
    let child_fd = sys::pidfd_open(child).map_err(step("pidfd of the command"))?;
    if let Some((master, peer)) = pty {
        drop(peer);
        relay(&master, &child_fd, child)?;
    }
    let exit = sys::waitid_pidfd(child_fd.as_fd(), false).map_err(step("wait for the command"))?;
    Ok(exit.map(|e| e.as_code()).unwrap_or(0))
}

/// Runs in E. Returns only on failure.
fn exec_child(
    spec: &ExecSpec,
    tty: Option<&OwnedFd>,
    confinement: &Confinement,
    argv: &[std::ffi::CString],
    envp: &[std::ffi::CString],
) -> HelperError {
    let go = || -> Result<HelperError> {
        if tty.is_none() {
            // Its own process group, for the signals the client sends (frame 5).
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0)).map_err(nix_step("setpgid"))?;
        }
        if let Some(t) = tty {
            nix::unistd::setsid().map_err(nix_step("setsid"))?;
            sys::set_controlling_tty(t.as_fd()).map_err(step("set controlling terminal"))?;
            nix::unistd::dup2_stdin(t).map_err(nix_step("stdin"))?;
            nix::unistd::dup2_stdout(t).map_err(nix_step("stdout"))?;
            nix::unistd::dup2_stderr(t).map_err(nix_step("stderr"))?;
        }
        nix::unistd::chdir(spec.cwd.as_str()).map_err(|e| HelperError::Path {
            step: "chdir",
            path: spec.cwd.clone().into(),
            source: e.into(),
        })?;
        let path = command::resolve(&spec.command[0], &spec.env)?;
        sys::reset_signals();
        confinement.apply()?;
        // Take the requested user last: dropping root clears the remaining capabilities.
        if spec.gid != 0 || spec.uid != 0 {
            nix::unistd::setresgid(Gid::from_raw(spec.gid), Gid::from_raw(spec.gid), Gid::from_raw(spec.gid))
                .map_err(nix_step("setresgid"))?;
            nix::unistd::setresuid(Uid::from_raw(spec.uid), Uid::from_raw(spec.uid), Uid::from_raw(spec.uid))
                .map_err(nix_step("setresuid"))?;
        }
        sys::cloexec_from(3).map_err(step("close descriptors"))?;
        let err = sys::execve(&path, argv, envp);
        Ok(HelperError::Exec { command: spec.command[0].clone(), source: err })
    };
    match go() {
        Ok(e) | Err(e) => e,
    }
}

/// Relays between the daemon (framed input on stdin, raw output on stdout) and the terminal
/// master, until the terminal has no more output and the command is gone.
fn relay(master: &OwnedFd, child: &OwnedFd, pid: libc::pid_t) -> Result<()> {
    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    let mut frames = FrameReader::default();
    let mut input_open = true;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 32 * 1024];
    let mut mfile = std::fs::File::from(master.try_clone().map_err(step("dup terminal"))?);
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN), PollFd::new(child.as_fd(), PollFlags::POLLIN)];
        if input_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(nix_step("poll")(e)),
        }
        let m = fds[0].revents().unwrap_or(PollFlags::empty());
        let child_gone = fds[1].revents().is_some_and(|r| !r.is_empty());
        let inp = if input_open { fds[2].revents().unwrap_or(PollFlags::empty()) } else { PollFlags::empty() };
        if m.intersects(PollFlags::POLLIN) {
            match nix::unistd::read(master, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()),
                Ok(n) => {
                    out.write_all(&buf[..n]).map_err(step("write terminal output"))?;
                    out.flush().map_err(step("write terminal output"))?;
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(nix_step("read terminal")(e)),
            }
            continue;
        }
        if m.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) || (child_gone && !m.intersects(PollFlags::POLLIN)) {
            return Ok(());
        }
        if inp.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            let n = nix::unistd::read(stdin_fd, &mut buf).map_err(nix_step("read input"))?;
            if n == 0 {
                input_open = false;
                continue;
            }
            frames.push(&buf[..n]);
            while let Some(frame) = frames.next_frame().map_err(|e| HelperError::Child(e.to_string()))? {
                match frame {
                    InFrame::Stdin(data) => mfile.write_all(&data).map_err(step("write to terminal"))?,
                    InFrame::StdinEof => {
                        // A terminal has no half-close: send EOF (^D) as a terminal would.
                        mfile.write_all(&[4]).map_err(step("write to terminal"))?;
                    }
                    InFrame::Resize { rows, cols } => sys::set_winsize(master.as_fd(), rows, cols).map_err(step("resize terminal"))?,
                    // The command leads its session and process group.
                    InFrame::Signal(n) => {
                        if let Ok(sig) = nix::sys::signal::Signal::try_from(i32::from(n)) {
                            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
                        }
                    }
                }
            }
        }
    }
}
