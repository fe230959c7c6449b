//! `hoodyd __exec-shim DIR`: the keeper of one exec (as conmon is of a Podman exec session),
//! so that the exec outlives the daemon. Started by the daemon; moves itself into the shims'
//! cgroup (outside every container's) and a session of its own, becomes a child subreaper,
//! listens on `DIR/sock`, and forks the exec helper (X of [`super::exec`], which joins the
//! container) as its child with pipes for stdin, stdout and stderr. The layout of DIR is in
//! [`crate::exec_record`].
//!
//! One client at a time (a daemon, for an API client) is attached on the socket, speaking the
//! exec frames of [`crate::proto`]: input frames in, output frames and, last, the exit status
//! out. A new attach replaces the client before it. With nobody attached, a detached exec's
//! output goes to its files (capped); a non-detached one's is held in memory up to a bound,
//! and past it the command waits (as on a slow terminal), so nothing is lost before the client
//! re-attaches. When the helper exits, the output is drained (a moment at most: a background
//! process may hold the pipes), the end is written durably to `end.json`, then sent to the
//! client, or, with none attached, the held output goes to the files for a later attach. The
//! timeout is enforced here too (`cgroup.kill` of the exec's cgroup), so it holds while no
//! daemon runs. Every child is reaped, also the command's orphans re-parented here.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::exec_record::{self as rec, ExecEnd, ExecRecord, ShimPids};
use crate::proto::{FrameReader, InFrame, OutFrame};

/// Output held per stream while no client is attached, before the command is made to wait.
const HELD: usize = 1 << 20;
/// Largest output frame written (below the protocol's maximum).
const CHUNK: usize = 64 * 1024;
/// How long a shim whose command ended waits for the daemon that started it to attach.
const FIRST_CLIENT: Duration = Duration::from_secs(10);
/// How long output is drained after the helper exited.
const DRAIN: Duration = Duration::from_secs(2);

/// The shim's first and only line on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimReady {
    Ready {
        shim_pid: i32,
        helper_pid: i32,
    },
    /// A spare (`--spare`) is in the shims' cgroup and waits for its directory on stdin.
    Spare {
        shim_pid: i32,
    },
    Failed {
        message: String,
    },
}

struct Link {
    client: Option<(u64, UnixStream)>,
    generation: u64,
    held: [Vec<u8>; 2],
    cut: [bool; 2],
    /// Detached: the output files and what they hold.
    files: Option<[File; 2]>,
    written: [u64; 2],
    /// The command ended and its output was drained: nothing is waited for any more.
    ended: bool,
    /// The exit status, for a client that attaches in the last moment.
    exit: Option<i32>,
}

