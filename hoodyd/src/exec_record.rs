//! What an exec leaves on disk, in `<state>/execs/<exec_id>/`, so that it outlives the daemon:
//!
//! - `exec.json` ([`ExecRecord`]), written by the daemon (durably) before the exec's shim starts:
//!   the instance as the API shows it at its start, and what the shim needs to run it;
//! - `sock`, the shim's listening socket (the daemon, this one or the next, attaches there);
//! - `shim.json` ([`ShimPids`]), written by the shim once the helper runs (not durably: pids
//!   mean nothing after a reboot);
//! - `stdout`, `stderr`: output kept for later — all of a detached exec's (up to its cap), and
//!   what a non-detached one wrote while no client was attached when it ended;
//! - `end.json` ([`ExecEnd`]), made empty with the record and filled in by the shim when the
//!   command ended, before it tells an attached client: how it ended. Synced when nobody is
//!   told at once (a detached exec, or no client attached); a client attached is told directly.
//!
//! The other files are written whole and renamed into place, so a reader sees each complete or
//! not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::ExecSpec;
use hoody_api::exec::ExecView;

pub const RECORD: &str = "exec.json";
pub const SOCKET: &str = "sock";
pub const PIDS: &str = "shim.json";
pub const END: &str = "end.json";
pub const STDOUT: &str = "stdout";
pub const STDERR: &str = "stderr";

/// What the shim is told (the part of `exec.json` it reads).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimSpec {
    pub exec: ExecSpec,
    /// The cgroup the shim moves itself into (the shims', outside every container's).
    pub shim_cgroup: PathBuf,
    /// Output goes to the files, never to a client.
    pub detached: bool,
    /// Bytes of output kept per stream in the files.
    pub cap: u64,
    /// Milliseconds after which the exec's cgroup is killed.
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecRecord {
    pub view: ExecView,
    pub kill_grace_ms: u64,
    pub shim: ShimSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimPids {
    pub shim_pid: i32,
    pub shim_start: u64,
    pub helper_pid: i32,
}

/// How an exec ended, as its shim recorded it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecEnd {
    /// The command's exit code, or 128 + the signal that ended it (as a shell reports it).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub finished_at: String,
    #[serde(default)]
    pub truncated_stdout: bool,
    #[serde(default)]
    pub truncated_stderr: bool,
}

impl ExecEnd {
    /// From the helper's wait status: its exit code (the command's, or 128 + its signal), or
    /// the signal that killed the helper itself (a cgroup kill).
    pub fn from_status(status: std::process::ExitStatus, timed_out: bool, finished_at: String) -> ExecEnd {
        use std::os::unix::process::ExitStatusExt;
        let (exit_code, signal) = match (status.code(), status.signal()) {
            (Some(c), _) if c > 128 && c < 128 + 65 => (Some(c), Some(c - 128)),
            (Some(c), _) => (Some(c), None),
            (None, s) => (s.map(|s| 128 + s), s),
        };
        ExecEnd { exit_code, signal, timed_out, finished_at, ..Default::default() }
    }
}

/// Creates (or truncates) `dir/name` for writing, mode 0600, never through a symlink.
pub fn create_file(dir: &Path, name: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(name))
}

