//! `hoodyd __shim LOG MAX_BYTES`: the container's console keeper, one per running container
//! (like conmon or containerd-shim). Started by the start helper before the init, in the shims'
//! cgroup (outside the container's), in a session of its own, so it outlives daemon restarts.
//!
//! It holds the read end of the pipe that is the init's stdout and stderr (fd 3) — no process
//! in the container holds a descriptor of a host file — and appends what it reads to LOG. When
//! LOG would pass MAX_BYTES it is renamed to `LOG.1` (replacing the previous one) and a new LOG
//! begins, so the console takes at most twice MAX_BYTES of the state file system. A write that
//! fails (the file system is full) drops that output and goes on: the container never blocks on
//! its console. It exits when the last writer is gone (every process of the container).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The descriptor the console pipe's read end is passed on.
pub const CONSOLE_FD: i32 = 3;

fn open_log(p: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new().append(true).create(true).mode(0o640).custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW).open(p)?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

/// The rotated log's path (`console.log.1`).
pub fn rotated(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Copies `input` to the log at `path`, rotating at `max` bytes, until `input` ends. Never
/// stops reading before that: a log that cannot be opened or written (a full state file
/// system) drops the output and is tried again with the next, so the container never blocks
/// on its console and never gets EPIPE from it.
pub fn keep(mut input: impl Read, path: &Path, max: u64) -> std::io::Result<()> {
    let mut log = open_log(path).ok();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some((_, size)) = &log
            && *size > 0
            && *size + n as u64 > max
            && std::fs::rename(path, rotated(path)).is_ok()
        {
            // Renamed first, then the new file: a reader that sees LOG missing for an instant
            // finds it again, and LOG.1 is always a complete earlier part.
            log = None;
        }
        if log.is_none() {
            log = open_log(path).ok();
        }
        let Some((file, size)) = log.as_mut() else { continue };
        let mut chunk = &buf[..n];
        // A chunk larger than the cap itself keeps only its end.
        if chunk.len() as u64 > max {
            chunk = &chunk[chunk.len() - max as usize..];
        }
        match file.write_all(chunk) {
            Ok(()) => *size += chunk.len() as u64,
            // Full or failing: this output is dropped; the size is what the file holds.
            Err(_) => *size = file.metadata().map(|m| m.len()).unwrap_or(*size),
        }
    }
}

pub fn main(args: &[std::ffi::OsString]) -> ! {
    let (Some(path), Some(max)) = (args.get(2), args.get(3).and_then(|m| m.to_str()).and_then(|m| m.parse::<u64>().ok())) else {
        eprintln!("usage: hoodyd __shim LOG MAX_BYTES (console pipe on fd 3)");
        std::process::exit(2);
    };
    let input = File::from(super::sys::inherited_fd(CONSOLE_FD));
    let code = match keep(input, Path::new(path), max.max(4096)) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_cap_and_keeps_the_latest_output() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("console.log");
        let mut input = Vec::new();
        for i in 0..20_000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        keep(&input[..], &log, 16 * 1024).unwrap();
        let (cur, old) = (std::fs::read(&log).unwrap(), std::fs::read(rotated(&log)).unwrap());
        assert!(cur.len() <= 16 * 1024 && old.len() <= 16 * 1024, "{} {}", cur.len(), old.len());
        assert!(String::from_utf8_lossy(&cur).ends_with("line 19999\n"));
        // Nothing between the rotated part and the current one is lost.
        let both = [old, cur].concat();
        assert!(input.ends_with(&both), "the two files are the stream's end, in order");
    }

    #[test]
    fn a_log_that_cannot_be_written_never_stops_the_reading() {
        let d = tempfile::tempdir().unwrap();
        let input = vec![b'x'; 1 << 20];
        // No such directory: every open fails, all input is still read to its end.
        keep(&input[..], &d.path().join("gone/console.log"), 4096).unwrap();
    }
}