struct Shim {
    link: Mutex<Link>,
    more: Condvar,
    /// A second handle of the attached client's socket: a new attach shuts it down, which ends
    /// a write blocked on it (held under `link`).
    current: Mutex<Option<UnixStream>>,
    stdin: Mutex<Option<File>>,
    tty: bool,
    cap: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn out_frame(stream: usize, d: &[u8]) -> Vec<u8> {
    if stream == 0 { OutFrame::Stdout(d.to_vec()).encode() } else { OutFrame::Stderr(d.to_vec()).encode() }
}

fn send_all(w: &mut UnixStream, stream: usize, d: &[u8]) -> std::io::Result<()> {
    for c in d.chunks(CHUNK) {
        w.write_all(&out_frame(stream, c))?;
    }
    Ok(())
}

impl Shim {
    /// One piece of the command's output (stream 0 stdout, 1 stderr).
    fn deliver(&self, stream: usize, d: &[u8]) {
        let mut g = lock(&self.link);
        loop {
            let l = &mut *g;
            if let Some(files) = l.files.as_mut() {
                let room = self.cap.saturating_sub(l.written[stream]) as usize;
                let keep = &d[..d.len().min(room)];
                if !keep.is_empty() && files[stream].write_all(keep).is_ok() {
                    l.written[stream] += keep.len() as u64;
                }
                l.cut[stream] |= d.len() > room;
                return;
            }
            if let Some((_, c)) = l.client.as_mut() {
                if send_all(c, stream, d).is_ok() {
                    return;
                }
                l.client = None;
                continue;
            }
            let room = HELD.saturating_sub(l.held[stream].len());
            if d.len() <= room || l.ended {
                l.held[stream].extend_from_slice(&d[..d.len().min(room)]);
                l.cut[stream] |= d.len() > room;
                return;
            }
            g = self.more.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A client attached: it gets what was held, then the live output (or the end, if that came).
    fn attach(self: &Arc<Self>, s: UnixStream) {
        if let Some(old) = lock(&self.current).take() {
            let _ = old.shutdown(std::net::Shutdown::Both);
        }
        let (Ok(mut w), Ok(r), Ok(second)) = (s.try_clone(), s.try_clone(), s.try_clone()) else { return };
        let mut l = lock(&self.link);
        l.generation += 1;
        let generation = l.generation;
        self.more.notify_all();
        for i in 0..2 {
            let held = std::mem::take(&mut l.held[i]);
            if send_all(&mut w, i, &held).is_err() {
                return;
            }
        }
        if let Some(code) = l.exit {
            let _ = w.write_all(&OutFrame::Exit(code).encode());
            return;
        }
        l.client = Some((generation, w));
        *lock(&self.current) = Some(second);
        self.more.notify_all();
        drop(l);
        let me = self.clone();
        std::thread::spawn(move || me.read_client(generation, r));
    }

    /// Input from the client, to the helper: framed for a terminal (the helper owns it), raw
    /// otherwise. Signals without a terminal are the daemon's to send, not relayed here.
    fn read_client(&self, generation: u64, mut r: UnixStream) {
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 32 * 1024];
        'read: loop {
            let n = match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            frames.push(&buf[..n]);
            loop {
                let f = match frames.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(_) => break 'read,
                };
                let mut stdin = lock(&self.stdin);
                let Some(w) = stdin.as_mut() else { continue };
                let ok = match (&f, self.tty) {
                    (_, true) => w.write_all(&f.encode()).is_ok(),
                    (InFrame::Stdin(d), false) => w.write_all(d).is_ok(),
                    (InFrame::StdinEof, false) => false,
                    (_, false) => true,
                };
                if !ok {
                    *stdin = None;
                }
            }
        }
        let mut l = lock(&self.link);
        if l.client.as_ref().is_some_and(|(g, _)| *g == generation) {
            l.client = None;
        }
    }