/// Writes `data` to `dir/name` durably: a temporary file, fsynced, renamed, the directory fsynced.
pub fn write_durable(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = format!(".{name}.tmp");
    let mut f = create_file(dir, &tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(dir.join(&tmp), dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
pub fn write_json<T: Serialize>(dir: &Path, name: &str, v: &T) -> std::io::Result<()> {
    write_durable(dir, name, &serde_json::to_vec(v).expect("serialises"))
}

/// Writes `dir/name` whole (a temporary file renamed into place) but not durably: for what means
/// nothing after a reboot (the shim's pids).
pub fn write_json_volatile<T: Serialize>(dir: &Path, name: &str, v: &T) -> std::io::Result<()> {
    let tmp = format!(".{name}.tmp");
    create_file(dir, &tmp)?.write_all(&serde_json::to_vec(v).expect("serialises"))?;
    std::fs::rename(dir.join(&tmp), dir.join(name))
}

/// Step 1 of an exec: its directory, the record, and the empty end file its shim fills in
/// place at the end. Visible at once; durable once [`sync_created`] returned, which may run
/// while the shim starts (nothing is answered before it).
pub fn create(dir: &Path, record: &ExecRecord) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    write_json_volatile(dir, RECORD, record)?;
    create_file(dir, END).map(drop)
}

/// Makes what [`create`] made durable: both files, the directory, and its entry in the parent.
pub fn sync_created(dir: &Path) -> std::io::Result<()> {
    for name in [RECORD, END] {
        std::fs::File::open(dir.join(name))?.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()?;
    std::fs::File::open(dir.parent().unwrap_or(dir))?.sync_all()
}

/// The shim's last step: the end, written into the file made at the start and, when `durable`,
/// synced — one fsync, no new name to make durable. A reader sees it whole or, for a moment,
/// not parseable (taken as not ended yet).
pub fn write_end(dir: &Path, end: &ExecEnd, durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(END))?;
    let b = serde_json::to_vec(end).expect("serialises");
    f.write_all(&b)?;
    f.set_len(b.len() as u64)?;
    if durable { f.sync_data() } else { Ok(()) }
}

/// Reads `dir/name` as JSON; `None` when it is missing or not (yet) whole.
pub fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> Option<T> {
    let b = std::fs::read(dir.join(name)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// The kept output of stream `name`, at most `cap` bytes.
pub fn read_output(dir: &Path, name: &str, cap: u64) -> Vec<u8> {
    use std::io::Read;
    let mut v = Vec::new();
    if let Ok(f) = std::fs::File::open(dir.join(name)) {
        let _ = f.take(cap).read_to_end(&mut v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn ends_from_wait_statuses() {
        let at = || "t".to_string();
        let e = ExecEnd::from_status(std::process::ExitStatus::from_raw(7 << 8), false, at());
        assert_eq!((e.exit_code, e.signal), (Some(7), None));
        // The helper reports a command killed by SIGTERM as 143.
        let e = ExecEnd::from_status(std::process::ExitStatus::from_raw(143 << 8), false, at());
        assert_eq!((e.exit_code, e.signal), (Some(143), Some(15)));
        // The helper itself killed (cgroup.kill).
        let e = ExecEnd::from_status(std::process::ExitStatus::from_raw(9), true, at());
        assert_eq!((e.exit_code, e.signal, e.timed_out), (Some(137), Some(9), true));
    }

    #[test]
    fn the_end_is_filled_in_where_the_record_made_room_for_it() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("e");
        let record: ExecRecord = serde_json::from_value(serde_json::json!({
            "view": {"id": "e", "container_id": "c", "command": ["true"], "status": "running", "exit_code": null,
                     "signal": null, "started_at": "t", "finished_at": null, "started_by": {"uid": 0, "token_id": null},
                     "detached": false, "tty": false, "timed_out": false},
            "kill_grace_ms": 5000,
            "shim": {"exec": {"id": "c", "init_pid": 1, "init_start": 1, "cgroup": "/x", "command": ["true"], "env": [],
                              "cwd": "/", "uid": 0, "gid": 0, "tty": false, "rows": 24, "cols": 80, "proc_root": "/proc"},
                     "shim_cgroup": "/y", "detached": false, "cap": 10, "timeout_ms": null}
        }))
        .unwrap();
        create(&dir, &record).unwrap();
        sync_created(&dir).unwrap();
        assert_eq!(read_json::<ExecRecord>(&dir, RECORD).unwrap().view.id, "e");
        assert!(read_json::<ExecEnd>(&dir, END).is_none(), "an empty end is no end");
        let end = ExecEnd { exit_code: Some(3), finished_at: "x".into(), ..Default::default() };
        write_end(&dir, &end, true).unwrap();
        assert_eq!(read_json::<ExecEnd>(&dir, END), Some(end));
        std::fs::write(dir.join(STDOUT), b"hello world").unwrap();
        assert_eq!(read_output(&dir, STDOUT, 5), b"hello");
    }
}