    /// Waits (at most `limit`) until a client attached once: the daemon that started the exec
    /// attaches right after the start, and a command that ended before must still reach it.
    fn wait_first_client(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut l = lock(&self.link);
        while l.generation == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            l = self.more.wait_timeout(l, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// The command ended: records it durably, then tells the client, or keeps the held output
    /// for a later one.
    fn end(&self, dir: &Path, mut end: ExecEnd) -> std::io::Result<()> {
        let mut l = lock(&self.link);
        l.ended = true;
        self.more.notify_all();
        if l.files.is_none() && l.client.is_none() {
            for (i, name) in [rec::STDOUT, rec::STDERR].into_iter().enumerate() {
                if !l.held[i].is_empty() {
                    rec::write_durable(dir, name, &l.held[i])?;
                }
            }
        }
        if let Some(files) = &l.files {
            for f in files {
                let _ = f.sync_data();
            }
        }
        (end.truncated_stdout, end.truncated_stderr) = (l.cut[0], l.cut[1]);
        // Synced when nobody learns the end now: it is read later, maybe after a reboot.
        rec::write_end(dir, &end, l.files.is_some() || l.client.is_none())?;
        let code = end.exit_code.unwrap_or(-1);
        l.exit = Some(code);
        if let Some((_, c)) = l.client.as_mut() {
            let _ = c.write_all(&OutFrame::Exit(code).encode());
        }
        Ok(())
    }
}

fn fail(message: String) -> ! {
    let line = serde_json::to_string(&ShimReady::Failed { message }).expect("serialises");
    let _ = writeln!(std::io::stdout(), "{line}");
    std::process::exit(1)
}

pub fn main(args: &[std::ffi::OsString]) -> ! {
    match args.get(2) {
        Some(a) if a == "--spare" => {
            let Some(cgroup) = args.get(3) else { fail("usage: hoodyd __exec-shim --spare SHIMS_CGROUP".into()) };
            spare(Path::new(cgroup))
        }
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let record = read_record(&dir);
            enter_shims_cgroup(&record.shim.shim_cgroup);
            run(dir, record)
        }
        None => fail("usage: hoodyd __exec-shim DIR".into()),
    }
}

fn read_record(dir: &Path) -> ExecRecord {
    rec::read_json::<ExecRecord>(dir, rec::RECORD).unwrap_or_else(|| fail(format!("no exec record in {}", dir.display())))
}

/// Goes on as a child born in the shims' cgroup; this process (the daemon's child only to
/// start the shim) exits. Outside the container's cgroup and the daemon's process group, the
/// shim outlives both. Born there (CLONE_INTO_CGROUP), not moved: a move waits for the
/// kernel's cgroup lock and an RCU grace period, and moves of concurrent execs queue on it.
/// The daemon reaps the shim itself (re-parented to the daemon, a subreaper) by the pid it
/// reports.
fn enter_shims_cgroup(cgroup: &Path) {
    let shims = File::open(cgroup).unwrap_or_else(|e| fail(format!("opening the shims' cgroup {}: {e}", cgroup.display())));
    match super::sys::clone3(0, Some(std::os::fd::AsFd::as_fd(&shims))) {
        Ok(super::sys::Forked::Parent { .. }) => std::process::exit(0),
        Ok(super::sys::Forked::Child) => {}
        Err(e) => fail(format!("starting in the shims' cgroup {}: {e}", cgroup.display())),
    }
}

/// A spare (see the daemon's `runtime::exec_spares`): in the shims' cgroup at once, then it
/// waits for the line naming its exec's directory; it ends when its stdin closes first.
fn spare(cgroup: &Path) -> ! {
    enter_shims_cgroup(cgroup);
    let line = serde_json::to_string(&ShimReady::Spare { shim_pid: std::process::id() as i32 }).expect("serialises");
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}").and_then(|_| stdout.flush()).is_err() {
        std::process::exit(0);
    }
    let mut dir = String::new();
    match std::io::stdin().read_line(&mut dir) {
        Ok(_) if dir.ends_with('\n') => {}
        _ => std::process::exit(0),
    }
    dir.pop();
    // Nothing more comes on stdin; the exec's own stdin is a pipe of its own.
    if let Ok(null) = File::open("/dev/null") {
        let _ = super::sys::dup_to(std::os::fd::AsFd::as_fd(&null), 0);
    }
    let dir = PathBuf::from(dir);
    let record = read_record(&dir);
    run(dir, record)
}

/// The shim of the exec whose directory is `dir`, in the shims' cgroup already.
fn run(dir: PathBuf, record: ExecRecord) -> ! {
    let spec = record.shim;
    let _ = nix::unistd::setsid();
    if let Err(e) = super::sys::set_child_subreaper() {
        fail(format!("becoming a child subreaper: {e}"));
    }
    let sock = dir.join(rec::SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap_or_else(|e| fail(format!("listening on {}: {e}", sock.display())));
    let files = if spec.detached {
        match (rec::create_file(&dir, rec::STDOUT), rec::create_file(&dir, rec::STDERR)) {
            (Ok(o), Ok(e)) => Some([o, e]),
            (Err(e), _) | (_, Err(e)) => fail(format!("opening the output files: {e}")),
        }
    } else {
        None
    };
    // The helper is forked, not spawned (this process is still single-threaded here), into the
    // exec's cgroup.
    let (helper, stdin, stdout, stderr) = fork_helper(&spec.exec).unwrap_or_else(|e| fail(format!("forking the exec helper: {e}")));
    let shim_pid = std::process::id() as i32;
    let shim_start = crate::procfs::start_time(&spec.exec.proc_root, shim_pid).unwrap_or(0);
    if let Err(e) = rec::write_json_volatile(&dir, rec::PIDS, &ShimPids { shim_pid, shim_start, helper_pid: helper }) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(helper), nix::sys::signal::Signal::SIGKILL);
        fail(format!("recording the shim's pids: {e}"));
    }
    let line = serde_json::to_string(&ShimReady::Ready { shim_pid, helper_pid: helper }).expect("serialises");
    let _ = writeln!(std::io::stdout(), "{line}");
    let _ = std::io::stdout().flush();
    // Nothing more on stdout: the daemon reads it to its end.
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = super::sys::dup_to(std::os::fd::AsFd::as_fd(&null), 1);
    }

    let shim = Arc::new(Shim {
        link: Mutex::new(Link {
            client: None,
            generation: 0,
            held: Default::default(),
            cut: [false; 2],
            files,
            written: [0; 2],
            ended: false,
            exit: None,
        }),
        more: Condvar::new(),
        current: Mutex::new(None),
        stdin: Mutex::new(Some(stdin)),
        tty: spec.exec.tty,
        cap: spec.cap,
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    for (i, mut out) in [stdout, stderr].into_iter().enumerate() {
        let (shim, done) = (shim.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => shim.deliver(i, &buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    }
    drop(done_tx);
    {
        let shim = shim.clone();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                shim.attach(s);
            }
        });
    }
    let exited = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    if let Some(ms) = spec.timeout_ms {
        let (exited, timed_out, kill) = (exited.clone(), timed_out.clone(), spec.exec.cgroup.join("cgroup.kill"));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            if !exited.load(Ordering::SeqCst) {
                timed_out.store(true, Ordering::SeqCst);
                let _ = std::fs::write(&kill, b"1");
            }
        });
    }
    let status = reap_until(helper);
    exited.store(true, Ordering::SeqCst);
    // What the command wrote; a background process holding the pipes is not waited for long.
    let deadline = Instant::now() + DRAIN;
    for _ in 0..2 {
        if done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            break;
        }
    }
    let end = ExecEnd::from_status(status, timed_out.load(Ordering::SeqCst), crate::time::now());
    let code = i32::from(shim.end(&dir, end).is_err());
    shim.wait_first_client(FIRST_CLIENT);
    let _ = std::fs::remove_file(&sock);
    // Orphans of the command still running here are re-parented on; the exit does not wait.
    std::process::exit(code)
}

/// Forks X, the exec helper, into the exec's cgroup on three new pipes; returns its pid and this
/// side's ends (its stdin, stdout, stderr).
fn fork_helper(exec: &crate::spec::ExecSpec) -> std::io::Result<(i32, File, File, File)> {
    use nix::fcntl::OFlag;
    let cgroup = File::open(&exec.cgroup)?;
    let (in_r, in_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    match super::sys::clone3(0, Some(std::os::fd::AsFd::as_fd(&cgroup)))? {
        super::sys::Forked::Child => {
            let ok = nix::unistd::dup2_stdin(&in_r).is_ok()
                && nix::unistd::dup2_stdout(&out_w).is_ok()
                && nix::unistd::dup2_stderr(&err_w).is_ok()
                && super::sys::close_from(3).is_ok();
            if !ok {
                super::sys::exit_now(126);
            }
            super::exec::run_forked(exec)
        }
        super::sys::Forked::Parent { pid, .. } => Ok((pid, File::from(in_w), File::from(out_r), File::from(err_r))),
    }
}

/// Reaps every child (orphans of the command are re-parented to this subreaper) until the
/// helper `pid` exits; returns its status.
fn reap_until(pid: i32) -> ExitStatus {
    use nix::sys::wait::{WaitStatus, waitpid};
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == pid => return ExitStatus::from_raw((c & 0xff) << 8),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == pid => return ExitStatus::from_raw(s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // No child at all: the helper is gone without a status we could read.
            Err(_) => return ExitStatus::from_raw(255 << 8),
        }
    }
}
